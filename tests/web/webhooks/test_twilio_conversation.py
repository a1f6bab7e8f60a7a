"""Two-way SMS through the signed Twilio webhook: every opt-out form, confirmations, call-backs, scores in
words, high scores, asking again, the once-a-day answer to free text, and Twilio's Advanced Opt-Out."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from sqlalchemy import select

from engage.clock import utcnow
from engage.content.safety import emergency_rule
from engage.conversation.consent import current_consent
from engage.db import session_scope
from engage.records.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    Channel,
    ConsentEvent,
    ConsentState,
    InboundMessage,
    Message,
    MessageStatus,
    Outcome,
    Patient,
    TreatmentPlan,
)
from engage.records.patients import patient_json
from engage.schedule.reconcile import reconcile_enrollment
from tests.fixtures.webhooks.support import World, add_message, client, make_world, send_sms

pytestmark = pytest.mark.usefixtures("db_url")


def replies(response_text: str) -> list[str]:
    root = ET.fromstring(response_text)
    return [m.text or "" for m in root.findall("Message")]


def spanish(world: World) -> None:
    with session_scope() as session:
        session.get_one(Patient, world.patient_id).locale = "es"


def sms_consent(world: World) -> ConsentState:
    with session_scope() as session:
        return current_consent(session, world.patient_id, Channel.SMS)


def last_inbound() -> InboundMessage:
    with session_scope() as session:
        row = session.scalars(select(InboundMessage).order_by(InboundMessage.id.desc())).first()
        assert row is not None
        session.expunge(row)
        return row


def appointments(world: World) -> list[Appointment]:
    with session_scope() as session:
        rows = list(
            session.scalars(
                select(Appointment)
                .join(TreatmentPlan)
                .where(TreatmentPlan.patient_id == world.patient_id)
                .order_by(Appointment.start_at)
            )
        )
        session.expunge_all()
        return rows


# --- opt-out, in every form ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "locale", "keyword"),
    [
        ("opt out", "en", "OPTOUT"),
        ("STOP\x00", "en", "STOP"),  # signed as sent; the NUL goes after the signature check
        ("Stop please", "en", "STOP"),
        ("STOP ALL", "en", "STOPALL"),
        ('"STOP"', "en", "STOP"),
        ("\uff33\uff34\uff2f\uff30", "en", "STOP"),
        ("stop texting me", "en", "STOP"),
        ("BAJA", "es", "BAJA"),
        ("Parar", "es", "PARAR"),
        ("alto", "es", "ALTO"),
        ("DETENER", "es", "DETENER"),
        ("no me manden mas mensajes", "es", "REQUEST"),
    ],
)
def test_every_opt_out_form_stops_texts_with_one_confirmation_in_the_patients_language(
    monkeypatch: pytest.MonkeyPatch,
    body: str,
    locale: str,
    keyword: str,
) -> None:
    world = make_world()
    if locale == "es":
        spanish(world)
    with session_scope() as session:
        reconcile_enrollment(session, world.enrollment_id)
        pending = set(
            session.scalars(
                select(Message.id).where(
                    Message.patient_id == world.patient_id,
                    Message.channel == Channel.SMS,
                    Message.status == MessageStatus.SCHEDULED,
                )
            )
        )
    http = client(monkeypatch)

    [reply] = replies(send_sms(http, body).text)

    assert sms_consent(world) is ConsentState.OPTED_OUT
    expected = "ya no le enviaremos mensajes de texto" if locale == "es" else "you are unsubscribed"
    assert expected in reply
    with session_scope() as session:
        # No text still to go: each is cancelled, or goes by email where its step falls back to it.
        after = session.execute(select(Message.channel, Message.status).where(Message.id.in_(pending))).all()
        assert pending and all(
            status is MessageStatus.CANCELLED or (channel is Channel.EMAIL and status is MessageStatus.SCHEDULED)
            for channel, status in after
        )
        assert MessageStatus.CANCELLED in {status for _, status in after}
        event = session.scalars(select(ConsentEvent)).one()
        assert (event.source, event.detail) == ("sms_keyword", keyword)


@pytest.mark.parametrize(("body", "locale"), [("CANCEL", "en"), ("Cancel my appointment", "en"), ("CANCELAR", "es")])
def test_cancel_opts_out_and_says_the_appointments_are_not_cancelled(
    monkeypatch: pytest.MonkeyPatch,
    body: str,
    locale: str,
) -> None:
    world = make_world()
    if locale == "es":
        spanish(world)
    http = client(monkeypatch)

    [reply] = replies(send_sms(http, body).text)

    assert sms_consent(world) is ConsentState.OPTED_OUT
    assert {a.status for a in appointments(world)} == {AppointmentStatus.BOOKED}
    assert "(415) 555-0199" in reply
    if locale == "es":
        assert "Sus citas NO se han cancelado" in reply and "ALTA" in reply
    else:
        assert "Your appointments are NOT cancelled" in reply and "START" in reply


def test_yes_after_stop_confirms_but_does_not_resubscribe(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    http = client(monkeypatch)

    send_sms(http, "STOP")
    [reply] = replies(send_sms(http, "YES").text)

    assert sms_consent(world) is ConsentState.OPTED_OUT
    assert "confirmed" in reply


def test_spanish_opt_in_word_resubscribes(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    spanish(world)
    http = client(monkeypatch)

    send_sms(http, "BAJA")
    [reply] = replies(send_sms(http, "Alta").text)

    assert sms_consent(world) is ConsentState.OPTED_IN
    assert reply.startswith("Back in Motion: le volveremos a enviar mensajes de texto")


# --- confirm and reschedule -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "locale", "thanks"),
    [
        ("C", "en", "your appointment is confirmed"),
        ("Yes!", "en", "your appointment is confirmed"),
        ("SÍ", "es", "su cita queda confirmada"),
        ("confirm", "en", "your appointment is confirmed"),
        ("Sí, confirmo", "es", "su cita queda confirmada"),
        ("confirmado", "es", "su cita queda confirmada"),
        ("yes I'll be there", "en", "your appointment is confirmed"),
        ("see you then", "en", "your appointment is confirmed"),
    ],
)
def test_confirmation_marks_the_next_future_visit_never_a_later_one(
    monkeypatch: pytest.MonkeyPatch,
    body: str,
    locale: str,
    thanks: str,
) -> None:
    world = make_world()
    if locale == "es":
        spanish(world)
    first, second = appointments(world)[:2]
    latest = add_message(world, template="booking-confirmation")
    with session_scope() as session:  # the latest text that went out was about the second visit
        session.get_one(Message, latest).appointment_id = second.id
    http = client(monkeypatch)

    [reply] = replies(send_sms(http, body).text)

    assert thanks in reply
    after = {a.id: a for a in appointments(world)}
    assert after[first.id].confirmed_at is not None and after[second.id].confirmed_at is None
    with session_scope() as session:
        shown = patient_json(session.get_one(Patient, world.patient_id))
        listed = {a["id"]: a for a in shown["plans"][0]["appointments"]}
        assert listed[first.id]["confirmed_at"] == after[first.id].confirmed_at.isoformat()
        assert listed[second.id]["confirmed_at"] is None
    assert (last_inbound().kind, last_inbound().flagged) == ("confirm", False)


def test_confirmation_without_a_reminder_confirms_the_next_booked_visit(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    http = client(monkeypatch)

    send_sms(http, "c")

    first, *rest = appointments(world)
    assert first.confirmed_at is not None and all(a.confirmed_at is None for a in rest)


def test_confirmation_with_no_upcoming_visit_says_so_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    with session_scope() as session:
        for appointment in session.scalars(select(Appointment)):
            appointment.status = AppointmentStatus.CANCELLED
    http = client(monkeypatch)

    [reply] = replies(send_sms(http, "C").text)

    assert "no upcoming appointment" in reply
    assert all(a.confirmed_at is None for a in appointments(world))
    assert last_inbound().flag_reason == "confirm with no upcoming appointment"


def test_r_flags_the_appointment_for_a_call_back(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    spanish(world)
    http = client(monkeypatch)

    [reply] = replies(send_sms(http, "R").text)

    first = appointments(world)[0]
    assert first.callback_requested_at is not None and first.status is AppointmentStatus.BOOKED
    assert reply == "Back in Motion: gracias, le llamaremos para hacer una nueva cita."
    inbound = last_inbound()
    assert (inbound.kind, inbound.flagged, inbound.flag_reason) == (
        "reschedule",
        True,
        f"call back to rebook appointment {first.id}",
    )
    with session_scope() as session:
        actions = session.scalars(select(AuditEvent.action)).all()
        assert "appointment.callback_requested" in actions


# --- scores ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "score"), [("siete", 7), ("mi dolor es 7", 7), ("seven", 7), ("about 6", 6), ("a 7", 7), ("7/10", 7)]
)
def test_scores_in_words_are_recorded_against_the_open_prompt(
    monkeypatch: pytest.MonkeyPatch,
    body: str,
    score: int,
) -> None:
    world = make_world()
    prompt = add_message(world, sent_at=utcnow() - timedelta(hours=1))
    http = client(monkeypatch)

    [reply] = replies(send_sms(http, body).text)

    assert f"{score}/10" in reply
    with session_scope() as session:
        outcome = session.scalars(select(Outcome)).one()
        assert (outcome.prompt_message_id, outcome.score, outcome.source) == (prompt, score, "sms")


def test_a_high_score_is_flagged_for_the_practitioner_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    add_message(world, sent_at=utcnow() - timedelta(hours=1))
    http = client(monkeypatch)

    [reply] = replies(send_sms(http, "9").text)

    assert "9/10" in reply and "much worse" in reply and "(415) 555-0199" in reply and "911" in reply
    inbound = last_inbound()
    assert (inbound.flagged, inbound.flag_reason) == (True, "for the practitioner: pain 9/10")
    with session_scope() as session:
        assert "outcome.flagged_for_practitioner" in session.scalars(select(AuditEvent.action)).all()


def test_three_points_worse_than_last_time_is_flagged_even_below_eight(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    spanish(world)
    add_message(world, sent_at=utcnow() - timedelta(days=5))
    http = client(monkeypatch)
    [calm] = replies(send_sms(http, "3").text)
    add_message(world, sent_at=utcnow() - timedelta(hours=1))

    [worse] = replies(send_sms(http, "seis").text)

    assert calm == "Back in Motion: gracias, hemos anotado su nivel de dolor de 3/10."
    assert "6/10" in worse and emergency_rule("es", sms=True) in worse
    assert last_inbound().flag_reason == "for the practitioner: pain 6/10 (was 3)"


def test_an_ambiguous_answer_is_asked_again_once_then_left_to_staff(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    add_message(world, sent_at=utcnow() - timedelta(hours=1))
    http = client(monkeypatch)

    [ask] = replies(send_sms(http, "5 or 6").text)
    again = replies(send_sms(http, "5-6").text)
    [thanks] = replies(send_sms(http, "6").text)

    assert "one whole number from 0" in ask
    assert again == []
    assert "6/10" in thanks
    with session_scope() as session:
        rows = session.scalars(select(InboundMessage).order_by(InboundMessage.id)).all()
        assert [(r.kind, r.flagged, r.auto_reply) for r in rows] == [
            ("ambiguous", False, "ask_again"),
            ("ambiguous", True, None),
            ("score", False, "score"),
        ]
        assert session.scalars(select(Outcome.score)).all() == [6]


# --- anything else ----------------------------------------------------------------------------------


def test_free_text_is_flagged_and_answered_at_most_once_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    spanish(world)
    http = client(monkeypatch)

    [first] = replies(send_sms(http, "Tengo mucho dolor en la pierna").text)
    second = replies(send_sms(http, "¿Me pueden llamar?").text)
    with session_scope() as session:  # a day later the patient may get the answer again
        for row in session.scalars(select(InboundMessage)):
            row.received_at = utcnow() - timedelta(days=1, minutes=1)
    third = replies(send_sms(http, "Hola?").text)

    assert first == (
        "Back in Motion: no contestamos consultas de salud por texto; llame al (415) 555-0199. "
        f"{emergency_rule('es', sms=True)} Para darse de baja: STOP o BAJA."
    )
    assert second == [] and third == [first]
    with session_scope() as session:
        rows = session.scalars(select(InboundMessage).order_by(InboundMessage.id)).all()
        assert [(r.kind, r.flagged, r.flag_reason) for r in rows] == [("other", True, "message for staff")] * 3


# --- Twilio Advanced Opt-Out ---------------------------------------------------------------------------


def test_with_twilio_answering_keywords_we_record_consent_but_stay_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world()
    spanish(world)
    http = client(monkeypatch, ENGAGE_TWILIO_HANDLES_KEYWORDS="true")

    assert replies(send_sms(http, "STOP").text) == []  # Twilio already said it
    assert sms_consent(world) is ConsentState.OPTED_OUT
    assert replies(send_sms(http, "START").text) == []
    assert replies(send_sms(http, "HELP").text) == []
    assert sms_consent(world) is ConsentState.OPTED_IN
    # Words Twilio does not know are still ours to answer.
    [baja] = replies(send_sms(http, "BAJA").text)
    [please] = replies(send_sms(http, "stop please").text)
    assert "ya no le enviaremos" in baja and "ya no le enviaremos" in please
    assert sms_consent(world) is ConsentState.OPTED_OUT
