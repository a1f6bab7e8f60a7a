"""Small builders for tests that need a clinic, staff, patients with enrolled plans, and their messages."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.records.clinics import create_clinic
from engage.records.models import Clinic, InboundMessage, Message, MfaPolicy, Patient, StaffUser
from engage.records.patients import add_patient
from engage.records.plans import create_plan
from engage.records.staff import create_staff
from engage.schedule.enrollments import enroll

PASSWORD = "correct horse battery"
SEQUENCE = "dry-needling-sciatica"


def clinic(session: Session, name: str = "Back in Motion", email: str = "front@backinmotion.example") -> Clinic:
    """A clinic whose staff may sign in with a password alone (MFA tests set ``mfa_required`` themselves)."""
    made = create_clinic(
        session,
        name=name,
        timezone="America/New_York",
        address="12 Elm St, Springfield, IL 62701",
        email=email,
        sms_from="+14155550100",
        phone="+14155550100",
        region="US",
        actor="test",
    )
    made.mfa_required = MfaPolicy.NONE
    session.flush()
    return made


def staff(session: Session, clinic_id: int, email: str, role: str = "front_desk") -> StaffUser:
    return create_staff(
        session,
        clinic_id=clinic_id,
        email=email,
        name=email.split("@")[0].title(),
        role_name=role,
        password=PASSWORD,
        actor="test",
    )


def patient(
    session: Session,
    clinic_id: int,
    first: str = "Ana",
    last: str = "Ruiz",
    phone: str | None = None,
    email: str | None = None,
) -> Patient:
    return add_patient(
        session,
        clinic_id=clinic_id,
        first_name=first,
        last_name=last,
        phone=phone or "+14155550123",
        email=email,
        actor="test",
    ).patient


def enrolled(session: Session, patient_id: int, days_ahead: int = 5, sessions: int = 3) -> int:
    """A plan starting ``days_ahead`` days from now at 10:00 local, enrolled; returns the plan id."""
    first = (utcnow() + timedelta(days=days_ahead)).astimezone().strftime("%Y-%m-%dT10:00")
    plan = create_plan(
        session,
        patient_id=patient_id,
        condition="sciatica",
        modality="dry needling",
        first=first,
        sessions=sessions,
        every=timedelta(days=7),
        actor="test",
    )
    enroll(session, patient_id, plan.id, SEQUENCE, enrolled_by="test")
    return plan.id


def messages(session: Session, patient_id: int) -> list[Message]:
    return list(session.scalars(select(Message).where(Message.patient_id == patient_id).order_by(Message.due_at)))


def flagged_reply(
    session: Session,
    clinic_id: int,
    patient_id: int | None,
    body: str = "Can I come Friday instead?",
) -> InboundMessage:
    reply = InboundMessage(
        clinic_id=clinic_id,
        patient_id=patient_id,
        from_phone="+14155550123",
        to_phone="+14155550100",
        body=body,
        kind="other",
        flagged=True,
        flag_reason="message for staff",
        received_at=utcnow(),
    )
    session.add(reply)
    session.flush()
    return reply
