"""What :func:`engage.delivery.send.send_one` asks of a message just before it goes: may it go now, and what exactly.

- :func:`send_time_check` asks planning's questions again (enrollment,
  appointment, re-planned time, consent, contact details, quiet hours), since
  the world may have changed since the row was written, and says what to do
  instead of sending: a :class:`Decision`, or None when the message may go.
- :func:`render` builds the provider payload (:class:`Ready`).
- :func:`content_problem` refuses an SMS whose real rendered body names a
  condition or treatment (``settings.condition_words``): a lock screen shows it
  to anyone. ``engage templates check`` catches this in a template with sample
  data, by the same rule (:mod:`engage.content.condition_words`); only here do the real
  clinic name and the patient's data go in.

All of it reads; the dispatcher writes. Nothing here logs patient data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.config import get_settings
from engage.content.condition_words import CONDITION_WORD_RULE, condition_words_in, with_plan_words
from engage.content.message_context import message_context
from engage.content.rendering import render_email, render_sms
from engage.conversation.consent import reachability
from engage.delivery.providers.base import OutgoingEmail, OutgoingSms
from engage.errors import InvalidInput, NotFound
from engage.records.models import (
    Appointment,
    AppointmentStatus,
    Channel,
    EnrollmentStatus,
    Message,
    MessageStatus,
    PlanStatus,
)
from engage.records.quiet_hours import quiet_hours_for
from engage.schedule.planning import EnrollmentFacts, plan_messages
from engage.schedule.reconcile import appointment_facts, plan_facts, policy_for
from engage.schedule.sequences import Step, get_sequence
from engage.schedule.windows import is_quiet, shift_forward

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Ready:
    """What the provider call needs, gathered while the transaction was open (none is held during the call)."""

    channel: Channel
    patient_id: int
    payload: OutgoingSms | OutgoingEmail
    segments: int | None
    #: The plan's own condition and modality: refused in an SMS like the configured words.
    plan_words: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    """A send-time check's verdict: a final status, or back to ``scheduled``.

    For ``scheduled``: ``due_at`` moves the row (and clears ``next_attempt_at``),
    ``next_attempt_at`` postpones it; with neither the row keeps both and
    ``resume_at`` says when it is due again.
    """

    status: MessageStatus
    reason: str
    due_at: datetime | None = None
    next_attempt_at: datetime | None = None
    resume_at: datetime | None = None


_NOT_PLANNED = object()


def _replan(session: Session, message: Message) -> tuple[Step | None, Any]:
    """The message's step and what planning wants for its (step, occurrence) today.

    Returns ``(None, None)`` when the sequence cannot be read (then only the
    status checks apply), ``_NOT_PLANNED`` when planning no longer wants it.
    """
    enrollment = message.enrollment
    try:
        sequence = get_sequence(enrollment.sequence_key)
    except (InvalidInput, NotFound) as exc:
        log.warning("message %d: sequence unreadable (%s); sending without re-planning", message.id,
                    type(exc).__name__)
        return None, None
    step = next((s for s in sequence.steps if s.key == message.step_key), None)
    if step is None:
        return None, _NOT_PLANNED
    plan = enrollment.plan
    patient = message.patient
    appointments = session.scalars(select(Appointment).where(Appointment.plan_id == plan.id)).all()
    desired = plan_messages(
        plan_facts(plan),
        [appointment_facts(a) for a in appointments],
        sequence,
        policy_for(patient, patient.clinic),
        EnrollmentFacts(enrollment.id, enrollment.created_at),
    )
    wanted = next((d for d in desired if d.key == (message.step_key, message.occurrence)), None)
    return step, wanted if wanted is not None else _NOT_PLANNED


def send_time_check(session: Session, message: Message, now: datetime) -> Decision | None:
    """Why ``message`` must not go out now (cancelled, skipped or deferred), or None when it may.

    Planning ran when the row was written; the world may have changed since
    (an appointment cancelled or moved while the row was queued, a STOP, a
    worker that was down until 3 a.m.), so the same rules are asked again.
    """
    enrollment = message.enrollment
    if enrollment.status is not EnrollmentStatus.ACTIVE:
        reason = "paused" if enrollment.status is EnrollmentStatus.PAUSED else f"enrollment {enrollment.status.value}"
        return Decision(MessageStatus.CANCELLED, reason)
    if enrollment.plan.status is PlanStatus.CANCELLED:
        return Decision(MessageStatus.CANCELLED, "plan cancelled")
    appointment = message.appointment
    if appointment is not None and appointment.status is AppointmentStatus.CANCELLED:
        return Decision(MessageStatus.CANCELLED, "appointment cancelled")
    if appointment is not None and appointment.status is AppointmentStatus.NO_SHOW:
        return Decision(MessageStatus.CANCELLED, "appointment no-show")
    # Claimed while due, then moved later (a reconcile that raced the claim): never early. Back on the
    # schedule as it now stands; the claim was engage's doing, so no attempt is used.
    wake = max(message.due_at, message.next_attempt_at or message.due_at)
    if wake > now:
        return Decision(MessageStatus.SCHEDULED, "not due yet (moved after it was claimed)", resume_at=wake)
    step, wanted = _replan(session, message)
    if wanted is _NOT_PLANNED:
        return Decision(MessageStatus.CANCELLED, "no longer planned")
    if wanted is not None and wanted.due_at != message.due_at:
        if wanted.due_at > now:
            return Decision(MessageStatus.SCHEDULED, "moved with its appointment", due_at=wanted.due_at)
        return Decision(MessageStatus.SKIPPED, "appointment moved; the new time has passed")
    # A message before its appointment (a reminder) is pointless once the appointment began.
    before_visit = appointment is not None and message.due_at < appointment.start_at
    if appointment is not None and before_visit and appointment.start_at <= now:
        return Decision(MessageStatus.SKIPPED, "too late: the appointment has begun")
    patient = message.patient
    unreachable = reachability(session, patient, message.channel)
    if unreachable:
        return Decision(MessageStatus.SKIPPED, unreachable)
    if step is None or step.quiet_hours != "ignore":
        tz = ZoneInfo(patient.effective_timezone)
        quiet = quiet_hours_for(patient.clinic.quiet_hours, Channel(message.channel).value)
        if is_quiet(now, tz, quiet):
            resume = shift_forward(now, tz, quiet)
            if appointment is not None and before_visit and appointment.start_at <= resume:
                return Decision(MessageStatus.SKIPPED, "quiet hours last until the appointment")
            return Decision(MessageStatus.SCHEDULED, "quiet hours", next_attempt_at=resume)
    return None


def render(session: Session, message: Message) -> Ready:
    """The provider payload for ``message``. Raises TemplateError."""
    settings = get_settings()
    patient = message.patient
    clinic = patient.clinic
    context = message_context(session, message)
    locale = patient.locale or "en"
    if message.channel is Channel.SMS:
        sms = render_sms(message.template, context, locale)
        # A clinic's own number is its sender; anything else (a messaging service) is the provider's setting.
        sender = clinic.sms_from if clinic.sms_from and clinic.sms_from.startswith("+") else None
        callback = f"{settings.public_url.rstrip('/')}/webhooks/twilio/status?m={message.id}"
        payload: OutgoingSms | OutgoingEmail = OutgoingSms(
            message_id=message.id, to=patient.phone or "", body=sms.body, sender=sender, status_callback=callback
        )
        plan = message.enrollment.plan
        return Ready(Channel.SMS, patient.id, payload, sms.segments, plan_words=(plan.condition, plan.modality))
    email = render_email(message.template, context, locale)
    payload = OutgoingEmail(
        message_id=message.id,
        to=patient.email or "",
        from_email=clinic.email_from,
        from_name=clinic.name,
        subject=email.subject,
        text=email.text,
        html=email.html,
        # RFC 8058 one-click unsubscribe: mailbox providers show their own button for it.
        headers={"List-Unsubscribe": f"<{context['unsubscribe_url']}>",
                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        categories=("engage",),
    )
    return Ready(Channel.EMAIL, patient.id, payload, None)


def content_problem(ready: Ready, words: list[str] | None = None) -> str | None:
    """Why this rendered message must never go out, or None. Only SMS are checked: email is not on a lock screen.

    The words are ``words`` (default: ``settings.condition_words``) plus the plan's own condition
    and modality. The reason names the rule and the word that matched, never the body (it goes
    into ``status_reason``, which staff and logs see).
    """
    if not isinstance(ready.payload, OutgoingSms):
        return None
    listed_words = with_plan_words(words if words is not None else get_settings().condition_words, *ready.plan_words)
    found = condition_words_in(ready.payload.body, listed_words)
    if not found:
        return None
    listed = ", ".join(repr(w) for w in found)
    return (f"{CONDITION_WORD_RULE}: the SMS would name a condition or treatment ({listed}); "
            "check the clinic name and the templates")
