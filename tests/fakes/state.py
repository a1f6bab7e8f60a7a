"""What the fake provider server has seen and will answer: requests, faults, outages, callbacks.

Shared by every request thread of one server (a lock guards it); the credentials
and sender the fake accepts are constants here so tests and benchmarks agree.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Any

KINDS = ("sms", "email")
FAKE_ACCOUNT_SID = "AC" + "f" * 32
FAKE_AUTH_TOKEN = "fake-auth-token"
FAKE_FROM_NUMBER = "+15005550006"  # Twilio's magic "valid sender" test number
FAKE_SENDGRID_KEY = "SG.fake-key"


class FakeState:
    """What the server received and what it will answer next. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.faults: dict[str, deque[dict[str, Any]]] = {kind: deque() for kind in KINDS}
        self.outage_until: dict[str, float] = {kind: 0.0 for kind in KINDS}
        self.callback_statuses: list[str] = []  # e.g. ["sent", "delivered"]; empty: no status callbacks
        self.callbacks: list[dict[str, Any]] = []

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.callback_statuses = []
            self.callbacks.clear()
            for kind in KINDS:
                self.faults[kind].clear()
                self.outage_until[kind] = 0.0

    def add_faults(self, kind: str, responses: list[dict[str, Any]]) -> None:
        _check_kind(kind)
        with self._lock:
            self.faults[kind].extend(dict(r) for r in responses)

    def set_callbacks(self, statuses: list[str]) -> None:
        with self._lock:
            self.callback_statuses = [str(s) for s in statuses]

    def record_callback(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.callbacks.append(entry)

    def callbacks_sent(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(c) for c in self.callbacks]

    def set_outage(self, kind: str, until: float) -> None:
        _check_kind(kind)
        with self._lock:
            self.outage_until[kind] = until

    def next_answer(self, kind: str) -> dict[str, Any] | None:
        """The queued fault for this request, a 503 during an outage, or None for a normal answer."""
        with self._lock:
            if time.time() < self.outage_until[kind]:
                return {"status": 503, "outage": True}
            return self.faults[kind].popleft() if self.faults[kind] else None

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)

    def received(self, kind: str | None = None, accepted_only: bool = False) -> list[dict[str, Any]]:
        with self._lock:
            return [
                dict(r)
                for r in self.requests
                if (kind is None or r["kind"] == kind) and (r["accepted"] or not accepted_only)
            ]

    def count(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {}
            for kind in KINDS:
                rows = [r for r in self.requests if r["kind"] == kind]
                accepted = Counter(r["message_id"] for r in rows if r["accepted"])
                out[kind] = sum(accepted.values())
                out[f"{kind}_total"] = len(rows)
                out[f"{kind}_distinct"] = len(accepted)
                out[f"{kind}_duplicates"] = sorted(
                    (mid for mid, n in accepted.items() if n > 1), key=lambda m: (m is None, m or 0)
                )
            return out


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
