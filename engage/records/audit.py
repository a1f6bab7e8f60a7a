"""Who did what to whose record. Detail holds ids and field names, never patient data."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select
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


class AuditAction(enum.StrEnum):
    """What an audit event says was done. The values are what the ``audit_event.action`` column holds; never
    change one (old rows keep it), only add."""

    API_TOKEN_CREATE = "api_token.create"
    API_TOKEN_REVOKE = "api_token.revoke"
    APPOINTMENT_ADD = "appointment.add"
    APPOINTMENT_MOVE = "appointment.move"
    APPOINTMENT_BOOKED = "appointment.booked"
    APPOINTMENT_CANCELLED = "appointment.cancelled"
    APPOINTMENT_COMPLETED = "appointment.completed"
    APPOINTMENT_NO_SHOW = "appointment.no_show"
    APPOINTMENT_CONFIRMED_BY_PATIENT = "appointment.confirmed_by_patient"
    APPOINTMENT_CONFIRMED_BY_STAFF = "appointment.confirmed_by_staff"
    APPOINTMENT_CALLBACK_REQUESTED = "appointment.callback_requested"
    CLINIC_CREATE = "clinic.create"
    CLINIC_UPDATE = "clinic.update"
    CLINIC_QUIET_HOURS = "clinic.quiet_hours"
    CLINIC_SETTINGS = "clinic.settings"
    CLINIC_MFA_POLICY = "clinic.mfa_policy"
    CONSENT_EMAIL_OPT_IN = "consent.email_opt_in"
    CONSENT_EMAIL_OPT_OUT = "consent.email_opt_out"
    CONSENT_SMS_OPT_IN = "consent.sms_opt_in"
    CONSENT_SMS_OPT_OUT = "consent.sms_opt_out"
    ENROLLMENT_CREATE = "enrollment.create"
    ENROLLMENT_PAUSE = "enrollment.pause"
    ENROLLMENT_RESUME = "enrollment.resume"
    ENROLLMENT_CANCEL = "enrollment.cancel"
    MESSAGE_MARK_SENT = "message.mark_sent"
    MESSAGE_SEND_AGAIN = "message.send_again"
    MESSAGE_DROP = "message.drop"
    MESSAGE_STAFF_REPLY = "message.staff_reply"
    MESSAGES_EXPORT = "messages.export"
    OUTCOME_RECORD = "outcome.record"
    OUTCOME_FLAGGED_FOR_PRACTITIONER = "outcome.flagged_for_practitioner"
    PATIENT_CREATE = "patient.create"
    PATIENT_UPDATE = "patient.update"
    PATIENT_VIEW = "patient.view"
    PLAN_CREATE = "plan.create"
    PLAN_EXERCISES = "plan.exercises"
    PRACTITIONER_ADD = "practitioner.add"
    PURGE = "purge"
    REPLY_FLAGGED_URGENT = "reply.flagged_urgent"
    REPLY_HANDLED = "reply.handled"
    SEQUENCE_DRAFT_SAVE = "sequence.draft_save"
    SEQUENCE_DRAFT_DISCARD = "sequence.draft_discard"
    SEQUENCE_PUBLISH = "sequence.publish"
    STAFF_CREATE = "staff.create"
    STAFF_DEACTIVATE = "staff.deactivate"
    STAFF_LOGIN = "staff.login"
    STAFF_MFA_ENROLL = "staff.mfa_enroll"
    STAFF_MFA_RECOVERY_CODES = "staff.mfa_recovery_codes"
    STAFF_MFA_RECOVERY_USED = "staff.mfa_recovery_used"
    STAFF_MFA_RESET = "staff.mfa_reset"
    STAFF_RESET_PASSWORD = "staff.reset_password"
    SYNC_APPLY = "sync.apply"
    WEBHOOK_CREATE = "webhook.create"
    WEBHOOK_REMOVE = "webhook.remove"


def audit(
    session: Session,
    *,
    clinic_id: int | None,
    actor: str,
    action: AuditAction,
    subject_type: str,
    subject_id: int | None,
    **detail: Any,
) -> None:
    """Add one audit event to the session (written with the caller's transaction); ``detail``: ids and field
    names only, never patient data."""
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


def audit_many(
    session: Session,
    *,
    actor: str,
    action: AuditAction,
    subject_type: str,
    events: Iterable[tuple[int | None, int | None, dict[str, Any]]],
    at: datetime | None = None,
) -> None:
    """:func:`audit` for many subjects at once, as ``(clinic id, subject id, detail)``: one INSERT whatever
    their number (bulk paths such as enrolling thousands of plans), in the caller's transaction."""
    when = at or utcnow()
    values = [
        {
            "clinic_id": clinic_id,
            "actor": actor,
            "action": action,
            "subject_type": subject_type,
            "subject_id": subject_id,
            "detail": detail,
            "at": when,
        }
        for clinic_id, subject_id, detail in events
    ]
    if values:
        session.execute(insert(AuditEvent), values)


#: Reads recorded for HIPAA's audit controls (45 CFR 164.312(b)): who opened a patient's page, who exported a list.
READS = (AuditAction.PATIENT_VIEW,)


def record_view(session: Session, *, clinic_id: int, actor: str, patient_id: int) -> None:
    """Record that ``actor`` opened patient ``patient_id``'s record (not listed in :func:`patient_history`)."""
    audit(
        session,
        clinic_id=clinic_id,
        actor=actor,
        action=AuditAction.PATIENT_VIEW,
        subject_type="patient",
        subject_id=patient_id,
    )


def record_export(session: Session, *, clinic_id: int, actor: str, what: str, **filters: str) -> None:
    """Record that ``actor`` exported the clinic's ``what`` list (e.g. ``messages``) with these filters (no PHI).

    Raises ``ValueError`` for a list whose export has no :class:`AuditAction` (``<what>.export``).
    """
    audit(
        session,
        clinic_id=clinic_id,
        actor=actor,
        action=AuditAction(f"{what}.export"),
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
