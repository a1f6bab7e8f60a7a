"""Plain words for staff: what enrolling would send (a preview), what a sequence's steps mean, and what a
change did to the messages ("2 moved, 1 cancelled").

:func:`preview_enrollment` runs the same planning as :func:`engage.schedule.enrollments.enroll`
without writing anything, so the preview is exactly what enrolling would schedule now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.records.models import Appointment, Channel, EnrollmentStatus, MessageStatus, Patient, TreatmentPlan
from engage.schedule.enrollments import reach_many
from engage.schedule.planning import EnrollmentFacts, plan_messages
from engage.schedule.reconcile import ReconcileResult, appointment_facts, plan_facts, policy_for, target_for
from engage.schedule.sequences import Offset, Sequence, Step
from engage.schedule.versions import published_content
from engage.schedule.welcome import WELCOME_STEP, WELCOME_TEMPLATE, first_allowed_minute, wants_welcome, welcomed


@dataclass(frozen=True)
class PreviewRow:
    """One message enrolling would plan: when (UTC and the patient's local time), and whether it would go."""

    step: str
    channel: Channel
    template: str
    due_at: datetime
    local_due_at: datetime
    status: MessageStatus
    reason: str | None


def preview_enrollment(session: Session, patient: Patient, plan: TreatmentPlan, sequence_key: str) -> list[PreviewRow]:
    """Every message enrolling ``plan`` into ``sequence_key`` now would plan (the welcome SMS included), in due
    order. Writes nothing.

    Planned from the clinic's published version of the sequence, else the shipped file, as enrolling would.
    Raises ``NotFound`` for an unknown sequence.
    """
    sequence = published_content(session, patient.clinic_id, sequence_key).sequence
    now = utcnow()
    appointments = session.scalars(select(Appointment).where(Appointment.plan_id == plan.id)).all()
    desired = plan_messages(
        plan_facts(plan),
        [appointment_facts(a) for a in appointments],
        sequence,
        policy_for(patient, patient.clinic),
        EnrollmentFacts(0, now),
    )
    reach = reach_many(session, [patient])[patient.id]
    tz = ZoneInfo(patient.effective_timezone)
    rows = []
    if wants_welcome(
        already_welcomed=bool(welcomed(session, [patient.id])),
        sms_refused=reach.get(Channel.SMS),
        channels=[m.channel for m in desired],
    ):
        due = first_allowed_minute(patient, patient.clinic, now)
        rows.append(
            PreviewRow(
                WELCOME_STEP, Channel.SMS, WELCOME_TEMPLATE, due, due.astimezone(tz), MessageStatus.SCHEDULED, None
            )
        )
    for message in sorted(desired, key=lambda m: (m.due_at, m.step_key)):
        target = target_for(message, enrollment_status=EnrollmentStatus.ACTIVE, enrolled_at=now, reach=reach, now=now)
        rows.append(
            PreviewRow(
                message.step_key,
                message.channel,
                message.template,
                message.due_at,
                message.due_at.astimezone(tz),
                target.status,
                target.reason,
            )
        )
    return sorted(rows, key=lambda r: (r.due_at, r.step))


def _span(offset: Offset) -> str:
    minutes = abs(offset.days) * 1440 + abs(offset.minutes)
    if offset.minutes == 0 and offset.days:
        days = abs(offset.days)
        return f"{days} day{'s' if days != 1 else ''}"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


_WHICH = {
    "first": "the first session",
    "each": "each session",
    "last": "the last session",
    "no_show": "a session marked no-show",
}


def _which(step: Step) -> str:
    parts = []
    for selector in step.appointments or ("each",):
        if selector.startswith("every:"):
            n = int(selector.split(":")[1])
            parts.append(f"every {_ordinal(n)} session")
        elif selector.startswith("first:"):
            n = int(selector.split(":")[1])
            parts.append(f"each of the first {n} sessions")
        else:
            parts.append(_WHICH.get(selector, f"sessions ({selector})"))  # a selector added later still reads
    return " and ".join(parts)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def describe_step(step: Step) -> str:
    """A step in plain words, e.g. "SMS 24 h before each session, moved earlier out of quiet hours"."""
    channel = "SMS" if step.channel is Channel.SMS else "Email"
    end = " ends" if step.anchor == "appointment.end" else ""
    target = {
        "appointment.start": _which(step),
        "appointment.end": _which(step),
        "appointment.next_start": "the session after " + _which(step),
        "enrollment": "enrollment",
        "plan.end": "the end of the plan",
        "appointment.booked": "a booking (one for the plan's bookings at enrolment, then each one added)",
        "plan.rebook": "the last session, when sessions are left and none is booked",
    }.get(step.anchor, str(step.anchor).replace(".", " "))  # an anchor added later must not break the page
    if step.at is not None:
        days = step.offset.days
        when = (
            f"at {step.at:%H:%M} local time, "
            + ("the same day as" if days == 0 else f"{_span(step.offset)} {'before' if days < 0 else 'after'}")
            + f" {target}{end}"
        )
    elif step.offset == Offset():
        when = f"when {target}{end or ' starts'}"
    else:
        when = f"{_span(step.offset)} {'before' if step.offset.negative else 'after'} {target}{end}"
    text = f"{channel} {when}"
    if step.needs_exercises:
        text += ", only when the practitioner picked exercises"
    if step.urgent:
        text += ", not counted against the frequency caps"
    if step.repeat is not None:
        text += f", then every {_span(step.repeat.every)} ({step.repeat.count} in all)"
    if step.quiet_hours == "ignore":
        text += ", even in quiet hours"
    elif step.offset.negative and step.anchor == "appointment.start":
        text += ", moved out of quiet hours (earlier when later would reach the session)"
    else:
        text += ", moved later out of quiet hours"
    return text


def describe_sequence(sequence: Sequence) -> list[tuple[Step, str]]:
    """Each step with its plain-words description."""
    return [(step, describe_step(step)) for step in sequence.steps]


_WORDS = (
    ("inserted", "planned"),
    ("moved", "moved"),
    ("updated", "updated"),
    ("cancelled", "cancelled"),
    ("skipped", "skipped"),
    ("revived", "back on the schedule"),
)


def describe_result(result: ReconcileResult) -> str:
    """What a change did to the messages, e.g. "2 messages moved, 1 cancelled"; "no messages changed"."""
    parts = [f"{getattr(result, name)} {word}" for name, word in _WORDS if getattr(result, name)]
    if not parts:
        return "no messages changed"
    first_count, rest = parts[0].split(" ", 1)
    noun = "message" if first_count == "1" else "messages"
    return ", ".join([f"{first_count} {noun} {rest}", *parts[1:]])
