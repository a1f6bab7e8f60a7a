"""Staff changes to a patient's contact details and consent, and the re-plan each one causes.

Both work inside the caller's session, raise ``InvalidInput`` before writing,
audit the change (field names and channels, never the values) and reconcile the
patient's live enrollments, so a new phone number revives skipped SMS, a new time
zone moves local-time messages, and a staff opt-out cancels what was pending.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from engage.conversation.consent import ONLY_THE_PATIENT_CAN_OPT_IN, opted_out_by_keyword, record_consent
from engage.errors import Conflict, InvalidInput
from engage.records import patients
from engage.records.audit import AuditAction, audit
from engage.records.models import Channel, ConsentEvent, ConsentState, Patient
from engage.schedule.reconcile import ReconcileResult, reconcile_patient

#: Fields whose change alters what planning wants (reach, local times, template locale).
_PLANNING_FIELDS = {"email", "phone", "timezone", "locale"}
STAFF_SOURCE = "staff"
_ACTION = {  # as the SMS webhook writes it
    (Channel.SMS, ConsentState.OPTED_IN): AuditAction.CONSENT_SMS_OPT_IN,
    (Channel.SMS, ConsentState.OPTED_OUT): AuditAction.CONSENT_SMS_OPT_OUT,
    (Channel.EMAIL, ConsentState.OPTED_IN): AuditAction.CONSENT_EMAIL_OPT_IN,
    (Channel.EMAIL, ConsentState.OPTED_OUT): AuditAction.CONSENT_EMAIL_OPT_OUT,
}


def update_patient(
    session: Session, patient: Patient, *, actor: str, **given: str | None
) -> tuple[list[str], ReconcileResult]:
    """Change the given fields (see ``engage.records.patients.update_patient``) and re-plan when it matters.

    Returns (changed field names, what the re-plan did to the messages).
    """
    changed = patients.update_patient(session, patient, actor=actor, **given)
    result = reconcile_patient(session, patient.id) if _PLANNING_FIELDS & set(changed) else ReconcileResult()
    return changed, result


def set_consent(
    session: Session,
    patient: Patient,
    channel: Channel | str,
    state: ConsentState | str,
    *,
    reason: str,
    actor: str,
) -> tuple[ConsentEvent, ReconcileResult]:
    """Record a consent given or withdrawn to a person (a verbal opt-out or opt-in), with the reason why.

    Source ``staff``; the reason is kept on the event. Opting out cancels the channel's
    pending messages; opting in brings back future ones skipped or cancelled for the opt-out.
    Raises ``InvalidInput`` for an unknown channel or state or an empty reason, and ``Conflict`` for an
    SMS opt-in after the patient opted out by keyword (only the patient's START undoes a STOP).
    """
    try:
        channel = Channel(channel)
        state = ConsentState(state)
    except ValueError:
        raise InvalidInput("consent is set per channel (sms or email) to opted_in or opted_out") from None
    reason = " ".join(reason.split())
    if not reason:
        raise InvalidInput("say why consent changes (e.g. 'asked at the desk to stop texts')")
    if channel is Channel.SMS and state is ConsentState.OPTED_IN and opted_out_by_keyword(session, patient.id):
        raise Conflict(ONLY_THE_PATIENT_CAN_OPT_IN, field="state")
    event = record_consent(session, patient.id, channel, state, STAFF_SOURCE, reason[:200])
    audit(
        session,
        clinic_id=patient.clinic_id,
        actor=actor,
        action=_ACTION[channel, state],
        subject_type="patient",
        subject_id=patient.id,
        consent_event_id=event.id,
    )
    return event, reconcile_patient(session, patient.id)
