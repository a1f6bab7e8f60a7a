"""Change a clinic's quiet hours and move its patients' pending messages to the new allowed times."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from engage.errors import InvalidInput
from engage.records.audit import AuditAction, audit
from engage.records.clinics import quiet_hours_settings
from engage.records.lookup import get
from engage.records.models import Clinic
from engage.schedule.clinic_settings import replan_clinic
from engage.schedule.reconcile import ReconcileResult


def set_quiet_hours(
    session: Session, clinic_id: int, given: Mapping[str, str], *, actor: str
) -> tuple[Clinic, ReconcileResult]:
    """Change a clinic's quiet hours (see :func:`quiet_hours_settings`) and re-plan its patients' messages.

    Every active or paused enrollment of the clinic's patients is reconciled, so pending
    messages move to the new allowed times. Returns the clinic and the summed changes.
    Raises ``InvalidInput`` or ``NotFound`` before writing anything.
    """
    clinic: Clinic = get(session, Clinic, clinic_id)
    if not given:
        raise InvalidInput("give the quiet hours to set for sms, email or both")
    # A new dict: the JSON column notices reassignment, not changes inside the old one.
    clinic.quiet_hours = quiet_hours_settings(given, clinic.quiet_hours)
    session.flush()
    audit(
        session,
        clinic_id=clinic.id,
        actor=actor,
        action=AuditAction.CLINIC_QUIET_HOURS,
        subject_type="clinic",
        subject_id=clinic.id,
        channels=sorted(given),
    )
    return clinic, replan_clinic(session, clinic.id)
