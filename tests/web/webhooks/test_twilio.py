"""Twilio webhooks end to end through the FastAPI app, on SQLite and PostgreSQL, with real signatures."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engage.clock import utcnow
from engage.conversation.consent import current_consent
from engage.db import session_scope
from engage.records.models import (
    AuditEvent,
    Channel,
    ConsentEvent,
    ConsentState,
    DeliveryEvent,
    InboundMessage,
    Message,
    MessageStatus,
    Outcome,
    Patient,
)
from engage.schedule.reconcile import reconcile_enrollment
from tests.fixtures.webhooks.support import (
    CLINIC_PHONE,
    PATIENT_PHONE,
    add_message,
    add_patient_to_clinic,
    client,
    inbound_params,
    load,
    make_world,
    new_sid,
    post_twilio,
    send_sms,
    twilio_signature,
)

pytestmark = pytest.mark.usefixtures("db_url")


def replies(response_text: str) -> list[str]:
    """The texts of the <Message> elements of a TwiML answer."""
    root = ET.fromstring(response_text)
    assert root.tag == "Response"
    return [m.text or "" for m in root.findall("Message")]


def count(model: type) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def statuses(enrollment_id: int, channel: Channel) -> dict[int, MessageStatus]:
    with session_scope() as session:
        rows = session.scalars(
            select(Message).where(Message.enrollment_id == enrollment_id, Message.channel == channel)
        )
        return {m.id: m.status for m in rows}


# --- signatures ----------------------------------------------------------------------------------


def test_inbound_with_valid_signature_is_stored_from_captured_payload(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    http = client(monkeypatch)
    params = inbound_params("Running late, see you at 10", sid="SM" + "a" * 32)

    response = post_twilio(http, "/webhooks/twilio/inbound", params)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    [reply] = replies(response.text)  # free text: the once-a-day "we cannot answer medical questions"
    assert "cannot answer medical questions" in reply and "911" in reply
    with session_scope() as session:
        stored = session.scalars(select(InboundMessage)).one()
        assert (stored.provider_sid, stored.patient_id, stored.clinic_id) == (
            "SM" + "a" * 32,
            world.patient_id,
            world.clinic_id,
        )
        assert (stored.from_phone, stored.to_phone, stored.body) == (PATIENT_PHONE, params["To"], params["Body"])
        assert (stored.kind, stored.flagged, stored.flag_reason) == ("other", True, "message for staff")


@pytest.mark.parametrize(
    "case",
    ["missing", "wrong token", "other url", "tampered body", "signed for status endpoint"],
)
def test_inbound_with_missing_or_invalid_signature_is_refused(monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    world = make_world()
    http = client(monkeypatch)
    params = inbound_params("STOP")
    signature: str | None = {
        "missing": None,
        "wrong token": twilio_signature("/webhooks/twilio/inbound", params, token="f" * 32),
        "other url": twilio_signature("/webhooks/twilio/inbound?x=1", params),
        "tampered body": twilio_signature("/webhooks/twilio/inbound", {**params, "Body": "hello"}),
        "signed for status endpoint": twilio_signature("/webhooks/twilio/status", params),
    }[case]
    if case == "missing":
        response = post_twilio(http, "/webhooks/twilio/inbound", params, signature=None)
    else:
        response = post_twilio(http, "/webhooks/twilio/inbound", params, signature=signature)

    assert response.status_code == 403
    assert count(InboundMessage) == 0
    assert count(ConsentEvent) == 0
    with session_scope() as session:
        assert current_consent(session, world.patient_id, Channel.SMS) is ConsentState.OPTED_IN


def test_webhooks_are_refused_when_no_auth_token_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    make_world()
    http = client(monkeypatch)
    params = inbound_params("STOP")
    signature = twilio_signature("/webhooks/twilio/inbound", params)
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    from engage.config import get_settings

    get_settings.cache_clear()

    assert post_twilio(http, "/webhooks/twilio/inbound", params, signature=signature).status_code == 403
    assert count(InboundMessage) == 0


# --- keywords ------------------------------------------------------------------------------------


def test_stop_then_start_cancels_then_revives_pending_sms(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    with session_scope() as session:
        reconcile_enrollment(session, world.enrollment_id)  # what enrolling does: plan the messages
    sms_before = statuses(world.enrollment_id, Channel.SMS)
    email_before = statuses(world.enrollment_id, Channel.EMAIL)
    # Planning may skip a text outright (a frequency cap); the STOP is about the ones still to go.
    pending = {i for i, status in sms_before.items() if status is MessageStatus.SCHEDULED}
    assert pending and set(email_before.values()) == {MessageStatus.SCHEDULED}
    http = client(monkeypatch)

    stop = send_sms(http, "Stop")

    assert stop.status_code == 200
    [reply] = replies(stop.text)  # exactly one confirmation
    assert "Back in Motion" in reply and "unsubscribed" in reply and "START" in reply
    after_stop = statuses(world.enrollment_id, Channel.SMS)
    email_after_stop = statuses(world.enrollment_id, Channel.EMAIL)
    # Texts still to go are cancelled, or go by email where the step falls back to it (aftercare, pain prompts).
    moved = pending & email_after_stop.keys()
    assert moved and all(email_after_stop[i] is MessageStatus.SCHEDULED for i in moved)
    assert {after_stop[i] for i in pending - moved} == {MessageStatus.CANCELLED}
    assert {i: email_after_stop[i] for i in email_before} == email_before  # the emails already planned stay
    with session_scope() as session:
        assert current_consent(session, world.patient_id, Channel.SMS) is ConsentState.OPTED_OUT
        assert current_consent(session, world.patient_id, Channel.EMAIL) is ConsentState.OPTED_IN

    start = send_sms(http, "START")

    [reply] = replies(start.text)
    assert "subscribed to text messages again" in reply
    assert statuses(world.enrollment_id, Channel.SMS) == sms_before  # the same rows, scheduled again
    with session_scope() as session:
        events = session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).all()
        assert [(e.channel, e.state, e.source, e.detail) for e in events] == [
            (Channel.SMS, ConsentState.OPTED_OUT, "sms_keyword", "STOP"),
            (Channel.SMS, ConsentState.OPTED_IN, "sms_keyword", "START"),
        ]
        kinds = session.scalars(select(InboundMessage.kind).order_by(InboundMessage.id)).all()
        assert kinds == ["opt_out", "opt_in"]
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.actor == "webhook:twilio")).all()
        assert sorted(actions) == ["consent.sms_opt_in", "consent.sms_opt_out"]


@pytest.mark.parametrize("word", ["STOPALL", "unsubscribe", "Cancel", "END", "quit", "REVOKE", "optout", " stop! "])
def test_every_opt_out_keyword_opts_out(monkeypatch: pytest.MonkeyPatch, word: str) -> None:
    world = make_world()
    http = client(monkeypatch)

    assert len(replies(send_sms(http, word).text)) == 1
    with session_scope() as session:
        assert current_consent(session, world.patient_id, Channel.SMS) is ConsentState.OPTED_OUT


def test_stop_reply_is_the_same_for_an_unknown_number(monkeypatch: pytest.MonkeyPatch) -> None:
    make_world()
    http = client(monkeypatch)

    known = send_sms(http, "STOP")
    unknown = send_sms(http, "STOP", from_phone="+14155550177")

    assert (known.status_code, known.text) == (unknown.status_code, unknown.text)
    assert count(ConsentEvent) == 1
    with session_scope() as session:
        stranger = session.scalars(select(InboundMessage).where(InboundMessage.from_phone == "+14155550177")).one()
        assert stranger.patient_id is None and stranger.kind == "opt_out"


def test_help_gives_the_clinic_name_and_phone_known_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    make_world()
    http = client(monkeypatch)

    known = send_sms(http, "help")
    unknown = send_sms(http, "HELP", from_phone="+14155550177")

    [reply] = replies(known.text)
    assert "Back in Motion" in reply and "(415) 555-0199" in reply and "STOP" in reply  # as people dial it
    assert CLINIC_PHONE == "+14155550199"
    assert known.text == unknown.text
    assert count(ConsentEvent) == 0


def test_keyword_replies_speak_the_patients_language(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    with session_scope() as session:
        session.get_one(Patient, world.patient_id).locale = "es"
    http = client(monkeypatch)

    [stop] = replies(send_sms(http, "STOP").text)
    [unknown] = replies(send_sms(http, "STOP", from_phone="+14155550177").text)
    assert (
        stop
        == "Back in Motion: ya no le enviaremos mensajes de texto. Para volver a recibirlos, responda START o ALTA."
    )
    assert unknown.startswith("Back in Motion: you are unsubscribed")


def test_stop_from_a_shared_phone_opts_out_every_patient_on_it(monkeypatch: pytest.MonkeyPatch) -> None:
    mother = make_world()
    child = add_patient_to_clinic(mother.clinic_id, phone=PATIENT_PHONE, first_name="Lia")
    http = client(monkeypatch)

    assert len(replies(send_sms(http, "STOP").text)) == 1

    with session_scope() as session:
        for patient_id in (mother.patient_id, child.patient_id):
            assert current_consent(session, patient_id, Channel.SMS) is ConsentState.OPTED_OUT


def test_keywords_apply_only_within_the_clinic_that_owns_the_number(monkeypatch: pytest.MonkeyPatch) -> None:
    ours = make_world()
    other = make_world(clinic_name="Other Clinic", sms_from="+14155550111", email="ana.other@example.org")
    http = client(monkeypatch)

    send_sms(http, "STOP")  # to our clinic's number

    with session_scope() as session:
        assert current_consent(session, ours.patient_id, Channel.SMS) is ConsentState.OPTED_OUT
        assert current_consent(session, other.patient_id, Channel.SMS) is ConsentState.OPTED_IN


# --- scores --------------------------------------------------------------------------------------


def test_score_reply_is_linked_to_the_latest_open_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    older = add_message(world, sent_at=utcnow() - timedelta(days=3))
    latest = add_message(world, sent_at=utcnow() - timedelta(hours=2))
    add_message(world, template="stretch", sent_at=utcnow() - timedelta(hours=1))  # not a prompt
    http = client(monkeypatch)

    response = send_sms(http, "Pain 7/10", sid="SM" + "7" * 32)

    [reply] = replies(response.text)
    assert "thank you" in reply.lower() and "7/10" in reply
    with session_scope() as session:
        outcome = session.scalars(select(Outcome)).one()
        inbound = session.scalars(select(InboundMessage)).one()
        assert (outcome.prompt_message_id, outcome.score, outcome.source) == (latest, 7, "sms")
        assert (outcome.patient_id, outcome.inbound_message_id) == (world.patient_id, inbound.id)
        assert (inbound.kind, inbound.flagged) == ("score", False)
    assert older != latest


def test_second_number_after_the_prompt_was_answered_goes_to_staff(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    add_message(world, sent_at=utcnow() - timedelta(days=3))  # older, never answered: superseded
    add_message(world, sent_at=utcnow() - timedelta(hours=2))
    http = client(monkeypatch)

    send_sms(http, "4")
    second = send_sms(http, "5")

    assert len(replies(second.text)) == 1
    with session_scope() as session:
        outcomes = session.scalars(select(Outcome).order_by(Outcome.id)).all()
        assert [(o.score, o.source, o.prompt_message_id is None) for o in outcomes] == [
            (4, "sms", False),
            (5, "sms_unsolicited", True),
        ]
        last = session.scalars(select(InboundMessage).order_by(InboundMessage.id.desc())).first()
        assert last is not None
        assert (last.kind, last.flagged, last.flag_reason) == ("score", True, "score with no open reassessment prompt")


@pytest.mark.parametrize(
    "prompt",
    ["none", "too old", "still sending", "email prompt"],
)
def test_score_without_an_open_sms_prompt_is_stored_and_flagged(monkeypatch: pytest.MonkeyPatch, prompt: str) -> None:
    world = make_world()
    if prompt == "too old":
        add_message(world, sent_at=utcnow() - timedelta(days=8))
    elif prompt == "still sending":
        add_message(world, status=MessageStatus.SENDING)
    elif prompt == "email prompt":
        add_message(world, channel=Channel.EMAIL)
    http = client(monkeypatch)

    response = send_sms(http, "6")

    [reply] = replies(response.text)
    assert "6/10" in reply
    with session_scope() as session:
        inbound = session.scalars(select(InboundMessage)).one()
        assert (inbound.kind, inbound.flagged, inbound.patient_id) == ("score", True, world.patient_id)
        assert inbound.flag_reason == "score with no open reassessment prompt"
        outcome = session.scalars(select(Outcome)).one()  # stored as unsolicited, for staff to see
        assert (outcome.score, outcome.source, outcome.prompt_message_id, outcome.inbound_message_id) == (
            6,
            "sms_unsolicited",
            None,
            inbound.id,
        )


def test_score_from_a_phone_two_patients_share_is_flagged_not_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    mother = make_world()
    child = add_patient_to_clinic(mother.clinic_id, phone=PATIENT_PHONE, first_name="Lia")
    add_message(mother, sent_at=utcnow() - timedelta(hours=3))
    add_message(child, sent_at=utcnow() - timedelta(hours=1))
    http = client(monkeypatch)

    response = send_sms(http, "3")

    assert response.status_code == 200
    assert replies(response.text) == []
    assert count(Outcome) == 0
    with session_scope() as session:
        inbound = session.scalars(select(InboundMessage)).one()
        assert inbound.patient_id is None
        assert (inbound.kind, inbound.flagged) == ("score", True)
        assert inbound.flag_reason == "phone shared by 2 patients: score not matched to a patient"


# --- idempotency ---------------------------------------------------------------------------------


def test_duplicate_inbound_deliveries_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    add_message(world, sent_at=utcnow() - timedelta(hours=2))
    http = client(monkeypatch)
    score_params = inbound_params("8", sid=new_sid())
    stop_params = inbound_params("STOP", sid=new_sid())

    first = post_twilio(http, "/webhooks/twilio/inbound", score_params)
    again = post_twilio(http, "/webhooks/twilio/inbound", score_params)
    post_twilio(http, "/webhooks/twilio/inbound", stop_params)
    stop_again = post_twilio(http, "/webhooks/twilio/inbound", stop_params)

    assert len(replies(first.text)) == 1
    assert replies(again.text) == [] and replies(stop_again.text) == []
    assert count(InboundMessage) == 2
    assert count(Outcome) == 1
    assert count(ConsentEvent) == 1


# --- status callbacks ----------------------------------------------------------------------------


def status_params(name: str, sid: str) -> dict[str, str]:
    return load("twilio_status.json", MessageSid=sid, To=PATIENT_PHONE, From="+14155550100")[name]


def test_status_callbacks_move_forward_and_never_back(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    sid = new_sid()
    message_id = add_message(world, template="visit-reminder", provider_message_id=sid)
    http = client(monkeypatch)
    path = f"/webhooks/twilio/status?m={message_id}"

    delivered = post_twilio(http, path, status_params("delivered", sid))
    late_sent = post_twilio(http, path, status_params("sent", sid))  # arrives after "delivered"
    late_failure = post_twilio(http, path, status_params("undelivered_30003", sid))

    assert [r.status_code for r in (delivered, late_sent, late_failure)] == [200, 200, 200]
    with session_scope() as session:
        message = session.get_one(Message, message_id)
        assert message.status is MessageStatus.DELIVERED
        assert message.delivered_at is not None and message.error_code is None
        events = session.scalars(select(DeliveryEvent).order_by(DeliveryEvent.id)).all()
        assert [(e.status, e.event_id, e.message_id) for e in events] == [
            ("delivered", f"{sid}:delivered", message_id),
            ("sent", f"{sid}:sent", message_id),
            ("undelivered", f"{sid}:undelivered", message_id),
        ]
        assert events[0].payload["RawDlrDoneDate"] == "2612021401"  # raw payload kept


def test_undelivered_callback_keeps_the_error_code(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    sid = new_sid()
    message_id = add_message(world, template="visit-reminder", provider_message_id=sid)
    http = client(monkeypatch)

    post_twilio(http, f"/webhooks/twilio/status?m={message_id}", status_params("undelivered_30003", sid))

    with session_scope() as session:
        message = session.get_one(Message, message_id)
        assert (message.status, message.error_code, message.last_error) == (
            MessageStatus.UNDELIVERED,
            "30003",
            "twilio error 30003",
        )
        assert current_consent(session, world.patient_id, Channel.SMS) is ConsentState.OPTED_IN


def test_error_21610_opts_the_patient_out_of_sms_once(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    sid = new_sid()
    message_id = add_message(world, template="visit-reminder", provider_message_id=sid)
    tomorrow = utcnow() + timedelta(days=1)
    pending = add_message(world, template="stretch", status=MessageStatus.SCHEDULED, due_at=tomorrow)
    pending_email = add_message(
        world, channel=Channel.EMAIL, template="what-to-expect", status=MessageStatus.SCHEDULED, due_at=tomorrow
    )
    http = client(monkeypatch)
    path = f"/webhooks/twilio/status?m={message_id}"

    post_twilio(http, path, status_params("failed_21610", sid))
    post_twilio(http, path, status_params("failed_21610", sid))  # Twilio retried

    with session_scope() as session:
        assert session.get_one(Message, message_id).status is MessageStatus.FAILED
        assert session.get_one(Message, message_id).error_code == "21610"
        assert session.get_one(Message, pending).status is MessageStatus.CANCELLED
        assert session.get_one(Message, pending_email).status is MessageStatus.SCHEDULED
        events = session.scalars(select(ConsentEvent)).all()
        assert [(e.channel, e.state, e.source) for e in events] == [
            (Channel.SMS, ConsentState.OPTED_OUT, "twilio_21610")
        ]
    assert count(DeliveryEvent) == 1


def test_status_callback_for_an_unknown_message_is_acknowledged_and_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    make_world()
    http = client(monkeypatch)

    by_id = post_twilio(http, "/webhooks/twilio/status?m=987654", status_params("delivered", new_sid()))
    by_sid = post_twilio(http, "/webhooks/twilio/status", status_params("delivered", new_sid()))

    assert (by_id.status_code, by_sid.status_code) == (200, 200)
    assert count(DeliveryEvent) == 0


def test_status_callback_reconciles_a_crash_after_the_provider_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    message_id = add_message(world, template="visit-reminder", status=MessageStatus.SENDING)  # no provider id
    sid = new_sid()
    http = client(monkeypatch)

    post_twilio(http, f"/webhooks/twilio/status?m={message_id}", status_params("sent", sid))

    with session_scope() as session:
        message = session.get_one(Message, message_id)
        assert (message.status, message.provider_message_id, message.provider) == (MessageStatus.SENT, sid, "twilio")
        assert message.sent_at is not None


def test_status_callback_never_overwrites_a_stored_provider_id(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    ours = new_sid()
    message_id = add_message(world, template="visit-reminder", provider_message_id=ours)
    http = client(monkeypatch)

    post_twilio(http, f"/webhooks/twilio/status?m={message_id}", status_params("delivered", new_sid()))

    with session_scope() as session:
        assert session.get_one(Message, message_id).provider_message_id == ours


def test_status_callback_with_a_bad_signature_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    sid = new_sid()
    message_id = add_message(world, template="visit-reminder", provider_message_id=sid)
    http = client(monkeypatch)
    params = status_params("failed_21610", sid)
    # Signed without the ?m= query: Twilio signs the full URL it called.
    response = post_twilio(
        http,
        f"/webhooks/twilio/status?m={message_id}",
        params,
        signature=twilio_signature("/webhooks/twilio/status", params),
    )

    assert response.status_code == 403
    assert count(DeliveryEvent) == 0 and count(ConsentEvent) == 0
    with session_scope() as session:
        assert session.get_one(Message, message_id).status is MessageStatus.SENT


# --- limits --------------------------------------------------------------------------------------


def test_oversized_body_is_refused_with_413(monkeypatch: pytest.MonkeyPatch) -> None:
    make_world()
    http = client(monkeypatch, ENGAGE_MAX_REQUEST_BYTES="2048")
    params = inbound_params("x" * 4000)

    declared = post_twilio(http, "/webhooks/twilio/inbound", params)

    def chunks() -> object:
        yield b"Body=" + b"x" * 1500
        yield b"y" * 1500

    streamed = http.post(
        "/webhooks/twilio/inbound",
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"},
    )

    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert count(InboundMessage) == 0
    small = send_sms(http, "HELP")
    assert small.status_code == 200
