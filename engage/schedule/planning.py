"""PURE planning: (plan, appointments, sequence, clinic policy, enrollment) -> desired messages.

No clock, no database: the same inputs always give the same messages, each with a
deterministic occurrence key, so reconciling can diff them against the outbox and
re-running changes nothing.

Rules (documented here because staff and tests rely on them):

- **Counted appointments** are the plan's booked and completed ones, in start order
  (ties by id). ``first``/``each``/``last``/``every:N`` pick among them by 1-based
  position. A *cancelled* appointment does not count. A *no-show* does not count
  either: it was not a session, so "every 3rd session" and "the last session" keep
  meaning sessions the patient attended (or is booked for), and a no-show's own
  pending messages (aftercare, stretches) are dropped.
- ``plan.end`` is the end of the last non-cancelled appointment (no-shows included).
  A cancelled plan implies no messages.
- **Occurrence keys**: ``appt:<appointment id>`` for appointment anchors, ``enrollment``
  and ``plan.end`` for the others; a repeated step adds ``:day:<n>`` (n = the
  repetition's offset in calendar days) when it repeats by whole days, else ``:n:<i>``.
  Keys use the appointment id, not its position, so a moved appointment's messages
  move with it and a cancelled one's are left without a desired twin (cancelled).
- **Times**: an offset's whole days are calendar days in the patient's time zone,
  hours and minutes elapsed time; ``at`` pins the local wall time (09:00 stays 09:00
  across DST). Then quiet hours apply (see :mod:`engage.schedule.windows`) unless the step says
  ``quiet_hours: ignore``; a step with a negative offset is never placed at or after
  its anchor.
- **Late enrolment catches up**: a step *before* its appointment (negative offset) whose
  time had passed when the patient was enrolled goes out right after enrolment instead
  (quiet hours permitting) when the appointment is still at least
  :data:`CATCH_UP_LEAD` away: someone booked tomorrow still gets "what to expect".
  It depends only on the enrolment time, so re-planning gives the same answer.
- **One message a slot**: when two occurrences of the same step land on the same
  instant (stretch day 3 after one session = stretch day 1 after the next), only the
  one from the later anchor is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engage.records.models import AppointmentStatus, Channel, PlanStatus
from engage.records.quiet_hours import QuietHours, quiet_hours_for
from engage.schedule.sequences import APPOINTMENT_ANCHORS, Offset, Sequence, Step
from engage.schedule.windows import add_local_days, local_date, place, resolve_local

COUNTED = (AppointmentStatus.BOOKED, AppointmentStatus.COMPLETED)
#: A pre-visit message missed by a late enrolment is still worth sending this long before the visit.
CATCH_UP_LEAD = timedelta(hours=2)


@dataclass(frozen=True)
class AppointmentFacts:
    id: int
    start: datetime  # aware UTC
    end: datetime
    status: AppointmentStatus = AppointmentStatus.BOOKED


@dataclass(frozen=True)
class PlanFacts:
    id: int
    status: PlanStatus = PlanStatus.ACTIVE


@dataclass(frozen=True)
class Policy:
    """Where and when the patient may be messaged: their time zone and the clinic's quiet hours."""

    timezone: str
    quiet_hours: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EnrollmentFacts:
    id: int
    created_at: datetime


@dataclass(frozen=True, eq=True)
class DesiredMessage:
    step_key: str
    occurrence: str
    channel: Channel
    template: str
    due_at: datetime
    appointment_id: int | None
    context: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.step_key, self.occurrence)


@dataclass(frozen=True)
class _Anchor:
    at: datetime
    occurrence: str
    appointment_id: int | None
    context: dict[str, Any]


def plan_messages(
    plan: PlanFacts,
    appointments: list[AppointmentFacts],
    sequence: Sequence,
    policy: Policy,
    enrollment: EnrollmentFacts,
) -> list[DesiredMessage]:
    """Every message the sequence implies for this plan, sorted by due time (then step order, occurrence)."""
    if plan.status is PlanStatus.CANCELLED:
        return []
    tz = ZoneInfo(policy.timezone)
    live = sorted(
        (a for a in appointments if a.status is not AppointmentStatus.CANCELLED), key=lambda a: (a.start, a.id)
    )
    counted = [a for a in live if a.status in COUNTED]
    plan_end = max((a.end for a in live), default=None)

    quiet = {channel: quiet_hours_for(policy.quiet_hours, channel.value) for channel in Channel}
    messages: list[DesiredMessage] = []
    for step in sequence.steps:
        slots: dict[datetime, DesiredMessage] = {}
        for anchor in _anchors(step, counted, plan_end, enrollment):
            for index, offset in enumerate(step.offsets):
                due = _due(anchor.at, offset, step, tz, quiet[step.channel])
                if offset.negative and due < enrollment.created_at:
                    due = _catch_up(enrollment.created_at, anchor.at, step, tz, quiet[step.channel]) or due
                occurrence, extra = _occurrence(anchor.occurrence, step, index, offset)
                # Later anchors overwrite earlier ones at the same instant: one message a slot.
                slots[due] = DesiredMessage(
                    step_key=step.key,
                    occurrence=occurrence,
                    channel=step.channel,
                    template=step.template,
                    due_at=due,
                    appointment_id=anchor.appointment_id,
                    context={**anchor.context, **extra},
                )
        messages.extend(slots.values())
    step_order = {step.key: i for i, step in enumerate(sequence.steps)}
    messages.sort(key=lambda m: (m.due_at, step_order[m.step_key], m.occurrence))
    return messages


def _anchors(
    step: Step, counted: list[AppointmentFacts], plan_end: datetime | None, enrollment: EnrollmentFacts
) -> list[_Anchor]:
    if step.anchor in APPOINTMENT_ANCHORS:
        total = len(counted)
        return [
            _Anchor(
                at=a.start if step.anchor == "appointment.start" else a.end,
                occurrence=f"appt:{a.id}",
                appointment_id=a.id,
                context={"session_number": position, "session_count": total},
            )
            for position, a in enumerate(counted, start=1)
            if step.selects(position, total)
        ]
    if step.anchor == "enrollment":
        return [_Anchor(enrollment.created_at, "enrollment", None, {})]
    if plan_end is None:
        return []
    return [_Anchor(plan_end, "plan.end", None, {"session_count": len(counted)})]


def _occurrence(base: str, step: Step, index: int, offset: Offset) -> tuple[str, dict[str, Any]]:
    if step.repeat is None:
        return base, {}
    if step.repeat.every.whole_days:
        return f"{base}:day:{offset.days}", {"day": offset.days}
    return f"{base}:n:{index + 1}", {"repeat": index + 1}


def _due(anchor: datetime, offset: Offset, step: Step, tz: ZoneInfo, quiet: QuietHours) -> datetime:
    if step.at is not None:
        due = resolve_local(local_date(anchor, tz) + timedelta(days=offset.days), step.at, tz)
    else:
        due = add_local_days(anchor, offset.days, tz) + timedelta(minutes=offset.minutes)
    if step.quiet_hours == "ignore":
        return due
    return place(due, tz, quiet, not_after=anchor if offset.negative else None)


def _catch_up(enrolled: datetime, anchor: datetime, step: Step, tz: ZoneInfo, quiet: QuietHours) -> datetime | None:
    """The first whole minute after enrolment (then quiet hours), when the visit is still far enough away."""
    if anchor - enrolled < CATCH_UP_LEAD:
        return None
    due = (enrolled + timedelta(minutes=1)).replace(second=0, microsecond=0)
    if step.quiet_hours != "ignore":
        due = place(due, tz, quiet, not_after=anchor)
    return due if enrolled < due <= anchor - CATCH_UP_LEAD else None
