"""The draft of a sequence beside the published version, on a real patient's plan (the sequence editor's preview).

For each message either version would still send the plan (not yet handed to a provider): its local send
time under each (planned by the same code as enrolling: quiet hours, caps and priorities applied; None
when the version does not send it, or the caps leave it out, with the reason) and its text rendered with
the patient's own details from each version's texts. Writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.content.message_context import planned_preview_context
from engage.content.rendering import TemplateError, Texts, as_texts, render_email, render_sms
from engage.errors import InvalidInput, NotFound
from engage.records.models import (
    HANDED_OVER_STATUSES,
    Appointment,
    Channel,
    Enrollment,
    Message,
    TreatmentPlan,
)
from engage.schedule.draft_checks import parse_definition
from engage.schedule.planning import DesiredMessage, EnrollmentFacts, plan_messages
from engage.schedule.reconcile import PLANNING_ACTIVE, appointment_facts, plan_facts, policy_for, sms_history
from engage.schedule.sequences import Sequence
from engage.schedule.versions import get_draft, published_content


@dataclass(frozen=True)
class PreviewRow:
    """One message of the plan under the draft and under the published version; times local to the patient.

    ``*_at`` None: that version does not send it (``*_skip`` says why when the caps or the patient's
    contact details leave it out); ``*_text`` None: not sent, else the rendered SMS, or an email's subject,
    a blank line and its text.
    """

    step_key: str
    channel: str
    draft_at: datetime | None
    published_at: datetime | None
    draft_text: str | None
    published_text: str | None
    occurrence: str = ""
    draft_skip: str | None = None
    published_skip: str | None = None

    @property
    def time_changed(self) -> bool:
        return self.draft_at != self.published_at

    @property
    def text_changed(self) -> bool:
        return self.draft_text != self.published_text


def preview_for_plan(session: Session, plan_id: int, key: str) -> list[PreviewRow]:
    """The clinic's draft of ``key`` beside its published version (or the shipped file) for plan ``plan_id``,
    in send order. Raises ``NotFound`` (no plan, no draft) or ``InvalidInput`` (the draft's steps do not read)."""
    plan = session.get(TreatmentPlan, plan_id)
    if plan is None:
        raise NotFound(f"no treatment plan with id {plan_id}")
    patient = plan.patient
    clinic_id = patient.clinic_id
    draft = get_draft(session, clinic_id, key)
    if draft is None:
        raise NotFound(f"no draft of sequence {key!r}")
    draft_sequence, problems = parse_definition(key, draft.definition)
    if draft_sequence is None:
        raise InvalidInput(f"the draft's steps do not read yet: {problems[0].field}: {problems[0].message}")
    published = published_content(session, clinic_id, key)

    now = utcnow()
    enrollment = session.scalars(
        select(Enrollment).where(
            Enrollment.plan_id == plan.id, Enrollment.sequence_key == key, Enrollment.status.in_(PLANNING_ACTIVE)
        )
    ).first()
    facts = EnrollmentFacts(enrollment.id, enrollment.created_at) if enrollment else EnrollmentFacts(0, now)
    history = sms_history(session, patient.id, enrollment.id if enrollment else 0)
    done: set[tuple[str, str]] = set()
    if enrollment is not None:
        done = {
            (m.step_key, m.occurrence)
            for m in session.execute(
                select(Message.step_key, Message.occurrence).where(
                    Message.enrollment_id == enrollment.id, Message.status.in_(HANDED_OVER_STATUSES)
                )
            )
        }
    appointments = {a.id: a for a in session.scalars(select(Appointment).where(Appointment.plan_id == plan.id))}
    policy = policy_for(patient, patient.clinic)

    def planned(sequence: Sequence) -> dict[tuple[str, str], DesiredMessage]:
        desired = plan_messages(
            plan_facts(plan),
            [appointment_facts(a) for a in appointments.values()],
            sequence,
            policy,
            facts,
            history,
        )
        return {m.key: m for m in desired if m.key not in done}

    sent_before = any(h.key is not None for h in history)
    draft_all, published_all = planned(draft_sequence), planned(published.sequence)
    first_sms = {
        "draft": _first_sms_key(draft_all, sent_before=sent_before),
        "published": _first_sms_key(published_all, sent_before=sent_before),
    }
    # What is still to come (an earlier one was sent, skipped, or is going now).
    draft_plan = {k: m for k, m in draft_all.items() if m.due_at >= now}
    published_plan = {k: m for k, m in published_all.items() if m.due_at >= now}
    tz = ZoneInfo(patient.effective_timezone)

    def text(message: DesiredMessage | None, texts: Mapping[str, str], first: tuple[str, str] | None) -> str | None:
        if message is None or message.skip_reason:
            return None
        context = planned_preview_context(
            session,
            patient,
            plan,
            appointments.get(message.appointment_id) if message.appointment_id is not None else None,
            message.channel.value,
            step=message.context,
            first_sms=message.key == first,
        )
        locale = patient.locale or "en"
        stored: Texts | None = as_texts(texts)
        try:
            if message.channel is Channel.SMS:
                return render_sms(message.template, context, locale, texts=stored).body
            email = render_email(message.template, context, locale, texts=stored)
            return f"{email.subject}\n\n{email.text}"
        except TemplateError as exc:
            return f"(does not render: {exc})"

    def local(message: DesiredMessage | None) -> datetime | None:
        return message.due_at.astimezone(tz) if message is not None and not message.skip_reason else None

    keys = sorted(
        set(draft_plan) | set(published_plan),
        key=lambda k: min(m.due_at for m in (draft_plan.get(k), published_plan.get(k)) if m is not None),
    )
    rows = []
    for message_key in keys:
        mine, theirs = draft_plan.get(message_key), published_plan.get(message_key)
        either = mine or theirs
        assert either is not None
        rows.append(
            PreviewRow(
                step_key=message_key[0],
                channel=either.channel.value,
                draft_at=local(mine),
                published_at=local(theirs),
                draft_text=text(mine, Texts(draft.texts), first_sms["draft"]),
                published_text=text(theirs, published.texts, first_sms["published"]),
                occurrence=message_key[1],
                draft_skip=mine.skip_reason if mine is not None else None,
                published_skip=theirs.skip_reason if theirs is not None else None,
            )
        )
    return rows


def _first_sms_key(planned: dict[tuple[str, str], DesiredMessage], *, sent_before: bool) -> tuple[str, str] | None:
    """The message that would carry the opt-out line: the earliest SMS sent, when none was sent before."""
    if sent_before:
        return None
    sms = [m for m in planned.values() if m.channel is Channel.SMS and not m.skip_reason]
    return min(sms, key=lambda m: m.due_at).key if sms else None
