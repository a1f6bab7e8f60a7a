"""The welcome SMS: one, the first time a patient is enrolled with text messages (CTIA), sent like any other."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from engage import clock
from engage.config import get_settings
from engage.content.links import read_intake_token
from engage.conversation.sms_replies import reply_text, words_for
from engage.db import session_scope
from engage.delivery.send_checks import render, send_time_check
from engage.records import clinics, patients, plans
from engage.records.models import Channel, ConsentState, Message, MessageStatus, Patient
from engage.schedule import enrollments
from engage.schedule.patient_changes import set_consent
from engage.schedule.reconcile import reconcile_enrollment
from tests.cli import engage

SEQUENCE = "dry-needling-sciatica"
NOON_IN_NEW_YORK = datetime(2030, 3, 4, 17, 0, tzinfo=timezone.utc)
MIDNIGHT_IN_NEW_YORK = datetime(2030, 3, 5, 5, 0, tzinfo=timezone.utc)
CLINIC = "Back in Motion"


def _patient(session: Session, *, phone: str | None, locale: str = "en", email: str | None = None) -> int:
    clinic = clinics.create_clinic(
        session,
        name=CLINIC,
        timezone="America/New_York",
        address="12 Elm St, Springfield, IL 62701",
        email="front@backinmotion.example",
        sms_from="+14155550100",
        phone="+14155550199",
        actor="test",
    )
    patient = patients.add_patient(
        session, clinic_id=clinic.id, first_name="Ana", last_name="Ruiz", email=email, phone=phone, actor="test"
    ).patient
    patient.locale = locale
    return patient.id


def _plan(session: Session, patient_id: int, days_ahead: int = 5) -> int:
    plan = plans.create_plan(
        session,
        patient_id=patient_id,
        condition="sciatica",
        modality="dry needling",
        first=clock.utcnow() + timedelta(days=days_ahead),
        sessions=3,
        every=timedelta(days=7),
        actor="test",
    )
    return plan.id


def _welcomes(session: Session, patient_id: int) -> list[Message]:
    session.expire_all()
    return list(
        session.scalars(
            select(Message).where(Message.patient_id == patient_id, Message.template == "welcome").order_by(Message.id)
        )
    )


@pytest.mark.parametrize(
    ("locale", "words"),
    [
        ("en", [CLINIC, "Msg frequency varies", "Msg & data rates may apply", "HELP", "STOP"]),
        ("es", [CLINIC, "La cantidad de mensajes puede variar", "tarifas de mensajes y datos", "AYUDA", "STOP o BAJA"]),
    ],
)
def test_first_enrollment_with_sms_writes_one_welcome_saying_who_what_how_often_rates_help_and_stop(
    session: Session,
    locale: str,
    words: list[str],
) -> None:
    with clock.frozen(NOON_IN_NEW_YORK):
        patient_id = _patient(session, phone="+14155550123", locale=locale)
        enrollment, result = enrollments.enroll(
            session, patient_id, _plan(session, patient_id), SEQUENCE, enrolled_by="test"
        )
        [welcome] = _welcomes(session, patient_id)
        planned = session.scalars(select(Message).where(Message.enrollment_id == enrollment.id)).all()

        assert (welcome.channel, welcome.status, welcome.due_at) == (
            Channel.SMS,
            MessageStatus.SCHEDULED,
            NOON_IN_NEW_YORK,
        )
        assert (welcome.step_key, welcome.occurrence, welcome.enrollment_id) == ("welcome", "patient", enrollment.id)
        assert result.inserted == len(planned)  # the welcome counts as one inserted row
        assert send_time_check(session, welcome, NOON_IN_NEW_YORK) is None  # not cancelled as "not planned"
        body = render(session, welcome, first_sms=True).payload.body  # type: ignore[union-attr]
        for word in words:
            assert word in body
        assert body.count("STOP") == 1  # no second opt-out line appended
        # The intake questionnaire's link, for this patient: baseline pain and activities before the first visit.
        [link] = [word for word in body.split() if "/q/" in word]
        assert read_intake_token(link.rsplit("/", 1)[1]) == patient_id
        # HELP says the same about the programme, plus the clinic's phone.
        assert words_for(locale)["programme"] in body
        help_text = reply_text(locale, "help", clinic_name=CLINIC, phone="(415) 555-0199")
        assert words_for(locale)["programme"] in help_text and "(415) 555-0199" in help_text

        # Re-planning neither moves, cancels nor duplicates it.
        reconcile_enrollment(session, enrollment.id)
        assert [(w.status, w.due_at) for w in _welcomes(session, patient_id)] == [
            (MessageStatus.SCHEDULED, NOON_IN_NEW_YORK)
        ]


def test_a_welcome_written_in_quiet_hours_is_due_when_they_end(session: Session) -> None:
    with clock.frozen(MIDNIGHT_IN_NEW_YORK):
        patient_id = _patient(session, phone="+14155550123")
        enrollments.enroll(session, patient_id, _plan(session, patient_id), SEQUENCE, enrolled_by="test")

    [welcome] = _welcomes(session, patient_id)
    assert welcome.due_at == datetime(2030, 3, 5, 13, 0, tzinfo=timezone.utc)  # 08:00 in New York


def test_a_second_enrollment_gets_no_second_welcome(session: Session) -> None:
    patient_id = _patient(session, phone="+14155550123")
    enrollments.enroll(session, patient_id, _plan(session, patient_id), SEQUENCE, enrolled_by="test")
    enrollments.enroll(session, patient_id, _plan(session, patient_id, days_ahead=6), SEQUENCE, enrolled_by="test")

    assert len(_welcomes(session, patient_id)) == 1


def test_an_email_only_patient_gets_no_welcome_until_an_enrollment_can_text_them(session: Session) -> None:
    patient_id = _patient(session, phone=None, email="ana@example.org")
    enrollments.enroll(session, patient_id, _plan(session, patient_id), SEQUENCE, enrolled_by="test")
    assert _welcomes(session, patient_id) == []

    session.get_one(Patient, patient_id).phone = "+14155550123"
    enrollments.enroll(session, patient_id, _plan(session, patient_id, days_ahead=6), SEQUENCE, enrolled_by="test")

    assert [w.status for w in _welcomes(session, patient_id)] == [MessageStatus.SCHEDULED]


def test_opting_out_cancels_a_waiting_welcome_and_opting_back_in_does_not_revive_it(session: Session) -> None:
    with clock.frozen(MIDNIGHT_IN_NEW_YORK):
        patient_id = _patient(session, phone="+14155550123")
        enrollments.enroll(session, patient_id, _plan(session, patient_id), SEQUENCE, enrolled_by="test")
        patient = session.get_one(Patient, patient_id)
        set_consent(session, patient, Channel.SMS, ConsentState.OPTED_OUT, reason="said no at the desk", actor="test")
        assert [(w.status, w.status_reason) for w in _welcomes(session, patient_id)] == [
            (MessageStatus.CANCELLED, "opted out (staff)")
        ]
        set_consent(session, patient, Channel.SMS, ConsentState.OPTED_IN, reason="changed her mind", actor="test")
        assert [w.status for w in _welcomes(session, patient_id)] == [MessageStatus.CANCELLED]


def test_tick_sends_the_welcome_into_the_outbox(session: Session) -> None:
    with clock.frozen(NOON_IN_NEW_YORK):
        patient_id = _patient(session, phone="+14155550123")
        enrollments.enroll(session, patient_id, _plan(session, patient_id), SEQUENCE, enrolled_by="test")
        [welcome] = _welcomes(session, patient_id)
        session.commit()

    done = engage("tick", "--now", NOON_IN_NEW_YORK.isoformat(), "--json")
    assert done.code == 0, done.stderr
    assert json.loads(done.stdout)["sent"] == 1  # only the welcome is due at noon on the day of enrolment

    sms = json.loads((get_settings().outbox_dir / f"sms-{welcome.id}.json").read_text(encoding="utf-8"))
    assert sms["to"] == "+14155550123"
    for words in (CLINIC, "Msg frequency varies", "Msg & data rates may apply", "Reply HELP", "STOP"):
        assert words in sms["body"]
    with session_scope() as s:
        assert s.get_one(Message, welcome.id).status is MessageStatus.SENT
