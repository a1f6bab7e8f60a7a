"""SendGrid's event words in ours (the provider module) and which of them mean "never email again" (consent):
pure, over the captured event shapes the webhook tests post."""

from __future__ import annotations

import pytest

from engage.conversation.consent import RejectReason, email_opt_out_source
from engage.delivery.providers.sendgrid import normalize_event, normalize_events
from engage.records.models import MessageStatus
from tests.fixtures.webhooks.support import load

EMAIL = "ana.ruiz@example.com"


def captured(name: str, message_id: int | str = 42) -> dict:
    return load("sendgrid_events.json", message_id=message_id, x_message_id="X-abc", email=EMAIL, n=0)[name]


@pytest.mark.parametrize(
    ("name", "status", "reason", "source"),
    [
        ("processed", MessageStatus.SENT, None, None),
        ("deferred", MessageStatus.SENT, None, None),
        ("delivered", MessageStatus.DELIVERED, None, None),
        ("open", None, None, None),
        ("bounce", MessageStatus.BOUNCED, RejectReason.BOUNCED, "bounce"),
        ("blocked", MessageStatus.BOUNCED, RejectReason.BLOCKED, None),
        ("dropped_invalid", MessageStatus.FAILED, RejectReason.BOUNCED, "sendgrid_dropped"),
        ("dropped_smtpapi", MessageStatus.FAILED, RejectReason.OTHER, None),
        ("spamreport", None, None, "spamreport"),
        ("unsubscribe", None, None, "unsubscribe"),
        ("group_unsubscribe", None, None, "group_unsubscribe"),
    ],
)
def test_each_captured_event_in_our_words_and_whether_it_opts_out(
    name: str, status: MessageStatus | None, reason: RejectReason | None, source: str | None
) -> None:
    raw = captured(name)
    event = normalize_event(raw)

    assert (event.status, event.reject_reason) == (status, reason)
    assert (event.message_id, event.x_message_id, event.event_id) == (42, "X-abc", raw["sg_event_id"])
    assert event.payload is raw
    assert email_opt_out_source(event.name, event.reject_reason) == source


def test_an_smtp_reply_loses_the_address_before_it_becomes_an_error() -> None:
    event = normalize_event(captured("bounce"))
    assert event.error == (
        "sendgrid bounce: [number] <[email]>: Recipient address rejected: User unknown in virtual mailbox table"
    )
    assert event.error_code == "5.1.1"


@pytest.mark.parametrize("arg", ["12345678901", "١٢", "-3", "7 OR 1=1", ""])
def test_a_custom_arg_that_is_not_a_small_ascii_number_is_not_our_id(arg: str) -> None:
    event = normalize_event(captured("delivered", message_id=arg))
    assert event.message_id is None and event.x_message_id == "X-abc"  # matched by SendGrid's id instead


def test_a_batch_skips_what_is_not_an_event_and_digests_events_without_an_id() -> None:
    bare = {"event": "delivered", "sg_message_id": "X-1.filter"}
    events = normalize_events([bare, "not an event", 7, captured("open")])
    assert [e.name for e in events] == ["delivered", "open"]
    assert events[0].event_id.startswith("sha256:") and events[0].event_id == normalize_event(dict(bare)).event_id
