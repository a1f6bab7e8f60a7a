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
- ``appointment.next_start`` is the start of the counted appointment after the selected one
  (none after the last). A step with ``needs_exercises`` implies nothing for a plan without
  exercises picked.
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
- **Booking confirmations** (``appointment.booked``): one at enrolment for the visits then
  booked, naming the first still to come, and one per visit booked later; a visit that had
  already started when it was booked or enrolled (history recorded by staff or a sync)
  confirms nothing, and its pre-visit steps fall in the past (skipped when planned).
- **One message a slot**: when two occurrences of the same step land on the same
  instant (stretch day 3 after one session = stretch day 1 after the next), only the
  one from the later anchor is kept.
- **One message a minute**: a message due in the same minute as another of the plan moves a
  minute later, unless its step pins a time of day (``at``) or it is the booking confirmation
  (which arrives with the welcome).
- **Steps turned off** by the clinic (``Policy.steps_off``) imply no messages.
- **Email instead**: a step with ``or_email`` goes by email when the patient has no
  usable phone, or has an email address and the clinic prefers email.
- **Frequency caps** (``Policy.sms_per_day`` / ``sms_per_week``; None: no cap): the
  patient's non-urgent SMS are admitted highest ``priority`` first (then earliest,
  then step order), each only while its local day holds fewer than ``sms_per_day``
  and every 7 consecutive local days around it fewer than ``sms_per_week``. SMS
  already handed to the provider (``history``, any enrollment of the patient) are
  admitted before anything else, since they cannot be taken back; one that is a
  planned message of this enrollment is that message. Messages due before the
  enrolment are not counted (they are never sent). A message that does not fit
  keeps its place with ``skip_reason`` :data:`FREQUENCY_CAP`, so the timeline shows it
  skipped before its time; the send-time check asks the same question again.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from engage.records.models import AppointmentStatus, Channel, PlanStatus
from engage.records.quiet_hours import QuietHours, quiet_hours_for
from engage.schedule.sequences import APPOINTMENT_ANCHORS, Offset, Sequence, Step
from engage.schedule.windows import add_local_days, is_quiet, local_date, place, resolve_local

COUNTED = (AppointmentStatus.BOOKED, AppointmentStatus.COMPLETED)
#: A pre-visit message missed by a late enrolment is still worth sending this long before the visit.
CATCH_UP_LEAD = timedelta(hours=2)
#: Occurrence keys of a no-show follow-up start with this (the send-time check must not cancel it as a no-show's).
NO_SHOW_OCCURRENCE = "noshow:"
#: The booking confirmation's step: it shares its minute with the welcome text (see :func:`_one_a_minute`).
BOOKING_STEP = "booking-confirmation"
#: The ``skip_reason`` (and the row's ``status_reason``) of an SMS the patient's frequency caps leave out.
FREQUENCY_CAP = "frequency cap"


@dataclass(frozen=True)
class AppointmentFacts:
    id: int
    start: datetime  # aware UTC
    end: datetime
    status: AppointmentStatus = AppointmentStatus.BOOKED
    booked_at: datetime | None = None  # None: booked before engage recorded it (counts as before the enrolment)


@dataclass(frozen=True)
class PlanFacts:
    id: int
    status: PlanStatus = PlanStatus.ACTIVE
    planned_sessions: int | None = None  # None: no rebook prompt
    has_exercises: bool = False  # the practitioner picked exercises (steps with needs_exercises)


@dataclass(frozen=True)
class Policy:
    """Where, when and how often the patient may be messaged: their time zone, the clinic's quiet
    hours, frequency caps (None: no cap), the steps it turned off, and which channels the patient has."""

    timezone: str
    quiet_hours: dict[str, Any] = field(default_factory=dict)
    sms_per_day: int | None = None
    sms_per_week: int | None = None
    steps_off: frozenset[str] = frozenset()
    has_phone: bool = True
    has_email: bool = True
    prefers_email: bool = False


@dataclass(frozen=True)
class SentSms:
    """An SMS already handed to the provider: it counts against the caps whatever happens next.

    ``key`` is its (step, occurrence) when it belongs to the enrollment being planned, else None.
    """

    due_at: datetime
    key: tuple[str, str] | None = None


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
    #: Planned, but not to be sent: :data:`FREQUENCY_CAP`.
    skip_reason: str | None = None

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
    history: tuple[SentSms, ...] = (),
) -> list[DesiredMessage]:
    """Every message the sequence implies for this plan, sorted by due time (then step order, occurrence);
    those the frequency caps leave out carry ``skip_reason``."""
    if plan.status is PlanStatus.CANCELLED:
        return []
    tz = ZoneInfo(policy.timezone)
    compiled = _compiled(sequence)
    live = sorted(
        (a for a in appointments if a.status is not AppointmentStatus.CANCELLED), key=lambda a: (a.start, a.id)
    )
    counted = [a for a in live if a.status in COUNTED]
    plan_end = max((a.end for a in live), default=None)

    quiet = _quiet_hours(policy.quiet_hours)
    enrolled_at = enrollment.created_at
    messages: list[DesiredMessage] = []
    made: dict[str, list[_Anchor]] = {}
    for planned in compiled.steps:
        step = planned.step
        if step.key in policy.steps_off or (step.needs_exercises and not plan.has_exercises):
            continue
        channel = _channel(step, policy)
        channel_quiet = quiet[channel]
        slots: dict[datetime, DesiredMessage] = {}
        for anchor in _anchors(planned, counted, plan_end, enrollment, live, plan, made):
            for offset, negative, suffix, extra in planned.offsets:
                due = _placed(anchor.at, offset, step.at, planned.ignore_quiet, tz, channel_quiet)
                if negative and due <= enrolled_at:
                    due = _catch_up(enrolled_at, anchor.at, step, tz, channel_quiet) or due
                # Later anchors overwrite earlier ones at the same instant: one message a slot.
                slots[due] = DesiredMessage(
                    step.key,
                    anchor.occurrence + suffix,
                    channel,
                    step.template,
                    due,
                    anchor.appointment_id,
                    {**anchor.context, **extra},
                )
        messages.extend(slots.values())
    step_order = compiled.order
    messages.sort(key=lambda m: (m.due_at, step_order[m.step_key], m.occurrence))
    shifts = compiled.shifts

    def quiet_at(message: DesiredMessage, at: datetime) -> bool:
        return message.step_key in shifts and is_quiet(at, tz, quiet[message.channel])

    spread = _one_a_minute(messages, compiled.pinned, compiled.before, quiet_at)
    return _apply_caps(spread, compiled, policy, tz, enrollment, history)


@dataclass(frozen=True)
class _PlannedStep:
    """A step with what planning asks of it for every plan worked out once (:func:`_compiled`)."""

    step: Step
    #: (offset, before its anchor, occurrence suffix, context added) per repetition.
    offsets: tuple[tuple[Offset, bool, str, dict[str, Any]], ...]
    ignore_quiet: bool
    #: The 1-based positions of the counted appointments the step is for, by how many are counted.
    positions: dict[int, tuple[int, ...]] = field(default_factory=dict, compare=False)

    def selected(self, total: int) -> tuple[int, ...]:
        found = self.positions.get(total)
        if found is None:
            found = self.positions[total] = tuple(p for p in range(1, total + 1) if self.step.selects(p, total))
        return found


@dataclass(frozen=True)
class _CompiledSequence:
    sequence: Sequence
    steps: tuple[_PlannedStep, ...]
    order: dict[str, int]  # step key -> its index
    pinned: frozenset[str]
    before: frozenset[str]
    shifts: frozenset[str]


_COMPILED: dict[int, _CompiledSequence] = {}


def _compiled(sequence: Sequence) -> _CompiledSequence:
    """What :func:`plan_messages` needs of ``sequence`` beyond a plan's facts, worked out once per sequence
    object (a publish plans thousands of enrollments with one; sequences are immutable)."""
    found = _COMPILED.get(id(sequence))
    if found is not None and found.sequence is sequence:
        return found
    steps = []
    for step in sequence.steps:
        offsets = []
        for index, offset in enumerate(step.offsets):
            occurrence, extra = _occurrence("", step, index, offset)
            offsets.append((offset, offset.negative, occurrence, extra))
        steps.append(_PlannedStep(step, tuple(offsets), step.quiet_hours == "ignore"))
    found = _CompiledSequence(
        sequence=sequence,
        steps=tuple(steps),
        order={step.key: i for i, step in enumerate(sequence.steps)},
        pinned=frozenset({step.key for step in sequence.steps if step.at is not None} | {BOOKING_STEP}),
        before=frozenset(step.key for step in sequence.steps if all(offset.negative for offset in step.offsets)),
        shifts=frozenset(step.key for step in sequence.steps if step.quiet_hours == "shift"),
    )
    if len(_COMPILED) >= 256:  # the sequence objects alive are few (cached versions, the library)
        _COMPILED.clear()
    _COMPILED[id(sequence)] = found
    return found


def _one_a_minute(
    messages: list[DesiredMessage],
    pinned: AbstractSet[str],
    before: AbstractSet[str],
    quiet_at: Callable[[DesiredMessage, datetime], bool],
) -> list[DesiredMessage]:
    """``messages`` (sorted) with each one that shares its minute with another moved a minute later.

    Two messages arriving together read as a burst (and the second is easily missed). Steps in
    ``pinned`` keep their minute: those with a local time of day (``at``), and the booking
    confirmation, which travels with the welcome text (planned on its own). When a later minute falls in
    quiet hours (``quiet_at``), a step in ``before`` (every offset before its anchor) moves earlier instead, so
    it stays out of them and before its visit; any other goes on to the first free minute after them.
    """

    def minute(at: datetime) -> datetime:
        return at.replace(second=0, microsecond=0) if at.second or at.microsecond else at

    taken = {minute(m.due_at) for m in messages if m.step_key in pinned}
    out = []
    for message in messages:
        due = message.due_at
        if message.step_key not in pinned:
            while minute(due) in taken:
                due += timedelta(minutes=1)
            if due != message.due_at and quiet_at(message, due):
                if message.step_key in before:  # go earlier instead, which also keeps it before its visit
                    due = message.due_at
                    while minute(due) in taken or quiet_at(message, due):
                        due -= timedelta(minutes=1)
                else:  # on past the quiet hours, as a message due in them is shifted
                    while minute(due) in taken or quiet_at(message, due):
                        due += timedelta(minutes=1)
            taken.add(minute(due))
        out.append(message if due == message.due_at else replace(message, due_at=due))
    out.sort(key=lambda m: m.due_at)  # stable: the order among equal times is kept
    return out


def _channel(step: Step, policy: Policy) -> Channel:
    if not step.or_email or not policy.has_email:
        return step.channel
    return Channel.EMAIL if (not policy.has_phone or policy.prefers_email) else step.channel


def _apply_caps(
    messages: list[DesiredMessage],
    compiled: _CompiledSequence,
    policy: Policy,
    tz: ZoneInfo,
    enrollment: EnrollmentFacts,
    history: tuple[SentSms, ...],
) -> list[DesiredMessage]:
    """``messages`` with ``skip_reason`` set on the SMS the caps leave out (see the module docstring)."""
    if policy.sms_per_day is None and policy.sms_per_week is None:
        return messages
    per_day = policy.sms_per_day if policy.sms_per_day is not None else 10**6
    per_week = policy.sms_per_week if policy.sms_per_week is not None else 10**6
    sent_keys = {h.key for h in history if h.key is not None}
    # Local days as ordinals (ints): the windows below add and compare them for every SMS of every plan.
    days: dict[int, int] = {}
    for h in history:
        day = _local_day(h.due_at, tz)
        days[day] = days.get(day, 0) + 1

    def fits(day: int) -> bool:
        if days.get(day, 0) >= per_day:
            return False
        # The 13 days that the seven 7-day windows through ``day`` cover; slide one window across them.
        # (Planning a year of visits for thousands of patients calls this for every SMS: keep it cheap.)
        if not days:  # nothing counted yet in any window
            return per_week > 0
        get = days.get
        span = [get(d, 0) for d in range(day - 6, day + 7)]
        if sum(span) < per_week:  # no window can be full
            return True
        week = sum(span[:7])
        for first in range(7):
            if week >= per_week:
                return False
            if first < 6:
                week += span[first + 7] - span[first]
        return True

    order = compiled.order
    steps = compiled.sequence.steps
    enrolled_at = enrollment.created_at
    candidates = [
        m
        for m in messages
        if m.channel is Channel.SMS
        and not steps[order[m.step_key]].urgent
        and (m.step_key, m.occurrence) not in sent_keys
        and m.due_at >= enrolled_at
    ]
    candidates.sort(key=lambda m: (-steps[order[m.step_key]].priority, m.due_at, order[m.step_key], m.occurrence))
    capped: set[tuple[str, str]] = set()
    for message in candidates:
        day = _local_day(message.due_at, tz)
        if fits(day):
            days[day] = days.get(day, 0) + 1
        else:
            capped.add((message.step_key, message.occurrence))
    if not capped:
        return messages
    return [replace(m, skip_reason=FREQUENCY_CAP) if (m.step_key, m.occurrence) in capped else m for m in messages]


@lru_cache(maxsize=1 << 16)
def _local_day(instant: datetime, tz: ZoneInfo) -> int:
    """The local date of ``instant`` in ``tz`` as an ordinal, remembered: the same few hundred instants recur
    across a clinic's plans (a slot grid), and converting to a zone is the dearest step of the caps."""
    return local_date(instant, tz).toordinal()


_QUIET: dict[QuietHours, QuietHours] = {}
_DEFAULT_QUIET: dict[Channel, QuietHours] = {}


def _quiet_hours(setting: dict[str, Any]) -> dict[Channel, QuietHours]:
    """:func:`quiet_hours_for` each channel, as the same objects for the same hours (they key :func:`_placed`'s
    cache, where the same object compares at once)."""
    if isinstance(setting, dict) and not setting:  # the default hours: most clinics
        if not _DEFAULT_QUIET:
            _DEFAULT_QUIET.update({channel: quiet_hours_for({}, channel.value) for channel in Channel})
        return _DEFAULT_QUIET
    found = {}
    for channel in Channel:
        hours = quiet_hours_for(setting, channel.value)  # each time: it warns about a bad setting
        if len(_QUIET) >= 1024:
            _QUIET.clear()
        found[channel] = _QUIET.setdefault(hours, hours)
    return found


def _anchors(
    planned: _PlannedStep,
    counted: list[AppointmentFacts],
    plan_end: datetime | None,
    enrollment: EnrollmentFacts,
    live: list[AppointmentFacts],
    plan: PlanFacts,
    made: dict[str, list[_Anchor]],
) -> list[_Anchor]:
    step = planned.step
    if step.anchor in APPOINTMENT_ANCHORS and "no_show" in (step.appointments or ()):
        return [
            _Anchor(a.start if step.anchor == "appointment.start" else a.end, f"{NO_SHOW_OCCURRENCE}{a.id}", a.id, {})
            for a in live
            if a.status is AppointmentStatus.NO_SHOW
        ]
    if step.anchor in APPOINTMENT_ANCHORS:
        every = made.get(step.anchor)  # the anchors of every counted appointment, made once for all steps
        if every is None:
            every = made[step.anchor] = _appointment_anchors(step.anchor, counted)
        if step.anchor == "appointment.next_start":  # none after the last
            return [every[position - 1] for position in planned.selected(len(counted)) if position < len(counted)]
        return [every[position - 1] for position in planned.selected(len(counted))]
    if step.anchor == "enrollment":
        return [_Anchor(enrollment.created_at, "enrollment", None, {})]
    if step.anchor == "appointment.booked":
        return _booked_anchors(counted, enrollment)
    if step.anchor == "plan.rebook":
        left = (plan.planned_sessions or 0) - len(counted)
        if not counted or left <= 0 or any(a.status is not AppointmentStatus.COMPLETED for a in counted):
            return []
        # Keyed by the sessions done: booking and completing another session makes a new prompt possible.
        return [_Anchor(counted[-1].end, f"rebook:{len(counted)}", None, {"sessions_left": left})]
    if plan_end is None:
        return []
    return [_Anchor(plan_end, "plan.end", None, {"session_count": len(counted)})]


def _appointment_anchors(anchor: str, counted: list[AppointmentFacts]) -> list[_Anchor]:
    """The ``anchor`` (appointment.start, .end or .next_start) of each counted appointment, by position
    (for .next_start: of every appointment but the last, whose anchor is the start of the next)."""
    total = len(counted)
    if anchor == "appointment.next_start":
        times = [a.start for a in counted[1:]]
    else:
        times = [a.start if anchor == "appointment.start" else a.end for a in counted]
    return [
        _Anchor(at, f"appt:{a.id}", a.id, {"session_number": position, "session_count": total})
        for position, (a, at) in enumerate(zip(counted, times, strict=False), start=1)  # next_start: one fewer
    ]


def _booked_anchors(counted: list[AppointmentFacts], enrollment: EnrollmentFacts) -> list[_Anchor]:
    """One confirmation for what was booked by the enrolment (the plan), then one per later booking.

    Only for visits still ahead then: one recorded after it started (staff or a sync recording
    history) confirms nothing, and the enrolment's confirmation names the first visit still to come.
    """
    total = len(counted)
    before = [
        a
        for a in counted
        if (a.booked_at is None or a.booked_at <= enrollment.created_at) and a.start > enrollment.created_at
    ]
    anchors = []
    # Whole minutes (like the late-enrolment catch-up), so a preview just before enrolling plans the same time.
    if before:
        anchors.append(
            _Anchor(
                _minute(enrollment.created_at),
                "booked:enrollment",
                before[0].id,
                {"session_count": total, "booked_count": len(before)},
            )
        )
    anchors += [
        _Anchor(_minute(a.booked_at), f"booked:{a.id}", a.id, {"session_count": total, "booked_count": 1})
        for a in counted
        if a.booked_at is not None and a.booked_at > enrollment.created_at and a.start > a.booked_at
    ]
    return anchors


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def _occurrence(base: str, step: Step, index: int, offset: Offset) -> tuple[str, dict[str, Any]]:
    if step.repeat is None:
        return base, {}
    if step.repeat.every.whole_days:
        return f"{base}:day:{offset.days}", {"day": offset.days}
    return f"{base}:n:{index + 1}", {"repeat": index + 1}


def _due(anchor: datetime, offset: Offset, step: Step, tz: ZoneInfo, quiet: QuietHours) -> datetime:
    return _placed(anchor, offset, step.at, step.quiet_hours == "ignore", tz, quiet)


@lru_cache(maxsize=1 << 16)
def _placed(
    anchor: datetime, offset: Offset, at: time | None, ignore_quiet: bool, tz: ZoneInfo, quiet: QuietHours
) -> datetime:
    """:func:`_due`, remembered: a function of the anchor's instant and the step's timing alone, and clinics
    book on a grid of slots, so re-planning thousands of enrollments (publishing) asks the same few hundred
    questions again and again."""
    if at is not None:
        due = resolve_local(local_date(anchor, tz) + timedelta(days=offset.days), at, tz)
    else:
        due = add_local_days(anchor, offset.days, tz) + timedelta(minutes=offset.minutes)
    if ignore_quiet:
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
