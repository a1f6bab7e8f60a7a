"""Providers: the real Twilio and SendGrid SDKs against the fake server over real HTTP, the outbox, the registry."""

from __future__ import annotations

import base64
import json
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from twilio.request_validator import RequestValidator

from engage.config import get_settings
from engage.content.sms_text import GSM7, UCS2
from engage.delivery.providers import (
    ConfigurationError,
    OutgoingEmail,
    OutgoingSms,
    ProviderError,
    email_provider,
    reset_providers,
    sms_provider,
)
from engage.delivery.providers.base import EmailAttachment
from engage.delivery.providers.console import ConsoleProvider
from engage.delivery.providers.outbox import OutboxProvider
from engage.delivery.providers.sendgrid import SendGridEmail
from engage.delivery.providers.twilio import TwilioSms
from engage.delivery.send import AMBIGUOUS_CODES
from tests.fakes.provider_server import FakeProviders
from tests.fakes.remote import fake_env, spawn_fake_server
from tests.fakes.state import FAKE_AUTH_TOKEN, FAKE_FROM_NUMBER, FAKE_SENDGRID_KEY

PATIENT_PHONE = "+14155550123"
PATIENT_EMAIL = "ana.garcia@example.com"
SMS_BODY = "Hi Ana, your dry needling session is tomorrow at 10:00. Reply STOP to opt out."
CALLBACK = "http://engage.test/webhooks/twilio/status?message_id={id}"


def sms(message_id: int = 41, to: str = PATIENT_PHONE, body: str = SMS_BODY) -> OutgoingSms:
    return OutgoingSms(
        message_id=message_id, to=to, body=body, sender=None, status_callback=CALLBACK.format(id=message_id)
    )


def email(message_id: int = 42, to: str = PATIENT_EMAIL) -> OutgoingEmail:
    return OutgoingEmail(
        message_id=message_id,
        to=to,
        from_email="care@clinic.example",
        from_name="Riverside Physio",
        subject="What to expect at your first session",
        text="Dear Ana,\nYour first dry needling session is on Monday.",
        html="<p>Dear Ana,</p><p>Your first dry needling session is on <b>Monday</b>.</p>",
        headers={
            "List-Unsubscribe": "<https://engage.test/u/tok>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        categories=("pre-visit",),
    )


@pytest.fixture(autouse=True)
def _fresh_providers() -> Iterator[None]:
    reset_providers()
    yield
    reset_providers()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProviders]:
    """The fake vendors on a free port, with engage's settings pointing at them and a short timeout."""
    with FakeProviders() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("ENGAGE_HTTP_TIMEOUT_SECONDS", "0.5")
        get_settings.cache_clear()
        reset_providers()
        yield server


def send_sms_error(msg: OutgoingSms | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        sms_provider().send_sms(msg or sms())
    return caught.value


def send_email_error(msg: OutgoingEmail | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        email_provider().send_email(msg or email())
    return caught.value


# -- Twilio ---------------------------------------------------------------


def test_sms_reaches_twilio_with_to_from_body_and_status_callback(fake: FakeProviders) -> None:
    accepted = sms_provider().send_sms(sms(41))

    [received] = fake.sms_requests()
    assert received["accepted"] is True
    assert received["to"] == PATIENT_PHONE
    assert received["from"] == FAKE_FROM_NUMBER
    assert received["body"] == SMS_BODY
    assert received["status_callback"] == "http://engage.test/webhooks/twilio/status?message_id=41"
    assert received["message_id"] == 41
    assert accepted.provider_message_id == received["sid"]
    assert accepted.provider_message_id.startswith("SM") and len(accepted.provider_message_id) == 34
    assert accepted.status == "sent"


def test_a_ca_bundle_in_the_environment_is_read_once_and_still_used(
    fake: FakeProviders, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not read for plain http\n")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    provider = TwilioSms(get_settings())

    provider.send_sms(sms(42))

    session = provider._http.session
    assert session is not None
    assert (session.trust_env, session.verify) == (False, str(bundle))
    assert [r["message_id"] for r in fake.sms_requests()] == [42]


def test_a_proxy_in_the_environment_is_still_honoured(fake: FakeProviders, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # nothing listens there: only a proxied request fails

    with pytest.raises(ProviderError) as caught:
        TwilioSms(get_settings()).send_sms(sms(43))

    assert caught.value.provider == "twilio"  # the request went to the (absent) proxy, never to the provider
    assert fake.sms_requests() == []


def test_sms_uses_messaging_service_when_no_from_number(fake: FakeProviders, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWILIO_FROM_NUMBER")
    monkeypatch.setenv("TWILIO_MESSAGING_SERVICE_SID", "MG" + "a" * 32)
    get_settings.cache_clear()

    sms_provider().send_sms(sms(5))

    [received] = fake.sms_requests()
    assert received["from"] is None
    assert received["messaging_service_sid"] == "MG" + "a" * 32


def test_sms_sender_on_the_message_wins_over_settings(fake: FakeProviders) -> None:
    msg = OutgoingSms(message_id=6, to=PATIENT_PHONE, body="hi", sender="+15005550007", status_callback=None)
    sms_provider().send_sms(msg)
    assert fake.sms_requests()[0]["from"] == "+15005550007"


def test_twilio_429_is_transient_and_honours_retry_after(fake: FakeProviders) -> None:
    fake.add_faults("sms", [{"status": 429, "retry_after": 7}])
    error = send_sms_error()
    assert error.permanent is False
    assert error.retry_after == 7.0
    assert error.status == 429
    assert error.message_id == 41


def test_twilio_503_is_transient_and_the_sdk_does_not_retry_it(fake: FakeProviders) -> None:
    fake.add_faults("sms", [{"status": 503}])
    error = send_sms_error()
    assert error.permanent is False and error.status == 503 and error.retry_after is None
    assert len(fake.sms_requests()) == 1  # one attempt: retrying is the dispatcher's call


def test_twilio_timeout_is_transient_and_says_the_message_may_have_gone(fake: FakeProviders) -> None:
    fake.add_faults("sms", [{"delay": 1.5}])
    error = send_sms_error()
    assert error.permanent is False
    assert error.code == "read_timeout"


@pytest.mark.parametrize("fault", [{"drop": True}, {"accept_then_drop": True}])
def test_twilio_connection_lost_after_the_request_is_ambiguous_and_not_retried(
    fake: FakeProviders, fault: dict[str, bool]
) -> None:
    # Twilio read the whole request (and, the second time, queued the SMS): we cannot know, so never "retry".
    fake.add_faults("sms", [fault])
    error = send_sms_error()
    assert error.permanent is False and error.code == "connection_lost" and error.code in AMBIGUOUS_CODES
    assert "may have been accepted" in str(error)
    assert len(fake.sms_requests()) == 1  # the SDK did not retry either
    assert fake.count()["sms"] == (1 if "accept_then_drop" in fault else 0)


def _nothing_listening(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: connecting is refused
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for name, value in fake_env(url).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def test_twilio_unreachable_is_transient_and_safe_to_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    _nothing_listening(monkeypatch)
    error = send_sms_error()
    assert error.permanent is False and error.code == "connection" and error.code not in AMBIGUOUS_CODES


def test_sendgrid_unreachable_is_transient_and_safe_to_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    _nothing_listening(monkeypatch)
    error = send_email_error()
    assert error.permanent is False and error.code == "connection" and error.code not in AMBIGUOUS_CODES


@pytest.mark.parametrize("code", [21610, 21211, 21614])
def test_twilio_recipient_errors_are_permanent_with_their_code(fake: FakeProviders, code: int) -> None:
    fake.add_faults("sms", [{"status": 400, "code": code}])
    error = send_sms_error()
    assert error.permanent is True
    assert error.code == str(code)
    assert error.status == 400


@pytest.mark.parametrize(
    ("number", "code"), [("+15005550004", "21610"), ("+15005550001", "21211"), ("+15005550009", "21614")]
)
def test_twilio_magic_test_numbers_fail_permanently(fake: FakeProviders, number: str, code: str) -> None:
    error = send_sms_error(sms(to=number))
    assert error.permanent is True and error.code == code


def test_twilio_other_client_errors_are_permanent(fake: FakeProviders) -> None:
    fake.add_faults("sms", [{"status": 403, "code": 21408}])  # no permission to send to that region
    error = send_sms_error()
    assert error.permanent is True and error.status == 403 and error.code == "21408"


def test_twilio_refused_credentials_are_a_configuration_error(
    fake: FakeProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "revoked-token")
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="authentication failed") as caught:
        sms_provider().send_sms(sms())
    assert "HTTP 401" in str(caught.value) and "code 20003" in str(caught.value)
    assert PATIENT_PHONE not in str(caught.value) and "revoked-token" not in str(caught.value)


@pytest.mark.parametrize("fault", [{"status": 401}, {"status": 403, "code": 20003}, {"status": 404}])
def test_twilio_account_level_errors_are_configuration_errors(fake: FakeProviders, fault: dict[str, int]) -> None:
    fake.add_faults("sms", [fault])
    with pytest.raises(ConfigurationError, match="TWILIO_ACCOUNT_SID"):
        sms_provider().send_sms(sms())


# -- SendGrid -------------------------------------------------------------


def test_email_reaches_sendgrid_with_both_parts_headers_and_our_id(fake: FakeProviders) -> None:
    accepted = email_provider().send_email(email(42))

    [received] = fake.email_requests()
    assert received["accepted"] is True
    assert received["to"] == PATIENT_EMAIL
    assert received["from"] == "care@clinic.example"
    assert received["from_name"] == "Riverside Physio"
    assert received["subject"] == "What to expect at your first session"
    assert received["content_types"] == ["text/plain", "text/html"]
    assert received["text"] == email().text
    assert received["html"] == email().html
    assert received["headers"] == {
        "List-Unsubscribe": "<https://engage.test/u/tok>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert received["custom_args"] == {"engage_message_id": "42"}
    assert received["categories"] == ["pre-visit"]
    assert received["message_id"] == 42
    assert accepted.provider_message_id == received["sg_message_id"]


@pytest.mark.parametrize("status", [400, 403, 413])
def test_sendgrid_rejections_are_permanent(fake: FakeProviders, status: int) -> None:
    fake.add_faults("email", [{"status": status}])
    error = send_email_error()
    assert error.permanent is True and error.status == status and error.message_id == 42


def test_sendgrid_refused_api_key_is_a_configuration_error(
    fake: FakeProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.revoked")
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="SENDGRID_API_KEY") as caught:
        email_provider().send_email(email())
    assert "HTTP 401" in str(caught.value) and "SG.revoked" not in str(caught.value)
    fake.add_faults("email", [{"status": 401}])
    monkeypatch.setenv("SENDGRID_API_KEY", FAKE_SENDGRID_KEY)
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError):  # the same 401, whatever made the key stop working
        email_provider().send_email(email())


def test_sendgrid_invalid_address_is_permanent(fake: FakeProviders) -> None:
    error = send_email_error(email(to="not-an-address"))
    assert error.permanent is True
    assert fake.email_requests() == []  # refused before anything went out


def test_sendgrid_429_is_transient_and_honours_retry_after(fake: FakeProviders) -> None:
    fake.add_faults("email", [{"status": 429, "retry_after": 3}])
    error = send_email_error()
    assert error.permanent is False and error.retry_after == 3.0 and error.status == 429


def test_sendgrid_503_is_transient(fake: FakeProviders) -> None:
    fake.add_faults("email", [{"status": 503}])
    error = send_email_error()
    assert error.permanent is False and error.status == 503
    assert len(fake.email_requests()) == 1


def test_sendgrid_timeout_is_transient(fake: FakeProviders) -> None:
    fake.add_faults("email", [{"delay": 1.5}])
    error = send_email_error()
    assert error.permanent is False and error.code == "read_timeout"


@pytest.mark.parametrize("fault", [{"drop": True}, {"accept_then_drop": True}])
def test_sendgrid_connection_lost_after_the_request_is_ambiguous(fake: FakeProviders, fault: dict[str, bool]) -> None:
    fake.add_faults("email", [fault])
    error = send_email_error()
    assert error.permanent is False and error.code == "connection_lost" and error.code in AMBIGUOUS_CODES
    assert len(fake.email_requests()) == 1
    assert fake.count()["email"] == (1 if "accept_then_drop" in fault else 0)


def test_outage_answers_503_until_it_ends(fake: FakeProviders) -> None:
    fake.outage("email", 60)
    assert send_email_error().status == 503
    assert sms_provider().send_sms(sms()).provider_message_id.startswith("SM")  # the other vendor is fine
    fake.outage("email", 0)
    assert email_provider().send_email(email()).provider_message_id


# -- errors never carry PHI -----------------------------------------------


def test_provider_error_text_has_no_phone_email_or_body(fake: FakeProviders) -> None:
    fake.add_faults("sms", [{"status": 400, "code": 21211}])  # Twilio echoes the number in its message
    fake.add_faults("email", [{"status": 400, "message": f"The to email {PATIENT_EMAIL} is not valid"}])
    errors = [send_sms_error(), send_email_error()]
    for error in errors:
        text = f"{error} {error!r} {error.args}"
        for secret in (PATIENT_PHONE, PATIENT_PHONE[1:], PATIENT_EMAIL, "Ana", "dry needling"):
            assert secret not in text
    assert "21211" in str(errors[0]) and "41" in str(errors[0]) and "HTTP 400" in str(errors[0])
    assert "HTTP 400" in str(errors[1]) and "message 42" in str(errors[1])


def test_provider_error_survives_pickling_for_celery() -> None:
    error = ProviderError("rate limited", provider="twilio", retry_after=2.5, status=429, code="20429", message_id=9)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.provider, copy.retry_after, copy.status, copy.code, copy.message_id, copy.permanent) == (
        "twilio",
        2.5,
        429,
        "20429",
        9,
        False,
    )
    assert str(copy) == str(error)


def test_outgoing_messages_repr_hides_address_and_body() -> None:
    assert PATIENT_PHONE not in repr(sms()) and "Ana" not in repr(sms())
    assert PATIENT_EMAIL not in repr(email()) and "Ana" not in repr(email())


# -- outbox and console ---------------------------------------------------


def test_outbox_writes_sms_as_json_with_segments(tmp_path: Path) -> None:
    get_settings.cache_clear()
    provider = sms_provider()
    assert isinstance(provider, OutboxProvider)
    long_unicode = "Cómo está tu dolor hoy? 0–10 " * 4  # the en dash forces UCS-2

    assert provider.send_sms(sms(7)).provider_message_id == "outbox-7"
    provider.send_sms(sms(8, body=long_unicode))

    short = json.loads((tmp_path / "outbox" / "sms-7.json").read_text())
    assert (short["message_id"], short["to"], short["body"]) == (7, PATIENT_PHONE, SMS_BODY)
    assert (short["encoding"], short["segments"], short["units"]) == (GSM7, 1, len(SMS_BODY))
    long = json.loads((tmp_path / "outbox" / "sms-8.json").read_text(encoding="utf-8"))
    assert long["body"] == long_unicode
    assert (long["encoding"], long["segments"]) == (UCS2, 2)


def test_outbox_writes_email_as_eml_with_both_parts_and_headers(tmp_path: Path) -> None:
    provider = email_provider()
    assert provider.send_email(email(42)).provider_message_id == "outbox-42"

    raw = (tmp_path / "outbox" / "email-42.eml").read_bytes()
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["To"] == PATIENT_EMAIL
    assert parsed["From"] == "Riverside Physio <care@clinic.example>"
    assert parsed["Subject"] == "What to expect at your first session"
    assert parsed["List-Unsubscribe"] == "<https://engage.test/u/tok>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Message-ID"] == "<engage-42@clinic.example>" and parsed["Date"]
    assert parsed.get_content_type() == "multipart/alternative"
    text_part = parsed.get_body(preferencelist=("plain",))
    html_part = parsed.get_body(preferencelist=("html",))
    assert text_part is not None and html_part is not None
    assert text_part.get_content().strip() == email().text
    assert html_part.get_content().strip() == email().html


def test_outbox_keeps_a_long_unsubscribe_url_readable_not_encoded(tmp_path: Path) -> None:
    """Mail clients read List-Unsubscribe raw: an RFC 2047 encoded word there is a broken link."""
    url = "https://engage.test/u/" + "x" * 120
    provider = email_provider()
    provider.send_email(replace(email(43), headers={"List-Unsubscribe": f"<{url}>"}))
    raw = (tmp_path / "outbox" / "email-43.eml").read_text(encoding="ascii")
    assert f"List-Unsubscribe: <{url}>" in raw


def test_outbox_resend_overwrites_instead_of_duplicating(tmp_path: Path) -> None:
    provider = email_provider()
    provider.send_email(email(42))
    provider.send_email(email(42))
    sms_provider().send_sms(sms(42))
    assert sorted(p.name for p in (tmp_path / "outbox").iterdir()) == ["email-42.eml", "sms-42.json"]


def test_console_prints_a_summary_without_address_or_body(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENGAGE_SMS_PROVIDER", "console")
    monkeypatch.setenv("ENGAGE_EMAIL_PROVIDER", "console")
    get_settings.cache_clear()

    assert sms_provider().send_sms(sms(3)).provider_message_id == "console-3"
    assert email_provider().send_email(email(4)).provider_message_id == "console-4"

    out = capsys.readouterr().out
    assert "message=3" in out and "message=4" in out and f"chars={len(SMS_BODY)}" in out
    for secret in (PATIENT_PHONE, PATIENT_EMAIL, "Ana", "needling", "first session"):
        assert secret not in out


# -- registry -------------------------------------------------------------


def test_without_credentials_both_channels_default_to_the_outbox() -> None:
    assert isinstance(sms_provider(), OutboxProvider)
    assert isinstance(email_provider(), OutboxProvider)


def test_with_credentials_the_vendors_are_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "token")
    monkeypatch.setenv("TWILIO_FROM_NUMBER", "+15005550006")
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.key")
    get_settings.cache_clear()
    assert isinstance(sms_provider(), TwilioSms)
    assert isinstance(email_provider(), SendGridEmail)


def test_explicit_choice_wins_over_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.key")
    monkeypatch.setenv("ENGAGE_EMAIL_PROVIDER", "outbox")
    monkeypatch.setenv("ENGAGE_SMS_PROVIDER", "Console")
    get_settings.cache_clear()
    assert isinstance(email_provider(), OutboxProvider)
    assert isinstance(sms_provider(), ConsoleProvider)


@pytest.mark.parametrize(
    ("variable", "pick"), [("ENGAGE_SMS_PROVIDER", sms_provider), ("ENGAGE_EMAIL_PROVIDER", email_provider)]
)
def test_unknown_provider_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, pick: object
) -> None:
    monkeypatch.setenv(variable, "pigeon")
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="pigeon"):
        pick()  # type: ignore[operator]


def test_explicit_vendor_without_credentials_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGAGE_SMS_PROVIDER", "twilio")
    monkeypatch.setenv("ENGAGE_EMAIL_PROVIDER", "sendgrid")
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError):
        sms_provider()
    with pytest.raises(ConfigurationError):
        email_provider()


def test_twilio_without_a_sender_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "token")
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="FROM_NUMBER"):
        sms_provider()


def test_providers_are_cached_until_reset() -> None:
    first = sms_provider()
    assert sms_provider() is first
    reset_providers()
    assert sms_provider() is not first


# -- the fake under load and out of process -------------------------------


def test_concurrent_sends_each_arrive_exactly_once(fake: FakeProviders, monkeypatch: pytest.MonkeyPatch) -> None:
    # Not the fixture's 0.5 s timeout (made for the timeout tests): the fake shares this process with the eight
    # senders, and on a loaded machine (the whole suite, 2 cores) an answer can take longer than that.
    monkeypatch.setenv("ENGAGE_HTTP_TIMEOUT_SECONDS", "10")
    get_settings.cache_clear()
    reset_providers()

    def worker(start: int) -> None:
        for i in range(start, start + 40):
            sms_provider().send_sms(sms(i))
            email_provider().send_email(email(i))

    threads = [threading.Thread(target=worker, args=(n * 1000,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    count = fake.count()
    assert (count["sms"], count["sms_distinct"], count["sms_duplicates"]) == (320, 320, [])
    assert (count["email"], count["email_distinct"], count["email_duplicates"]) == (320, 320, [])


def test_fake_server_runs_as_its_own_process_with_a_control_api(monkeypatch: pytest.MonkeyPatch) -> None:
    with spawn_fake_server() as remote:
        for name, value in remote.env().items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        remote.add_faults("sms", [{"status": 503}])

        assert send_sms_error().status == 503
        sms_provider().send_sms(sms(77))
        email_provider().send_email(email(78))

        assert [r["message_id"] for r in remote.sms_requests(accepted_only=True)] == [77]
        assert remote.email_requests()[0]["custom_args"] == {"engage_message_id": "78"}
        count = remote.count()
        assert (count["sms"], count["sms_total"], count["email"]) == (1, 2, 1)
        remote.reset()
        assert remote.count()["sms_total"] == 0


def test_fake_posts_signed_status_callbacks_when_asked(fake: FakeProviders) -> None:
    received: list[tuple[str, dict[str, str], str]] = []

    class Webhook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            form = dict(parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
            received.append((self.path, form, self.headers.get("X-Twilio-Signature", "")))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    webhook = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=webhook.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{webhook.server_address[1]}/webhooks/twilio/status?message_id=41"
        fake.status_callbacks(["sent", "delivered"])
        accepted = sms_provider().send_sms(OutgoingSms(41, PATIENT_PHONE, SMS_BODY, None, url))
        deadline = time.monotonic() + 5
        while len(fake.callbacks_sent()) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        webhook.shutdown()
        webhook.server_close()

    assert [form["MessageStatus"] for _, form, _ in received] == ["sent", "delivered"]
    validator = RequestValidator(FAKE_AUTH_TOKEN)
    for path, form, signature in received:
        assert path == "/webhooks/twilio/status?message_id=41"
        assert form["MessageSid"] == accepted.provider_message_id
        assert validator.validate(url, form, signature)
    assert [c["http_status"] for c in fake.callbacks_sent()] == [204, 204]


def test_fake_answers_after_its_latency_setting_with_jitter_around_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with spawn_fake_server(latency=0.2, jitter=0.05) as remote:
        for name, value in remote.env().items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        took = []
        for i in range(4):
            started = time.perf_counter()
            sms_provider().send_sms(sms(100 + i))
            took.append(time.perf_counter() - started)
        remote.set_latency(0.0)
        started = time.perf_counter()
        email_provider().send_email(email(200))
        instant = time.perf_counter() - started
        assert remote.count()["sms"] == 4

    assert min(took) >= 0.15, took  # 200 ms - 50 ms jitter at the least
    assert instant < 0.15


def test_fake_refuses_a_negative_latency() -> None:
    with pytest.raises(ValueError, match="negative"):
        FakeProviders(latency=-1.0)


# -- attachments (the add-to-calendar file) --------------------------------

ICS = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//engage//test//EN\r\nBEGIN:VEVENT\r\n"
    b"UID:engage-42@clinic.example\r\nDTSTAMP:20261201T120000Z\r\nDTSTART:20261203T150000Z\r\nDTEND:20261203T154500Z\r\nSUMMARY:Appointment\r\n"
    b"END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def email_with_calendar(message_id: int = 42) -> OutgoingEmail:
    return replace(email(message_id), attachments=(EmailAttachment("appointment.ics", "text/calendar", ICS),))


def test_sendgrid_sends_an_attachment_base64_through_the_sdk(fake: FakeProviders) -> None:
    email_provider().send_email(email_with_calendar(42))

    [received] = fake.email_requests()
    [attached] = received["attachments"]
    assert attached["filename"] == "appointment.ics" and attached["type"] == "text/calendar"
    assert attached["disposition"] == "attachment"
    assert base64.b64decode(attached["content"], validate=True) == ICS
    assert received["text"] == email().text  # the body is unchanged by the attachment


def test_outbox_eml_carries_the_calendar_part_after_the_body(tmp_path: Path) -> None:
    email_provider().send_email(email_with_calendar(42))

    parsed = message_from_bytes((tmp_path / "outbox" / "email-42.eml").read_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage) and parsed.get_content_type() == "multipart/mixed"
    [part] = list(parsed.iter_attachments())
    assert part.get_content_type() == "text/calendar" and part.get_filename() == "appointment.ics"
    assert part.get_payload(decode=True) == ICS
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None and body.get_content().strip() == email().text


def test_console_names_the_attachment_and_nothing_of_its_content(capsys: pytest.CaptureFixture[str]) -> None:
    ConsoleProvider().send_email(email_with_calendar(42))

    line = capsys.readouterr().out
    assert "attachments=appointment.ics" in line and "VEVENT" not in line and PATIENT_EMAIL not in line


def test_twilio_form_posts_skip_requests_sessions_but_send_what_the_sdk_would(
    fake: FakeProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lean form POST (engage.delivery.providers.twilio) and the SDK's own path put the same request on the
    wire: method, URL, body bytes, and every header but the ones requests varies per request."""
    import requests
    from requests.adapters import HTTPAdapter

    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    seen: list[requests.PreparedRequest] = []
    send = HTTPAdapter.send

    def recording(self: HTTPAdapter, request: requests.PreparedRequest, *args: object, **kwargs: object) -> object:
        seen.append(request)
        return send(self, request, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(HTTPAdapter, "send", recording)
    from engage.delivery.providers import twilio

    lean_posts: list[str] = []
    form_post = twilio._RecordingHttpClient._form_post

    def counted(self: twilio._RecordingHttpClient, method: str, url: str, *args: object) -> object:
        lean_posts.append(url)
        return form_post(self, method, url, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(twilio._RecordingHttpClient, "_form_post", counted)
    provider = sms_provider()
    lean = provider.send_sms(sms(41, body="Ünïcödé & = + ; spaces / slashes ✓"))
    provider._http.session.trust_env = True  # type: ignore[attr-defined]  # the SDK's own path (it reads the env)
    sdk = provider.send_sms(sms(41, body="Ünïcödé & = + ; spaces / slashes ✓"))

    assert len(lean_posts) == 1  # the first went the lean way, the second through the SDK's session
    first, second = seen
    assert (first.method, first.url, first.body) == (second.method, second.url, second.body)
    assert dict(first.headers) == dict(second.headers)
    received = fake.sms_requests()
    assert [r["body"] for r in received] == ["Ünïcödé & = + ; spaces / slashes ✓"] * 2
    assert lean.provider_message_id != sdk.provider_message_id


def test_sendgrid_builds_one_urllib_opener_per_process_not_one_per_email(
    fake: FakeProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK asks for a new opener for every email (ten handlers and a walk through os.environ); engage hands it
    the same one, and each email still arrives."""
    import urllib.request

    from engage.delivery.providers import sendgrid

    built: list[object] = []
    build = urllib.request.build_opener

    def counting(*handlers: object) -> urllib.request.OpenerDirector:
        opener = build(*handlers)  # type: ignore[arg-type]
        built.append(opener)
        return opener

    monkeypatch.setattr(urllib.request, "build_opener", counting)
    monkeypatch.setattr(sendgrid, "_SHARED_URLLIB", sendgrid._OneOpener())
    monkeypatch.setattr(sendgrid.python_http_client.client, "urllib", sendgrid._SHARED_URLLIB)
    provider = email_provider()
    first = provider.send_email(email(42))
    second = provider.send_email(email(43))

    assert len(built) == 1
    assert [r["message_id"] for r in fake.email_requests()] == [42, 43]
    assert first.provider_message_id != second.provider_message_id
