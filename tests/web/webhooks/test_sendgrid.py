"""SendGrid's signed event webhook through the FastAPI app, on SQLite and PostgreSQL, with a real ECDSA key."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from engage.clock import utcnow
from engage.conversation.consent import current_consent
from engage.db import session_scope
from engage.records.models import Channel, ConsentEvent, ConsentState, DeliveryEvent, Message, MessageStatus
from tests.fixtures.webhooks.support import SendGridKey, World, add_message, client, load, make_world, post_sendgrid

pytestmark = pytest.mark.usefixtures("db_url")

EMAIL = "ana.ruiz@example.org"


@pytest.fixture
def key() -> SendGridKey:
    return SendGridKey()


@pytest.fixture
def http(monkeypatch: pytest.MonkeyPatch, key: SendGridKey) -> TestClient:
    return client(monkeypatch, SENDGRID_WEBHOOK_PUBLIC_KEY=key.public_key)


def event(name: str, message_id: int | str, x_message_id: str, n: int = 0) -> dict[str, Any]:
    """One captured event for our message; ``n`` varies its ``sg_event_id``."""
    return load("sendgrid_events.json", message_id=message_id, x_message_id=x_message_id, email=EMAIL, n=n)[name]


def email_message(world: World, x_message_id: str, **kwargs: Any) -> int:
    return add_message(
        world, channel=Channel.EMAIL, template="what-to-expect", provider_message_id=x_message_id, **kwargs
    )


def count(model: type) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def message(message_id: int) -> Message:
    with session_scope() as session:
        return session.get_one(Message, message_id)


# --- signatures ----------------------------------------------------------------------------------


def test_signed_captured_batch_updates_the_message(http: TestClient, key: SendGridKey) -> None:
    world = make_world()
    message_id = email_message(world, "14c5d75ce93dfd64b469")
    batch = [event(name, message_id, "14c5d75ce93dfd64b469") for name in ("processed", "deferred", "delivered", "open")]

    response = post_sendgrid(http, key, batch)

    assert response.status_code == 200
    row = message(message_id)
    assert row.status is MessageStatus.DELIVERED and row.delivered_at is not None
    with session_scope() as session:
        events = session.scalars(select(DeliveryEvent).order_by(DeliveryEvent.id)).all()
        assert [(e.provider, e.status, e.message_id) for e in events] == [
            ("sendgrid", "sent", message_id),
            ("sendgrid", "sent", message_id),
            ("sendgrid", "delivered", message_id),
            ("sendgrid", "open", message_id),
        ]
        assert events[3].payload["useragent"].startswith("Mozilla/5.0")  # raw payload kept
        assert current_consent(session, world.patient_id, Channel.EMAIL) is ConsentState.OPTED_IN


@pytest.mark.parametrize(
    "case",
    [
        "missing headers",
        "other key",
        "tampered body",
        "stale timestamp",
        "future timestamp",
        "garbage signature",
        "no key configured",
    ],
)
def test_unsigned_or_badly_signed_batches_are_refused(
    monkeypatch: pytest.MonkeyPatch, key: SendGridKey, case: str
) -> None:
    world = make_world()
    message_id = email_message(world, "abc123")
    body = json.dumps([event("bounce", message_id, "abc123")]).encode()
    headers = key.headers(body)
    env = {"SENDGRID_WEBHOOK_PUBLIC_KEY": key.public_key}
    if case == "missing headers":
        headers = {"Content-Type": "application/json"}
    elif case == "other key":
        headers = SendGridKey().headers(body)
    elif case == "tampered body":
        body = body.replace(b'"bounce"', b'"delivered"', 1)
    elif case == "stale timestamp":
        headers = key.headers(body, timestamp=int(time.time()) - 601)
    elif case == "future timestamp":
        # Well past the 600 s window: at +601 a slow moment before the check brought it back inside.
        headers = key.headers(body, timestamp=int(time.time()) + 700)
    elif case == "garbage signature":
        headers["X-Twilio-Email-Event-Webhook-Signature"] = "not base64 at all!"
    elif case == "no key configured":
        env = {}
    http = client(monkeypatch, **env)

    response = http.post("/webhooks/sendgrid/events", content=body, headers=headers)

    assert response.status_code == 403
    assert count(DeliveryEvent) == 0 and count(ConsentEvent) == 0
    assert message(message_id).status is MessageStatus.SENT


def test_a_timestamp_inside_the_replay_window_is_accepted(http: TestClient, key: SendGridKey) -> None:
    world = make_world()
    message_id = email_message(world, "abc123")
    body = json.dumps([event("delivered", message_id, "abc123")]).encode()

    response = http.post(
        "/webhooks/sendgrid/events", content=body, headers=key.headers(body, timestamp=int(time.time()) - 300)
    )

    assert response.status_code == 200
    assert message(message_id).status is MessageStatus.DELIVERED


def test_a_signed_body_that_is_not_an_event_array_is_400(http: TestClient, key: SendGridKey) -> None:
    body = b'{"event": "delivered"}'
    assert http.post("/webhooks/sendgrid/events", content=body, headers=key.headers(body)).status_code == 400


# --- suppression ---------------------------------------------------------------------------------


def test_a_bounce_suppresses_email_but_not_sms(http: TestClient, key: SendGridKey) -> None:
    world = make_world()
    message_id = email_message(world, "bnc1")
    later = utcnow() + timedelta(days=2)
    pending_email = add_message(
        world, channel=Channel.EMAIL, template="what-to-expect", status=MessageStatus.SCHEDULED, due_at=later
    )
    pending_sms = add_message(world, template="visit-reminder", status=MessageStatus.SCHEDULED, due_at=later)

    response = post_sendgrid(http, key, [event("bounce", message_id, "bnc1")])

    assert response.status_code == 200
    bounced = message(message_id)
    assert (bounced.status, bounced.error_code) == (MessageStatus.BOUNCED, "5.1.1")
    assert bounced.last_error is not None and "User unknown" in bounced.last_error
    assert EMAIL not in bounced.last_error  # SMTP replies quote the address; it is redacted
    assert message(pending_email).status is MessageStatus.CANCELLED
    assert message(pending_sms).status is MessageStatus.SCHEDULED
    with session_scope() as session:
        assert current_consent(session, world.patient_id, Channel.EMAIL) is ConsentState.OPTED_OUT
        assert current_consent(session, world.patient_id, Channel.SMS) is ConsentState.OPTED_IN
        [consent] = session.scalars(select(ConsentEvent)).all()
        assert (consent.channel, consent.source, consent.detail) == (Channel.EMAIL, "bounce", f"message {message_id}")


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("dropped_invalid", "sendgrid_dropped"),
        ("spamreport", "spamreport"),
        ("unsubscribe", "unsubscribe"),
        ("group_unsubscribe", "group_unsubscribe"),
    ],
)
def test_events_that_mean_never_email_again_opt_out_of_email(
    http: TestClient, key: SendGridKey, name: str, source: str
) -> None:
    world = make_world()
    message_id = email_message(world, "sup1")

    post_sendgrid(http, key, [event(name, message_id, "sup1")])

    with session_scope() as session:
        [consent] = session.scalars(select(ConsentEvent)).all()
        assert (consent.channel, consent.state, consent.source) == (Channel.EMAIL, ConsentState.OPTED_OUT, source)
        assert current_consent(session, world.patient_id, Channel.SMS) is ConsentState.OPTED_IN
    expected = MessageStatus.FAILED if name == "dropped_invalid" else MessageStatus.SENT
    assert message(message_id).status is expected


@pytest.mark.parametrize(
    ("name", "status"), [("blocked", MessageStatus.BOUNCED), ("dropped_smtpapi", MessageStatus.FAILED)]
)
def test_failures_that_are_not_the_address_do_not_suppress(
    http: TestClient, key: SendGridKey, name: str, status: MessageStatus
) -> None:
    world = make_world()
    message_id = email_message(world, "blk1")

    post_sendgrid(http, key, [event(name, message_id, "blk1")])

    assert message(message_id).status is status
    assert count(ConsentEvent) == 0


# --- matching, order, duplicates -----------------------------------------------------------------


def test_event_without_our_custom_arg_is_matched_by_sendgrid_message_id(http: TestClient, key: SendGridKey) -> None:
    world = make_world()
    message_id = email_message(world, "Xm5gQ3-abcdEFGH")
    delivered = event("delivered", message_id, "Xm5gQ3-abcdEFGH")
    del delivered["engage_message_id"]

    post_sendgrid(http, key, [delivered])

    assert message(message_id).status is MessageStatus.DELIVERED


def test_events_for_unknown_messages_are_acknowledged_and_ignored(http: TestClient, key: SendGridKey) -> None:
    world = make_world()
    sms_id = add_message(world, template="visit-reminder")
    unknown = event("bounce", 424242, "nosuchid")
    not_an_email = event("bounce", sms_id, "nosuchid")

    response = post_sendgrid(http, key, [unknown, not_an_email])

    assert response.status_code == 200
    assert count(DeliveryEvent) == 0 and count(ConsentEvent) == 0


def test_out_of_order_events_never_move_a_message_back(http: TestClient, key: SendGridKey) -> None:
    world = make_world()
    message_id = email_message(world, "ooo1")

    post_sendgrid(http, key, [event("delivered", message_id, "ooo1")])
    post_sendgrid(http, key, [event("deferred", message_id, "ooo1"), event("processed", message_id, "ooo1")])

    assert message(message_id).status is MessageStatus.DELIVERED
    assert count(DeliveryEvent) == 3


def test_crash_after_accept_is_reconciled_from_the_first_event(http: TestClient, key: SendGridKey) -> None:
    world = make_world()
    message_id = add_message(world, channel=Channel.EMAIL, template="what-to-expect", status=MessageStatus.UNKNOWN)

    post_sendgrid(http, key, [event("processed", message_id, "rec0nciled")])

    row = message(message_id)
    assert (row.status, row.provider_message_id, row.provider) == (MessageStatus.SENT, "rec0nciled", "sendgrid")


def test_duplicate_batches_change_nothing(http: TestClient, key: SendGridKey) -> None:
    world = make_world()
    message_id = email_message(world, "dup1")
    batch = [event("delivered", message_id, "dup1"), event("spamreport", message_id, "dup1")]

    first = post_sendgrid(http, key, batch)
    with session_scope() as session:
        before = (message(message_id).updated_at, session.scalars(select(ConsentEvent.id)).all())
    second = post_sendgrid(http, key, batch)
    third = post_sendgrid(http, key, [*batch, event("open", message_id, "dup1")])  # a retry with one new event

    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 200)
    assert (first.text, second.text, third.text) == ("ok 2", "ok 0", "ok 1")
    assert count(DeliveryEvent) == 3
    with session_scope() as session:
        assert (message(message_id).updated_at, session.scalars(select(ConsentEvent.id)).all()) == before
