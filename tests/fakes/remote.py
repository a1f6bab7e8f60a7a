"""The fake provider server as a child process, and the client that speaks its control API."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.fakes.state import FAKE_ACCOUNT_SID, FAKE_AUTH_TOKEN, FAKE_FROM_NUMBER, FAKE_SENDGRID_KEY


def fake_env(url: str) -> dict[str, str]:
    """Environment that points engage's providers (and the SDKs) at a fake server at ``url``."""
    return {
        "ENGAGE_SMS_PROVIDER": "twilio",
        "ENGAGE_EMAIL_PROVIDER": "sendgrid",
        "ENGAGE_TWILIO_API_BASE": url,
        "ENGAGE_SENDGRID_API_BASE": url,
        "TWILIO_ACCOUNT_SID": FAKE_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": FAKE_AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": FAKE_FROM_NUMBER,
        "SENDGRID_API_KEY": FAKE_SENDGRID_KEY,
    }


class RemoteFakeProviders:
    """The same helpers as FakeProviders, for a fake server in another process, over its control API."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310 - our own fake
            return json.loads(response.read() or b"null")

    def env(self) -> dict[str, str]:
        return fake_env(self.url)

    def sms_requests(self, accepted_only: bool = False) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/_fake/requests?kind=sms&accepted={int(accepted_only)}")
        return result

    def email_requests(self, accepted_only: bool = False) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/_fake/requests?kind=email&accepted={int(accepted_only)}")
        return result

    def count(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/_fake/count")
        return result

    def add_faults(self, kind: str, responses: list[dict[str, Any]]) -> None:
        self._call("POST", "/_fake/faults", {"kind": kind, "responses": responses})

    def outage(self, kind: str, seconds: float) -> None:
        self._call("POST", "/_fake/faults", {"kind": kind, "outage_seconds": seconds})

    def status_callbacks(self, statuses: list[str]) -> None:
        self._call("POST", "/_fake/callbacks", {"statuses": statuses})

    def callbacks_sent(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/_fake/callbacks")
        return result

    def reset(self) -> None:
        self._call("POST", "/_fake/reset", {})

    def set_latency(self, seconds: float, jitter: float = 0.0) -> None:
        """Every later vendor request waits ``seconds`` ± ``jitter`` before it is processed."""
        self._call("POST", "/_fake/latency", {"seconds": seconds, "jitter": jitter})


@contextlib.contextmanager
def spawn_fake_server(
    port: int = 0, startup_timeout: float = 10.0, *, latency: float = 0.0, jitter: float = 0.0
) -> Iterator[RemoteFakeProviders]:
    """Run ``python -m tests.fakes.provider_server`` as a child process for the block; yields its client.

    ``latency`` ± ``jitter`` seconds: how long each vendor request waits (see ``--latency``).
    """
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.provider_server",
            "--port",
            str(port),
            "--latency",
            str(latency),
            "--jitter",
            str(jitter),
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + startup_timeout
        line = ""
        while time.monotonic() < deadline and not line.startswith("listening "):
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                raise RuntimeError("fake provider server exited during start-up")
        if not line.startswith("listening "):
            raise RuntimeError("fake provider server did not start")
        yield RemoteFakeProviders(line.split()[1])
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
