"""What every response and every refusal carries: security headers, and one log line per refused signature."""

from __future__ import annotations

import json
import logging

import pytest

from tests.fixtures.webhooks.support import SendGridKey, client

pytestmark = pytest.mark.usefixtures("sqlite_url")


@pytest.mark.parametrize("path", ["/healthz", "/u/not-a-token", "/no-such-page"])
def test_every_response_says_nosniff_and_no_hsts_over_http(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    answer = client(monkeypatch).get(path)

    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "Strict-Transport-Security" not in answer.headers


def test_hsts_is_sent_when_the_public_url_is_https(monkeypatch: pytest.MonkeyPatch) -> None:
    http = client(monkeypatch, ENGAGE_PUBLIC_URL="https://engage.example.org")

    for answer in (http.get("/healthz"), http.post("/webhooks/twilio/status", data={"a": "b"})):
        assert answer.headers["Strict-Transport-Security"].startswith("max-age=31536000")
        assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_a_refused_sendgrid_signature_is_logged_once_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    key = SendGridKey()
    http = client(monkeypatch, SENDGRID_WEBHOOK_PUBLIC_KEY=key.public_key)
    body = json.dumps([{"event": "delivered", "email": "ana.ruiz@example.org", "engage_message_id": "1"}]).encode()

    with caplog.at_level(logging.INFO):
        answer = http.post("/webhooks/sendgrid/events?x=1", content=body, headers=SendGridKey().headers(body))

    assert answer.status_code == 403
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("engage")]
    [refusal] = [line for line in ours if "refused" in line]
    assert "http://engage.test/webhooks/sendgrid/events" in refusal and "does not verify" in refusal
    assert not [line for line in ours if "x=1" in line or "ana.ruiz" in line]
