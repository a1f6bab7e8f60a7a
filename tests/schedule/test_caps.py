"""Frequency caps and step priorities, decided by the pure planner (issue 14)."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from engage.records.models import AppointmentStatus, Channel
from engage.schedule.planning import (
    FREQUENCY_CAP,
    AppointmentFacts,
    DesiredMessage,
    EnrollmentFacts,
    PlanFacts,
    Policy,
    SentSms,
    plan_messages,
)
from engage.schedule.sequences import get_sequence
from engage.schedule.windows import local_date

UTC = timezone.utc
TZ = "America/New_York"
SHIPPED = get_sequence("dry-needling-sciatica")
ENROLLED = EnrollmentFacts(id=1, created_at=datetime(2026, 11, 1, tzinfo=UTC))
PRIORITY = {step.key: step.priority for step in SHIPPED.steps}
URGENT = {step.key for step in SHIPPED.steps if step.urgent}  # aftercare: safety advice, outside the caps
WITH_EXERCISES = PlanFacts(1, has_exercises=True)


def every(days: int, n: int, first: datetime = datetime(2026, 11, 3, 15, 0, tzinfo=UTC)) -> list[AppointmentFacts]:
    return [
        AppointmentFacts(100 + i, first + timedelta(days=days * i), first + timedelta(days=days * i, minutes=45))
        for i in range(n)
    ]


def capped_policy(per_day: int = 1, per_week: int = 3, **extra: object) -> Policy:
    return Policy(TZ, {}, sms_per_day=per_day, sms_per_week=per_week, **extra)  # type: ignore[arg-type]


def sent_sms(messages: list[DesiredMessage]) -> list[DesiredMessage]:
    """The SMS the caps admitted (urgent ones are not counted against them)."""
    return [m for m in messages if m.channel is Channel.SMS and m.skip_reason is None and m.step_key not in URGENT]


def days_of(messages: list[DesiredMessage]) -> Counter[date]:
    return Counter(local_date(m.due_at, ZoneInfo(TZ)) for m in messages)


def test_a_patient_seen_every_three_days_gets_at_most_one_text_a_day_and_three_a_week() -> None:
    messages = plan_messages(WITH_EXERCISES, every(3, 7), SHIPPED, capped_policy(), ENROLLED)
    texts = sent_sms(messages)
    per_day = days_of(texts)
    assert max(per_day.values()) == 1
    first = min(per_day)
    for start in (first + timedelta(days=i) for i in range(30)):
        assert sum(per_day[start + timedelta(days=i)] for i in range(7)) <= 3
    # Every visit reminder still goes: it has the highest priority. Aftercare is never capped.
    assert len([m for m in texts if m.step_key == "visit-reminder"]) == 7
    assert {m.skip_reason for m in messages} == {None, FREQUENCY_CAP}
    assert all(m.skip_reason is None for m in messages if m.step_key == "aftercare")


def test_capped_messages_stay_on_the_timeline_with_the_reason() -> None:
    uncapped = plan_messages(WITH_EXERCISES, every(3, 4), SHIPPED, Policy(TZ), ENROLLED)
    capped = plan_messages(WITH_EXERCISES, every(3, 4), SHIPPED, capped_policy(), ENROLLED)
    assert [m.key for m in capped] == [m.key for m in uncapped]
    assert any(m.skip_reason == FREQUENCY_CAP for m in capped)


def test_a_higher_priority_step_wins_the_days_only_slot() -> None:
    # A reminder (24 h before a session) and a stretch prompt fall on the same day: the reminder goes.
    messages = plan_messages(WITH_EXERCISES, every(2, 2), SHIPPED, capped_policy(per_week=99), ENROLLED)
    on_reminder_day = [
        m
        for m in messages
        if m.channel is Channel.SMS
        and local_date(m.due_at, ZoneInfo(TZ)) == local_date(every(2, 2)[1].start, ZoneInfo(TZ)) - timedelta(days=1)
    ]
    kept = [m.step_key for m in on_reminder_day if m.skip_reason is None]
    assert kept == ["visit-reminder"]
    assert {m.step_key for m in on_reminder_day if m.skip_reason == FREQUENCY_CAP} >= {"stretch"}


def test_texts_already_sent_count_first() -> None:
    appointments = every(7, 1)
    reminder_day = appointments[0].start - timedelta(hours=24)
    history = (SentSms(reminder_day - timedelta(hours=1)),)  # another plan's text, same local day
    messages = plan_messages(PlanFacts(1), appointments, SHIPPED, capped_policy(), ENROLLED, history)
    reminder = next(m for m in messages if m.step_key == "visit-reminder")
    assert reminder.skip_reason == FREQUENCY_CAP


def test_a_step_turned_off_and_email_instead_of_sms() -> None:
    appointments = every(7, 4)
    off = plan_messages(WITH_EXERCISES, appointments, SHIPPED, Policy(TZ, steps_off=frozenset({"stretch"})), ENROLLED)
    assert not [m for m in off if m.step_key == "stretch"]
    no_phone = plan_messages(PlanFacts(1), appointments, SHIPPED, Policy(TZ, has_phone=False), ENROLLED)
    assert {m.channel for m in no_phone if m.step_key == "reassessment"} == {Channel.EMAIL}
    prefers = plan_messages(PlanFacts(1), appointments, SHIPPED, Policy(TZ, prefers_email=True), ENROLLED)
    assert {m.channel for m in prefers if m.step_key == "reassessment"} == {Channel.EMAIL}
    sms = plan_messages(PlanFacts(1), appointments, SHIPPED, Policy(TZ), ENROLLED)
    assert {m.channel for m in sms if m.step_key == "reassessment"} == {Channel.SMS}
    # Aftercare too goes by email to a patient without a phone (or opted out of texts).
    assert {m.channel for m in no_phone if m.step_key == "aftercare"} == {Channel.EMAIL}


def test_aftercare_and_stretches_follow_only_the_first_two_sessions() -> None:
    messages = plan_messages(WITH_EXERCISES, every(7, 5), SHIPPED, Policy(TZ), ENROLLED)
    for step in ("aftercare", "stretch"):
        assert {m.appointment_id for m in messages if m.step_key == step} == {100, 101}


@st.composite
def plans(draw: st.DrawFn) -> tuple[list[AppointmentFacts], Policy, tuple[SentSms, ...]]:
    start = datetime(2026, 11, 2, 12, 0, tzinfo=UTC) + timedelta(minutes=15 * draw(st.integers(0, 400)))
    appointments = []
    for i in range(draw(st.integers(0, 10))):
        start += timedelta(hours=draw(st.integers(20, 24 * 8)))
        status = draw(
            st.sampled_from(
                [
                    AppointmentStatus.BOOKED,
                    AppointmentStatus.COMPLETED,
                    AppointmentStatus.BOOKED,
                    AppointmentStatus.CANCELLED,
                ]
            )
        )
        appointments.append(AppointmentFacts(i + 1, start, start + timedelta(minutes=45), status))
    policy = capped_policy(draw(st.integers(0, 3)), draw(st.integers(0, 8)))
    history = tuple(
        SentSms(datetime(2026, 11, 2, tzinfo=UTC) + timedelta(hours=draw(st.integers(0, 24 * 40))))
        for _ in range(draw(st.integers(0, 4)))
    )
    return appointments, policy, history


@settings(max_examples=150, deadline=None)
@given(plans())
def test_caps_laws(scenario: tuple[list[AppointmentFacts], Policy, tuple[SentSms, ...]]) -> None:
    appointments, policy, history = scenario
    assert policy.sms_per_day is not None and policy.sms_per_week is not None
    messages = plan_messages(WITH_EXERCISES, appointments, SHIPPED, policy, ENROLLED, history)
    tz = ZoneInfo(TZ)
    counted = days_of(sent_sms(messages)) + Counter(local_date(h.due_at, tz) for h in history)
    texts = sent_sms(messages)
    for message in texts:  # each admitted text keeps its day and every week around it under the caps
        day = local_date(message.due_at, tz)
        assert counted[day] <= policy.sms_per_day
        for back in range(7):
            first = day - timedelta(days=back)
            assert sum(counted[first + timedelta(days=i)] for i in range(7)) <= policy.sms_per_week
    # Only SMS are capped; a capped message would not have fitted beside the texts of equal or higher priority.
    for message in messages:
        if message.skip_reason == FREQUENCY_CAP:
            assert message.channel is Channel.SMS and message.step_key not in URGENT
            day = local_date(message.due_at, tz)
            stronger = Counter(
                local_date(m.due_at, tz) for m in texts if PRIORITY[m.step_key] >= PRIORITY[message.step_key]
            )
            stronger += Counter(local_date(h.due_at, tz) for h in history)
            full_day = stronger[day] >= policy.sms_per_day
            full_week = any(
                sum(stronger[day - timedelta(days=back) + timedelta(days=i)] for i in range(7)) >= policy.sms_per_week
                for back in range(7)
            )
            assert full_day or full_week, message
    # Deterministic: the order appointments come in changes nothing.
    assert plan_messages(WITH_EXERCISES, list(reversed(appointments)), SHIPPED, policy, ENROLLED, history) == messages


def test_a_no_show_gets_a_follow_up_the_same_day_and_loses_its_aftercare() -> None:
    sessions = every(7, 3)
    missed = AppointmentFacts(sessions[1].id, sessions[1].start, sessions[1].end, AppointmentStatus.NO_SHOW)
    messages = plan_messages(PlanFacts(1), [sessions[0], missed, sessions[2]], SHIPPED, Policy(TZ), ENROLLED)
    (follow_up,) = [m for m in messages if m.step_key == "no-show-follow-up"]
    assert follow_up.appointment_id == missed.id and follow_up.occurrence == f"noshow:{missed.id}"
    assert local_date(follow_up.due_at, ZoneInfo(TZ)) == local_date(missed.start, ZoneInfo(TZ))
    assert not [m for m in messages if m.appointment_id == missed.id and m.step_key != "no-show-follow-up"]


def test_a_rebook_prompt_when_sessions_are_left_but_none_is_booked() -> None:
    done = [AppointmentFacts(a.id, a.start, a.end, AppointmentStatus.COMPLETED) for a in every(7, 2)]
    messages = plan_messages(PlanFacts(1, planned_sessions=6), done, SHIPPED, Policy(TZ), ENROLLED)
    (rebook,) = [m for m in messages if m.step_key == "rebook"]
    assert rebook.context["sessions_left"] == 4 and rebook.occurrence == "rebook:2"
    booked = [*done, every(7, 3)[2]]  # the next one is booked: no prompt
    assert not [
        m
        for m in plan_messages(PlanFacts(1, planned_sessions=6), booked, SHIPPED, Policy(TZ), ENROLLED)
        if m.step_key == "rebook"
    ]
    finished = plan_messages(PlanFacts(1, planned_sessions=2), done, SHIPPED, Policy(TZ), ENROLLED)
    assert not [m for m in finished if m.step_key == "rebook"]


def test_one_booking_confirmation_for_the_plan_then_one_for_each_appointment_added() -> None:
    enrolled = ENROLLED.created_at
    sessions = [AppointmentFacts(a.id, a.start, a.end, booked_at=enrolled - timedelta(minutes=5)) for a in every(7, 3)]
    added_at = enrolled + timedelta(days=10)
    late = every(7, 4)[3]
    added = AppointmentFacts(late.id, late.start, late.end, booked_at=added_at)
    messages = plan_messages(PlanFacts(1), [*sessions, added], SHIPPED, Policy(TZ), ENROLLED)
    confirmations = [m for m in messages if m.step_key == "booking-confirmation"]
    assert [(m.occurrence, m.appointment_id) for m in confirmations] == [
        ("booked:enrollment", sessions[0].id),
        (f"booked:{added.id}", added.id),
    ]
    assert confirmations[0].due_at >= enrolled + timedelta(minutes=1)  # then quiet hours (20:00 in New York)
    assert confirmations[1].due_at == added_at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    assert confirmations[0].context["booked_count"] == 3


def test_a_visit_recorded_after_it_started_is_history_and_confirms_nothing() -> None:
    enrolled = ENROLLED.created_at
    past, ahead = every(7, 2, first=enrolled - timedelta(days=3))  # the plan's first visit was before the enrolment
    sessions = [AppointmentFacts(a.id, a.start, a.end, booked_at=enrolled - timedelta(days=10)) for a in (past, ahead)]
    late = every(7, 4, first=enrolled - timedelta(days=3))[3]
    history = AppointmentFacts(
        9,
        enrolled + timedelta(days=20),
        enrolled + timedelta(days=20, minutes=45),
        booked_at=enrolled + timedelta(days=21),
    )  # synced the day after it happened
    added = AppointmentFacts(late.id, late.start, late.end, booked_at=enrolled + timedelta(days=5))
    messages = plan_messages(PlanFacts(1), [*sessions, history, added], SHIPPED, Policy(TZ), ENROLLED)
    confirmations = [m for m in messages if m.step_key == "booking-confirmation"]
    assert [(m.occurrence, m.appointment_id) for m in confirmations] == [
        ("booked:enrollment", ahead.id),
        (f"booked:{added.id}", added.id),
    ]
    assert confirmations[0].context["booked_count"] == 1
