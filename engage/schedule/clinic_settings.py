"""A clinic's messaging settings: its SMS name, frequency caps, steps turned off, email preference.

Each change re-plans the clinic's live enrollments, since every one of these
settings changes what the planner wants (a cap or a step turned off skips or
revives pending messages, the email preference moves a reassessment to email).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.config import get_settings
from engage.content.condition_words import condition_words_in
from engage.errors import InvalidInput
from engage.records.audit import AuditAction, audit
from engage.records.clinics import cap_value
from engage.records.lookup import get
from engage.records.models import Clinic, Enrollment, Patient
from engage.schedule.reconcile import PLANNING_ACTIVE, ReconcileResult, reconcile_plan

#: The longest ``sms_name``: it leads every SMS, and a lock screen shows about 40 characters in all.
SMS_NAME_MAX = 20
_UNSET = object()


def sms_name_value(text: str | None) -> str | None:
    """A clinic's short SMS name, checked: at most 20 characters and naming no condition or treatment
    (the rule of :mod:`engage.content.condition_words`, which sees through look-alike letters and
    finds words run together). Blank or None: no short name (SMS use the clinic's name).
    Raises ``InvalidInput``."""
    if text is None or not text.strip():
        return None
    name = " ".join(text.split())
    if len(name) > SMS_NAME_MAX:
        raise InvalidInput(f"the SMS name has {len(name)} characters; at most {SMS_NAME_MAX} fit")
    found = condition_words_in(name, get_settings().condition_words)
    if found:
        raise InvalidInput(
            f"the SMS name would name a condition or treatment on every lock screen ({', '.join(found)}); "
            "choose a name without it"
        )
    return name


def change_clinic_settings(
    session: Session,
    clinic_id: int,
    *,
    sms_name: str | None | object = _UNSET,
    sms_per_day: int | None | object = _UNSET,
    sms_per_week: int | None | object = _UNSET,
    steps_off: Iterable[str] = (),
    steps_on: Iterable[str] = (),
    prefers_email: bool | None = None,
    actor: str,
) -> tuple[Clinic, ReconcileResult]:
    """Change the settings given (an argument left out keeps its value; ``None`` for a cap restores the default,
    a blank ``sms_name`` removes it), then re-plan the clinic's live enrollments.

    Raises ``InvalidInput`` or ``NotFound`` before writing anything.
    """
    clinic: Clinic = get(session, Clinic, clinic_id)
    changed: list[str] = []
    if sms_name is not _UNSET:
        clinic.sms_name = sms_name_value(sms_name if isinstance(sms_name, str) else None)
        changed.append("sms_name")
    for field, value in (("sms_per_day", sms_per_day), ("sms_per_week", sms_per_week)):
        if value is not _UNSET:
            setattr(clinic, field, cap_value(value if isinstance(value, int) else None, field.replace("_", " ")))
            changed.append(field)
    off, on = set(steps_off), set(steps_on)
    if off & on:
        raise InvalidInput(f"a step cannot be turned both off and on: {', '.join(sorted(off & on))}")
    if off or on:
        # A new list: the JSON column notices reassignment, not changes inside the old one.
        clinic.steps_off = sorted((set(clinic.steps_off or []) | off) - on)
        changed.append("steps_off")
    if prefers_email is not None:
        clinic.prefers_email = prefers_email
        changed.append("prefers_email")
    if not changed:
        raise InvalidInput("give at least one setting to change")
    session.flush()
    audit(
        session,
        clinic_id=clinic.id,
        actor=actor,
        action=AuditAction.CLINIC_SETTINGS,
        subject_type="clinic",
        subject_id=clinic.id,
        fields=changed,
    )
    return clinic, replan_clinic(session, clinic.id)


def replan_clinic(session: Session, clinic_id: int) -> ReconcileResult:
    """Reconcile every plan of the clinic's patients that has a live enrollment."""
    plan_ids = session.scalars(
        select(Enrollment.plan_id)
        .join(Patient, Patient.id == Enrollment.patient_id)
        .where(Patient.clinic_id == clinic_id, Enrollment.status.in_(PLANNING_ACTIVE))
        .distinct()
        .order_by(Enrollment.plan_id)
    ).all()
    total = ReconcileResult()
    for plan_id in plan_ids:
        total += reconcile_plan(session, plan_id)
    return total
