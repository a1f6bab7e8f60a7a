"""Who did what to whose record. Detail holds ids and field names, never patient data."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.records.models import (
    Appointment,
    AuditEvent,
    Enrollment,
    InboundMessage,
    Message,
    Patient,
    TreatmentPlan,
)


def audit(
    session: Session,
    *,
    clinic_id: int | None,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: int | None,
    **detail: Any,
) -> None:
    session.add(
        AuditEvent(
            clinic_id=clinic_id,
            actor=actor,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            detail=detail,
            at=utcnow(),
        )
    )


#: Reads recorded for HIPAA's audit controls (45 CFR 164.312(b)): who opened a patient's page, who exported a list.
PATIENT_VIEW = "patient.view"
LIST_EXPORT = "export"
READS = (PATIENT_VIEW,)


def record_view(session: Session, *, clinic_id: int, actor: str, patient_id: int) -> None:
    """Record that ``actor`` opened patient ``patient_id``'s record (not listed in :func:`patient_history`)."""
    audit(session, clinic_id=clinic_id, actor=actor, action=PATIENT_VIEW, subject_type="patient", subject_id=patient_id)


def record_export(session: Session, *, clinic_id: int, actor: str, what: str, **filters: str) -> None:
    """Record that ``actor`` exported the clinic's ``what`` list (e.g. ``messages``) with these filters (no PHI)."""
    audit(
        session,
        clinic_id=clinic_id,
        actor=actor,
        action=f"{what}.{LIST_EXPORT}",
        subject_type="clinic",
        subject_id=clinic_id,
        **{k: v for k, v in filters.items() if v},
    )


def patient_history(session: Session, patient_id: int, limit: int = 100) -> list[AuditEvent]:
    """What staff and engage changed on a patient's record (the patient, their plans, appointments, enrolments,
    messages and replies), newest first. Page views (:func:`record_view`) are in the audit log but not listed here."""
    plans = select(TreatmentPlan.id).where(TreatmentPlan.patient_id == patient_id)
    subjects = [
        ("patient", select(Patient.id).where(Patient.id == patient_id)),
        ("treatment_plan", plans),
        ("appointment", select(Appointment.id).where(Appointment.plan_id.in_(plans))),
        ("enrollment", select(Enrollment.id).where(Enrollment.patient_id == patient_id)),
        ("message", select(Message.id).where(Message.patient_id == patient_id)),
        ("inbound_message", select(InboundMessage.id).where(InboundMessage.patient_id == patient_id)),
    ]
    clinic_id = select(Patient.clinic_id).where(Patient.id == patient_id).scalar_subquery()
    return list(
        session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.clinic_id == clinic_id,
                AuditEvent.action.notin_(READS),
                or_(*(and_(AuditEvent.subject_type == kind, AuditEvent.subject_id.in_(ids)) for kind, ids in subjects)),
            )
            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
            .limit(limit)
        )
    )
