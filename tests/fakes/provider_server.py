"""A fake Twilio + SendGrid HTTP server that the real SDKs talk to over real HTTP.

In-process::

    with FakeProviders() as fake:
        monkeypatch.setenv("ENGAGE_TWILIO_API_BASE", fake.url)   # or fake.env()
        ...
        assert fake.sms_requests()[0]["to"] == "+15005550006"

As its own process (for worker processes, benchmarks)::

    python -m tests.fakes.provider_server --port 8099

or ``with spawn_fake_server() as fake:`` which starts that process and returns a
:class:`RemoteFakeProviders` with the same helpers, spoken over the control API:

- ``GET  /_fake/requests?kind=sms|email[&accepted=1]`` JSON list of what arrived
- ``GET  /_fake/count`` accepted / total / distinct message ids / duplicate ids per kind
- ``POST /_fake/faults`` ``{"kind": "sms", "responses": [{"status": 429, "retry_after": 1},
  {"status": 503}, {"status": 400, "code": 21211}, {"delay": 15}, {"drop": true},
  {"accept_then_drop": true}]}``
  queues answers for the next requests of that kind (shared by all clients,
  first come first served); ``{"kind": "email", "outage_until": <epoch>}`` or
  ``{"kind": "email", "outage_seconds": 60}`` answers 503 until then.
- ``POST /_fake/callbacks`` ``{"statuses": ["sent", "delivered"]}``: after each
  accepted SMS, POST those statuses to its StatusCallback URL, signed with
  X-Twilio-Signature like Twilio; ``GET /_fake/callbacks`` lists what was posted.
- ``POST /_fake/reset`` forgets requests, faults, outages and callback settings.
- ``POST /_fake/latency`` ``{"seconds": 0.2, "jitter": 0.05}``: every vendor request
  waits 200 ± 50 ms (uniform) before it is processed, like a real API's round trip
  (``--latency 0.2 --jitter 0.05`` on the command line, ``FakeProviders(latency=…, jitter=…)``).

Vendor endpoints: ``POST /2010-04-01/Accounts/{sid}/Messages.json`` (form, Basic
auth; 201 with a Message resource and an ``SM…`` sid) and ``POST /v3/mail/send``
(JSON, Bearer auth; 202 with ``X-Message-Id``). Errors are shaped like the
vendors'. Credentials are checked like the vendors do: anything but
``FAKE_ACCOUNT_SID`` / ``FAKE_AUTH_TOKEN`` gets Twilio's 401 (code 20003),
anything but ``FAKE_SENDGRID_KEY`` SendGrid's 401. Twilio's magic test numbers work as recipients: ``+15005550001``
invalid (21211), ``+15005550004`` unsubscribed (21610), ``+15005550009`` not a
mobile (21614) — handy when many workers share one fault queue.

Our message id is read from the StatusCallback URL (query ``message_id``, ``m``
or ``id``, else its last all-digit path segment) and from SendGrid
``custom_args.engage_message_id``.

A fault entry: ``status`` (HTTP status to answer; 2xx or absent means accept),
``code`` (Twilio error code), ``retry_after`` (seconds, sent as Retry-After),
``delay`` (seconds to wait first; the request is still processed, like a vendor
that accepted a message whose response was lost), ``drop`` (read the request,
then close the connection without an answer; nothing is recorded as accepted),
``accept_then_drop`` (accept the message, recorded and counted like any other,
then close the connection without an answer: the vendor has it, the client
never hears so).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import secrets
import signal
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.remote import fake_env
from tests.fakes.state import FAKE_ACCOUNT_SID, FAKE_AUTH_TOKEN, FAKE_SENDGRID_KEY, FakeState
from tests.fakes.vendor import (
    _basic_credentials,
    _CallbackSender,
    _email_entry,
    _segments,
    _sendgrid_problem,
    message_id_from_callback,
)

_TWILIO_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")

# Twilio's magic test numbers: https://www.twilio.com/docs/iam/test-credentials
MAGIC_RECIPIENTS: dict[str, int] = {"+15005550001": 21211, "+15005550004": 21610, "+15005550009": 21614}

TWILIO_ERRORS: dict[int, str] = {
    20003: "Authenticate",
    20404: "The requested resource {path} was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service unavailable",
    21211: "The 'To' number {to} is not a valid phone number.",
    21602: "Message body is required.",
    21604: "A 'To' phone number is required.",
    21603: "A 'From' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number {to} is not a valid mobile number",
}
_TWILIO_CODE_FOR_STATUS = {401: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the SDKs pool connections
    # Headers and body go out in two writes; with Nagle on, the client's delayed
    # ACK stalls every keep-alive response by ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return  # thousands of requests; the control API is the log

    # -- plumbing ---------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        try:
            self.send_response(status)
            if payload is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if data:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (its timeout); nothing to tell it

    def _injected_fault(self, kind: str, entry: dict[str, Any]) -> dict[str, Any] | None:
        """The next queued answer for ``kind`` after its delay; None when it dropped the connection unanswered."""
        answer = self.server.state.next_answer(kind) or {}
        if answer.get("delay"):
            time.sleep(float(answer["delay"]))
        if answer.get("drop"):
            self.server.state.record({**entry, "status": None, "accepted": False, "fault": answer})
            self._drop()
            return None
        return answer

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(2)

    # -- routing ----------------------------------------------------------
    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        state = self.server.state
        if parts.path == "/_fake/requests":
            kind = query.get("kind", [None])[0]
            accepted = query.get("accepted", ["0"])[0] in ("1", "true")
            self._send(200, state.received(kind, accepted_only=accepted))
        elif parts.path == "/_fake/count":
            self._send(200, state.count())
        elif parts.path == "/_fake/callbacks":
            self._send(200, state.callbacks_sent())
        elif parts.path == "/_fake/health":
            self._send(200, {"ok": True})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        raw = self._body()
        state = self.server.state
        twilio = _TWILIO_PATH.match(parts.path)
        if twilio:
            self._vendor_latency()
            self._twilio(twilio.group("sid"), raw)
        elif parts.path == "/v3/mail/send":
            self._vendor_latency()
            self._sendgrid(raw)
        elif parts.path == "/_fake/latency":
            try:
                spec = json.loads(raw or b"{}")
                self.server.latency.set(float(spec.get("seconds") or 0), float(spec.get("jitter") or 0))
            except (ValueError, TypeError, AttributeError) as exc:
                self._send(400, {"error": str(exc)})
                return
            self._send(200, {"ok": True})
        elif parts.path == "/_fake/reset":
            state.reset()
            self._send(200, {"ok": True})
        elif parts.path == "/_fake/callbacks":
            try:
                state.set_callbacks(list(json.loads(raw or b"{}")["statuses"]))
            except (KeyError, ValueError, TypeError) as exc:
                self._send(400, {"error": str(exc)})
                return
            self._send(200, {"ok": True})
        elif parts.path == "/_fake/faults":
            try:
                spec = json.loads(raw or b"{}")
                kind = spec["kind"]
                if "responses" in spec:
                    state.add_faults(kind, list(spec["responses"]))
                if "outage_until" in spec:
                    state.set_outage(kind, float(spec["outage_until"] or 0))
                if "outage_seconds" in spec:
                    state.set_outage(kind, time.time() + float(spec["outage_seconds"]))
            except (KeyError, ValueError, TypeError) as exc:
                self._send(400, {"error": str(exc)})
                return
            self._send(200, {"ok": True})
        else:
            self._send(404, {"error": "not found"})

    def _vendor_latency(self) -> None:
        """Wait like a real vendor's round trip (the server's latency setting), before the request is processed."""
        delay = self.server.latency.draw()
        if delay > 0:
            time.sleep(delay)

    # -- Twilio -------------------------------------------------------------
    def _twilio_error(self, status: int, code: int | None, to: str = "", retry_after: float | None = None) -> None:
        code = code or _TWILIO_CODE_FOR_STATUS.get(status, 20500 if status >= 500 else 21600)
        message = TWILIO_ERRORS.get(code, "Error").format(to=to, path=urlsplit(self.path).path)
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
        payload = {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
        self._send(status, payload, headers)

    def _twilio(self, sid: str, raw: bytes) -> None:
        credentials = _basic_credentials(self.headers.get("Authorization"))
        if credentials is None or credentials[0] != sid or credentials != (FAKE_ACCOUNT_SID, FAKE_AUTH_TOKEN):
            self._twilio_error(401, 20003)
            return
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()}
        to, body = form.get("To", ""), form.get("Body", "")
        entry: dict[str, Any] = {
            "kind": "sms",
            "message_id": message_id_from_callback(form.get("StatusCallback")),
            "to": to,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": body,
            "status_callback": form.get("StatusCallback"),
            "account_sid": sid,
            "received_at": time.time(),
        }
        answer = self._injected_fault("sms", entry)
        if answer is None:
            return
        status = int(answer.get("status") or 201)
        code = answer.get("code")
        if status < 400:
            # The vendor's own checks, after the injected faults, like a real API.
            if not to:
                status, code = 400, 21604
            elif not body:
                status, code = 400, 21602
            elif not form.get("From") and not form.get("MessagingServiceSid"):
                status, code = 400, 21603
            elif not _E164.match(to):
                status, code = 400, 21211
            elif to in MAGIC_RECIPIENTS:
                status, code = 400, MAGIC_RECIPIENTS[to]
        if status >= 400:
            self.server.state.record(
                {**entry, "status": status, "code": code, "accepted": False, "fault": answer or None}
            )
            self._twilio_error(status, code, to, answer.get("retry_after"))
            return
        message_sid = "SM" + secrets.token_hex(16)
        now = formatdate(usegmt=True)
        self.server.state.record(
            {**entry, "status": 201, "accepted": True, "sid": message_sid, "fault": answer or None}
        )
        statuses = self.server.state.callback_statuses
        if statuses and form.get("StatusCallback"):
            params = {
                "AccountSid": sid,
                "MessageSid": message_sid,
                "SmsSid": message_sid,
                "To": to,
                "From": form.get("From") or "",
                "ApiVersion": "2010-04-01",
            }
            self.server.callbacks.enqueue(form["StatusCallback"], credentials[1], params, statuses)
        if answer.get("accept_then_drop"):
            self._drop()  # the SMS is queued at the vendor (callbacks and all); only its answer is lost
            return
        self._send(
            201,
            {
                "account_sid": sid,
                "api_version": "2010-04-01",
                "body": body,
                "date_created": now,
                "date_sent": None,
                "date_updated": now,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "num_media": "0",
                "num_segments": str(_segments(body)),
                "price": None,
                "price_unit": "USD",
                "sid": message_sid,
                "status": "accepted" if form.get("MessagingServiceSid") else "queued",
                "subresource_uris": {"media": f"/2010-04-01/Accounts/{sid}/Messages/{message_sid}/Media.json"},
                "to": to,
                "uri": f"/2010-04-01/Accounts/{sid}/Messages/{message_sid}.json",
            },
        )

    # -- SendGrid -----------------------------------------------------------
    def _sendgrid_error(
        self, status: int, message: str, field: str | None = None, retry_after: float | None = None
    ) -> None:
        headers: dict[str, str] = {}
        if status == 429:
            headers = {
                "X-RateLimit-Limit": "600",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(time.time() + (retry_after or 1))),
            }
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        self._send(status, {"errors": [{"message": message, "field": field, "help": None}]}, headers)

    def _sendgrid(self, raw: bytes) -> None:
        auth = self.headers.get("Authorization") or ""
        if auth != f"Bearer {FAKE_SENDGRID_KEY}":
            self._sendgrid_error(401, "The provided authorization grant is invalid, expired, or revoked")
            return
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            self._sendgrid_error(400, "Bad Request", None)
            return
        entry = _email_entry(payload)
        answer = self._injected_fault("email", entry)
        if answer is None:
            return
        status = int(answer.get("status") or 202)
        message, field = {
            400: ("Bad Request", None),
            401: ("Permission denied, wrong credentials", None),
            403: ("You are not authorized to access this endpoint", None),
            413: ("Payload too large", None),
            429: ("too many requests", None),
        }.get(status, ("Internal server error", None))
        if status < 400:
            problem = _sendgrid_problem(payload)
            if problem:
                status, (message, field) = 400, problem
        if status >= 400:
            self.server.state.record({**entry, "status": status, "accepted": False, "fault": answer or None})
            self._sendgrid_error(status, answer.get("message", message), field, answer.get("retry_after"))
            return
        sg_id = secrets.token_urlsafe(16)[:22]
        self.server.state.record(
            {**entry, "status": 202, "accepted": True, "sg_message_id": sg_id, "fault": answer or None}
        )
        if answer.get("accept_then_drop"):
            self._drop()  # the email is accepted; its answer is lost
            return
        self._send(202, None, {"X-Message-Id": sg_id})


class Latency:
    """How long a vendor request waits before it is processed: ``seconds`` ± ``jitter`` (uniform, never negative)."""

    def __init__(self, seconds: float = 0.0, jitter: float = 0.0) -> None:
        self.set(seconds, jitter)

    def set(self, seconds: float, jitter: float = 0.0) -> None:
        if seconds < 0 or jitter < 0:
            raise ValueError("latency and jitter must not be negative")
        self.seconds, self.jitter = seconds, jitter

    def draw(self) -> float:
        if self.jitter <= 0:
            return self.seconds
        return max(0.0, random.uniform(self.seconds - self.jitter, self.seconds + self.jitter))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # bursts from several worker processes must not be refused

    def __init__(self, address: tuple[str, int], state: FakeState, latency: Latency | None = None) -> None:
        super().__init__(address, _Handler)
        self.state = state
        self.callbacks = _CallbackSender(state)
        self.latency = latency or Latency()


class FakeProviders:
    """The fake server in a background thread of this process. Use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, latency: float = 0.0, jitter: float = 0.0) -> None:
        self.state = FakeState()
        self._server = _Server((host, port), self.state, Latency(latency, jitter))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeProviders:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="fake-providers", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeProviders:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        return fake_env(self.url)

    def sms_requests(self, accepted_only: bool = False) -> list[dict[str, Any]]:
        return self.state.received("sms", accepted_only)

    def email_requests(self, accepted_only: bool = False) -> list[dict[str, Any]]:
        return self.state.received("email", accepted_only)

    def count(self) -> dict[str, Any]:
        return self.state.count()

    def add_faults(self, kind: str, responses: list[dict[str, Any]]) -> None:
        self.state.add_faults(kind, responses)

    def outage(self, kind: str, seconds: float) -> None:
        self.state.set_outage(kind, time.time() + seconds)

    def status_callbacks(self, statuses: list[str]) -> None:
        """After each accepted SMS, POST these statuses (e.g. ["sent", "delivered"]) to its StatusCallback."""
        self.state.set_callbacks(statuses)

    def callbacks_sent(self) -> list[dict[str, Any]]:
        return self.state.callbacks_sent()

    def reset(self) -> None:
        self.state.reset()

    def set_latency(self, seconds: float, jitter: float = 0.0) -> None:
        """Every later vendor request waits ``seconds`` ± ``jitter`` before it is processed."""
        self._server.latency.set(seconds, jitter)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Twilio + SendGrid HTTP server for engage's tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds each vendor request waits (e.g. 0.2)")
    parser.add_argument("--jitter", type=float, default=0.0, help="± seconds around --latency, uniform (e.g. 0.05)")
    args = parser.parse_args(argv)
    if args.latency < 0 or args.jitter < 0:
        parser.error("--latency and --jitter must not be negative")
    server = _Server((args.host, args.port), FakeState(), Latency(args.latency, args.jitter))
    port = server.server_address[1]
    # One line a parent can read: "listening http://127.0.0.1:PORT"
    print(f"listening http://{args.host}:{port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        os._exit(0)  # don't wait for keep-alive connection threads


if __name__ == "__main__":
    main()
