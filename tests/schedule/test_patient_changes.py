"""Staff edits to a patient and staff-recorded consent: validated, audited, and the messages follow."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.records.models import AuditEvent, Channel, ConsentEvent, ConsentState, MessageStatus
from engage.records.patients import FieldErrors
from engage.schedule.patient_changes import set_consent, update_patient
from engage.schedule.planning import FREQUENCY_CAP
from tests import seed


def test_bad_fields_are_each_named_and_nothing_changes(session: Session) -> None:
    clinic = seed.clinic(session)
    ana = seed.patient(session, clinic.id)
    with pytest.raises(FieldErrors) as failed:
        update_patient(session, ana, phone="555", timezone="Mars/Olympus", first_name=" ", actor="test")
    assert set(failed.value.errors) == {"phone", "timezone", "first_name"}
    session.refresh(ana)
    assert (ana.first_name, ana.phone, ana.timezone) == ("Ana", "+14155550123", None)


def test_a_new_time_zone_moves_pending_messages_and_is_audited_by_field_name(session: Session) -> None:
    clinic = seed.clinic(session)
    ana = seed.patient(session, clinic.id, email="ana@example.com")
    seed.enrolled(session, ana.id)
    before = {m.id: m.due_at for m in seed.messages(session, ana.id)}
    changed, result = update_patient(session, ana, timezone="America/Los_Angeles", actor="desk@clinic.example")
    assert changed == ["timezone"] and result.moved > 0
    session.expire_all()
    assert any(m.due_at != before[m.id] for m in seed.messages(session, ana.id))
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "patient.update"))
    assert event is not None and event.actor == "desk@clinic.example" and event.detail == {"fields": ["timezone"]}


def test_staff_opt_out_cancels_pending_sms_and_opt_in_brings_them_back(session: Session) -> None:
    clinic = seed.clinic(session)
    ana = seed.patient(session, clinic.id, email="ana@example.com")
    seed.enrolled(session, ana.id)
    event, _ = set_consent(session, ana, "sms", "opted_out", reason="asked at the desk", actor="desk@clinic.example")
    assert (event.source, event.detail) == ("staff", "asked at the desk")
    # Texts the frequency caps leave out stay skipped for that reason (tests/schedule/test_caps.py).
    sms = [m for m in seed.messages(session, ana.id) if m.channel is Channel.SMS and m.status_reason != FREQUENCY_CAP]
    assert sms and all(m.status is MessageStatus.CANCELLED for m in sms)
    _, result = set_consent(session, ana, Channel.SMS, ConsentState.OPTED_IN, reason="changed her mind", actor="test")
    session.expire_all()
    # Every planned text comes back; the welcome SMS does not (engage.schedule.welcome: never revived for consent).
    assert result.revived == len(sms) - 1
    after = [m for m in seed.messages(session, ana.id) if m.channel is Channel.SMS]
    assert all(
        m.status is MessageStatus.SCHEDULED
        for m in after
        if m.step_key != "welcome" and m.status_reason != FREQUENCY_CAP
    )
    assert [m.status for m in after if m.step_key == "welcome"] == [MessageStatus.CANCELLED]
    assert [e.state for e in session.scalars(select(ConsentEvent).order_by(ConsentEvent.id))] == [
        ConsentState.OPTED_OUT,
        ConsentState.OPTED_IN,
    ]
    actions = list(session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("consent.%"))))
    assert actions == ["consent.sms_opt_out", "consent.sms_opt_in"]


def test_consent_change_needs_a_reason(session: Session) -> None:
    clinic = seed.clinic(session)
    ana = seed.patient(session, clinic.id)
    with pytest.raises(ValueError, match="say why"):
        set_consent(session, ana, "sms", "opted_out", reason="  ", actor="test")
    assert session.scalar(select(ConsentEvent.id)) is None
