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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, joinedload

from engage.config import get_settings
from engage.content.calendar import ICS_CONTENT_TYPE, ICS_FILENAME, event_summary, visit_ics
from engage.content.condition_words import CONDITION_WORD_RULE, condition_words_in, with_plan_words
from engage.content.message_context import earlier_sms_exists, message_context, pain_scores_of
from engage.content.rendering import Texts, as_texts, render_email, render_sms, template_variables
from engage.conversation.consent import newest_consent, reachability
from engage.delivery import staff_replies
from engage.delivery.providers.base import EmailAttachment, OutgoingEmail, OutgoingSms
from engage.errors import InvalidInput, NotFound
from engage.records.models import (
    Appointment,
    AppointmentStatus,
    Channel,
    ConsentState,
    Enrollment,
    EnrollmentStatus,
    Message,
    MessageStatus,
    Patient,
    PlanStatus,
)
from engage.records.quiet_hours import quiet_hours_for
from engage.schedule.planning import NO_SHOW_OCCURRENCE, EnrollmentFacts, plan_messages
from engage.schedule.reconcile import appointment_facts, plan_facts, policy_for, sms_history
from engage.schedule.sequences import Step
from engage.schedule.versions import content_at
from engage.schedule.welcome import is_welcome
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
    assert enrollment is not None  # a staff reply is checked by engage.delivery.staff_replies
    try:
        sequence = content_at(
            session, message.patient.clinic_id, enrollment.sequence_key, enrollment.sequence_version
        ).sequence
    except (InvalidInput, NotFound) as exc:
        log.warning(
            "message %d: sequence unreadable (%s); sending without re-planning",
            message.id,
            type(exc).__name__,
            extra={"message_id": message.id},
        )
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
        sms_history(session, patient.id, enrollment.id, leave_out=message.id),
    )
    wanted = next((d for d in desired if d.key == (message.step_key, message.occurrence)), None)
    return step, wanted if wanted is not None else _NOT_PLANNED


@dataclass(frozen=True)
class Loaded:
    """A message with what its checks and templates read: its patient's consent now, and whether it is the first SMS."""

    message: Message
    consent: ConsentState
    first_sms: bool
    #: An email's patient's pain scores, oldest first, when read with the batch (None: read when rendering).
    pain_scores: list[int] | None = None


def load_for_sending(session: Session, message_id: int) -> Loaded:
    """The message, its enrollment, plan, patient, clinic and appointment, consent and first-SMS flag: one SELECT."""
    message, consent, earlier_sms = session.execute(_load_statement(), {"message_id": message_id}).one()
    return Loaded(message, consent or ConsentState.OPTED_IN, not earlier_sms)


def load_many_for_sending(session: Session, message_ids: Sequence[int]) -> dict[int, Loaded]:
    """:func:`load_for_sending` for a send batch, in one SELECT: ``{id: Loaded}`` (ids that do not exist left out)."""
    if not message_ids:
        return {}
    rows = session.execute(_load_statement(many=True), {"message_ids": list(message_ids)}).all()
    emailed = {message.patient_id for message, _, _ in rows if message.channel is Channel.EMAIL}
    scores = pain_scores_of(session, emailed)
    return {
        message.id: Loaded(
            message,
            consent or ConsentState.OPTED_IN,
            not earlier,
            scores.get(message.patient_id, []) if message.channel is Channel.EMAIL else None,
        )
        for message, consent, earlier in rows
    }


@cache
def _load_statement(many: bool = False) -> Any:
    # Built once per process (SQLAlchemy then reuses its compiled form): building it cost more than running it.
    which = Message.id.in_(bindparam("message_ids", expanding=True)) if many else Message.id == bindparam("message_id")
    return (
        select(Message, newest_consent(Message.patient_id, Message.channel), earlier_sms_exists(Message))
        .where(which)
        .options(
            joinedload(Message.enrollment).joinedload(Enrollment.plan),
            joinedload(Message.patient).joinedload(Patient.clinic),
            joinedload(Message.appointment),
        )
        .execution_options(populate_existing=True)
    )


def _planned_step(session: Session, message: Message) -> tuple[Step | None, Any]:
    """Like :func:`_replan` for a row planned under its enrollment's current ``plan_version``: nothing to re-plan.

    Every change to what planning reads (appointments, the plan, the enrollment, consent,
    quiet hours) re-plans the enrollment and bumps the version, so an equal stamp means the
    row's time is still what planning wants; only the step is looked up (for its quiet-hours rule).
    """
    assert message.enrollment is not None
    enrollment = message.enrollment
    try:
        sequence = content_at(
            session, message.patient.clinic_id, enrollment.sequence_key, enrollment.sequence_version
        ).sequence
    except (InvalidInput, NotFound):
        return None, None
    step = next((s for s in sequence.steps if s.key == message.step_key), None)
    return (step, None) if step is not None else (None, _NOT_PLANNED)


def send_time_check(
    session: Session, message: Message, now: datetime, *, consent: ConsentState | None = None
) -> Decision | None:
    """Why ``message`` must not go out now (cancelled, skipped or deferred), or None when it may.

    Planning ran when the row was written; the world may have changed since
    (an appointment cancelled or moved while the row was queued, a STOP, a
    worker that was down until 3 a.m.), so the same rules are asked again.
    Statuses, consent, contact details and quiet hours are read as they are now;
    the due time is re-planned only when the enrollment was re-planned after the
    row was (its ``plan_version`` stamp is older). A staff member's reply (no enrollment) has its own rules
    (:func:`engage.delivery.staff_replies.send_time_check`).
    """
    enrollment = message.enrollment
    if enrollment is None:
        held = staff_replies.send_time_check(session, message, now, consent=consent)
        if held is None:
            return None
        status, reason, retry_at = held
        return Decision(status, reason, next_attempt_at=retry_at)
    if enrollment.status is not EnrollmentStatus.ACTIVE:
        reason = "paused" if enrollment.status is EnrollmentStatus.PAUSED else f"enrollment {enrollment.status.value}"
        return Decision(MessageStatus.CANCELLED, reason)
    if enrollment.plan.status is PlanStatus.CANCELLED:
        return Decision(MessageStatus.CANCELLED, "plan cancelled")
    appointment = message.appointment
    if appointment is not None and appointment.status is AppointmentStatus.CANCELLED:
        return Decision(MessageStatus.CANCELLED, "appointment cancelled")
    no_show_follow_up = (message.occurrence or "").startswith(NO_SHOW_OCCURRENCE)
    if appointment is not None and appointment.status is AppointmentStatus.NO_SHOW and not no_show_follow_up:
        return Decision(MessageStatus.CANCELLED, "appointment no-show")
    # Claimed while due, then moved later (a reconcile that raced the claim): never early. Back on the
    # schedule as it now stands; the claim was engage's doing, so no attempt is used.
    wake = max(message.due_at, message.next_attempt_at or message.due_at)
    if wake > now:
        return Decision(MessageStatus.SCHEDULED, "not due yet (moved after it was claimed)", resume_at=wake)
    current = message.plan_version is not None and message.plan_version == enrollment.plan_version
    if is_welcome(message):
        step, wanted = None, None  # no sequence plans it (engage.schedule.welcome): the other checks apply
    else:
        step, wanted = _planned_step(session, message) if current else _replan(session, message)
    if wanted is _NOT_PLANNED:
        return Decision(MessageStatus.CANCELLED, "no longer planned")
    if wanted is not None and wanted.skip_reason:
        # The planner's own answer, so a capped message is skipped here exactly when the timeline said so.
        return Decision(MessageStatus.SKIPPED, wanted.skip_reason)
    if wanted is not None and wanted.due_at != message.due_at:
        if wanted.due_at > now:
            return Decision(MessageStatus.SCHEDULED, "moved with its appointment", due_at=wanted.due_at)
        return Decision(MessageStatus.SKIPPED, "appointment moved; the new time has passed")
    # A message before its appointment (a reminder) is pointless once the appointment began.
    before_visit = appointment is not None and message.due_at < appointment.start_at
    if appointment is not None and before_visit and appointment.start_at <= now:
        return Decision(MessageStatus.SKIPPED, "too late: the appointment has begun")
    patient = message.patient
    unreachable = reachability(session, patient, message.channel, consent=consent)
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


def render(
    session: Session, message: Message, *, first_sms: bool | None = None, pain_scores: list[int] | None = None
) -> Ready:
    """The provider payload for ``message``. Raises TemplateError. ``first_sms``, ``pain_scores``: as read by
    :class:`Loaded`."""
    settings = get_settings()
    patient = message.patient
    clinic = patient.clinic
    locale = patient.locale or "en"
    texts = _stored_texts(session, message)
    needs = template_variables(Channel(message.channel).value, message.template, locale, texts=texts)
    context = message_context(session, message, first_sms, pain_scores=pain_scores, needs=needs)
    if message.channel is Channel.SMS:
        sms = render_sms(message.template, context, locale, texts=texts)
        # A clinic's own number is its sender; anything else (a messaging service) is the provider's setting.
        sender = clinic.sms_from if clinic.sms_from and clinic.sms_from.startswith("+") else None
        callback = f"{settings.public_url.rstrip('/')}/webhooks/twilio/status?m={message.id}"
        payload: OutgoingSms | OutgoingEmail = OutgoingSms(
            message_id=message.id, to=patient.phone or "", body=sms.body, sender=sender, status_callback=callback
        )
        plan = message.enrollment.plan if message.enrollment else None
        words = (plan.condition, plan.modality) if plan else ()
        return Ready(Channel.SMS, patient.id, payload, sms.segments, plan_words=words)
    email = render_email(message.template, context, locale, texts=texts)
    payload = OutgoingEmail(
        message_id=message.id,
        to=patient.email or "",
        from_email=clinic.email_from,
        from_name=clinic.name,
        subject=email.subject,
        text=email.text,
        html=email.html,
        # RFC 8058 one-click unsubscribe: mailbox providers show their own button for it.
        headers={
            "List-Unsubscribe": f"<{context['unsubscribe_url']}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        categories=("engage",),
        attachments=_calendar_attachment(message, clinic.email_from),
    )
    return Ready(Channel.EMAIL, patient.id, payload, None)


def _stored_texts(session: Session, message: Message) -> Texts | None:
    """The texts of the clinic's version the message's enrollment follows (None: the template files)."""
    enrollment = message.enrollment
    if enrollment is None or enrollment.sequence_version is None:
        return None
    content = content_at(session, message.patient.clinic_id, enrollment.sequence_key, enrollment.sequence_version)
    return as_texts(content.texts)


#: Email templates that carry an add-to-calendar file for the message's appointment (the first session's).
CALENDAR_TEMPLATES = frozenset({"what-to-expect"})


def _calendar_attachment(message: Message, email_from: str) -> tuple[EmailAttachment, ...]:
    """The appointment as an ``.ics`` file, for the templates in :data:`CALENDAR_TEMPLATES`; else nothing."""
    appointment = message.appointment
    if message.template not in CALENDAR_TEMPLATES or appointment is None:
        return ()
    clinic = message.patient.clinic
    domain = email_from.rpartition("@")[2] or "engage.invalid"
    data = visit_ics(
        uid=f"engage-{message.id}@{domain}",
        start=appointment.start_at,
        end=appointment.end_at,
        location=clinic.address,
        summary=event_summary(message.patient.locale, clinic.sms_name),
    )
    return (EmailAttachment(ICS_FILENAME, ICS_CONTENT_TYPE, data),)


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
    return (
        f"{CONDITION_WORD_RULE}: the SMS would name a condition or treatment ({listed}); "
        "check the clinic name and the templates"
    )
