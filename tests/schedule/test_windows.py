"""Quiet hours, local wall times and DST (pure: no database)."""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engage.records.quiet_hours import (
    QuietHours,
    _warn_bad_setting,
    describe_quiet_hours,
    parse_window,
    quiet_hours_for,
)
from engage.schedule.windows import add_local_days, is_quiet, place, resolve_local, shift_backward, shift_forward

NY = ZoneInfo("America/New_York")
ZONES = [
    ZoneInfo(name)
    for name in (
        "America/New_York",
        "Europe/Madrid",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
        "America/St_Johns",
        "Pacific/Chatham",
        "UTC",
        "America/Santiago",
    )
]
DEFAULT = QuietHours()


def ny(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NY)


def test_default_quiet_hours_are_eight_pm_to_eight_am_half_open() -> None:
    assert DEFAULT.contains(time(20, 0))
    assert DEFAULT.contains(time(3, 0))
    assert DEFAULT.contains(time(7, 59, 59))
    assert not DEFAULT.contains(time(8, 0))
    assert not DEFAULT.contains(time(19, 59))


def test_quiet_hours_per_channel_fall_back_to_the_default() -> None:
    policy = {"sms": {"start": "21:00", "end": "09:30"}}
    assert quiet_hours_for(policy, "sms") == QuietHours(time(21, 0), time(9, 30))
    assert quiet_hours_for(policy, "email") == DEFAULT
    assert quiet_hours_for({}, "sms") == DEFAULT


def test_a_quiet_hours_setting_is_parsed_strictly_when_written() -> None:
    assert parse_window("20:00-08:00") == {"start": "20:00", "end": "08:00"}
    assert parse_window(" 9:05 - 17:30 ") == {"start": "09:05", "end": "17:30"}
    assert parse_window("Off") == {"off": True}
    for bad, says in [
        ("20:00-20:00", "same time; write 'off'"),
        ("00:00-0:00", "same time"),
        ("24:00-08:00", "'24:00'"),
        ("20:00-08:60", "'08:60'"),
        ("20:00", "START-END"),
        ("20:00-", "START-END"),
        ("-08:00", "START-END"),
        ("", "START-END"),
        ("20:00-08:00-09:00", "START-END"),
        ("8pm-8am", "'8pm'"),
        ("20.00-08.00", "'20.00'"),
    ]:
        with pytest.raises(ValueError, match=re.escape(says)):
            parse_window(bad)


def test_off_turns_quiet_hours_off_for_that_channel_only() -> None:
    policy = {"sms": parse_window("off")}
    assert quiet_hours_for(policy, "sms").empty
    assert quiet_hours_for(policy, "email") == DEFAULT
    assert describe_quiet_hours(policy) == {"sms": {"off": True}, "email": {"start": "20:00", "end": "08:00"}}


@pytest.mark.parametrize(
    "stored",
    [
        {"sms": {"start": "21:00"}},  # an end missing: the default, never an empty window
        {"sms": {"end": "07:00"}},
        {"sms": {"start": "21:00", "end": ""}},
        {"sms": {"start": "21:00", "end": "21:00"}},  # start == end without "off"
        {"sms": {"start": "25:00", "end": "07:00"}},
        {"sms": {"start": 2100, "end": "07:00"}},
        {"sms": "off"},
        {"sms": ["21:00", "07:00"]},
        {"sms": {"off": "yes"}},
        {"sms": {"off": True, "start": "21:00", "end": "07:00"}},
    ],
)
def test_a_bad_stored_setting_falls_back_to_the_default_with_a_warning_and_never_raises(
    stored: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    _warn_bad_setting.cache_clear()
    with caplog.at_level(logging.WARNING, logger="engage.records.quiet_hours"):
        assert quiet_hours_for(stored, "sms") == DEFAULT
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "sms quiet hours are not valid" in caplog.text and "21:00" not in caplog.text
    assert quiet_hours_for(stored, "email") == DEFAULT


def test_a_policy_that_is_not_an_object_gives_the_default() -> None:
    for policy in (None, {}, [], "20:00-08:00"):
        assert quiet_hours_for(policy, "sms") == DEFAULT  # type: ignore[arg-type]


def test_daytime_interval_and_empty_interval() -> None:
    lunch = QuietHours(time(12, 0), time(13, 0))
    assert lunch.contains(time(12, 30)) and not lunch.contains(time(13, 0)) and not lunch.contains(time(11, 0))
    assert not QuietHours(time(8, 0), time(8, 0)).contains(time(8, 0))


def test_late_evening_message_moves_to_eight_the_next_morning() -> None:
    assert shift_forward(ny(2026, 12, 1, 21, 30), NY, DEFAULT) == ny(2026, 12, 2, 8, 0)
    assert shift_forward(ny(2026, 12, 1, 6, 0), NY, DEFAULT) == ny(2026, 12, 1, 8, 0)
    assert shift_forward(ny(2026, 12, 1, 12, 0), NY, DEFAULT) == ny(2026, 12, 1, 12, 0)


def test_backward_shift_goes_to_the_last_allowed_minute_before_quiet_hours() -> None:
    assert shift_backward(ny(2026, 12, 1, 21, 30), NY, DEFAULT) == ny(2026, 12, 1, 19, 59)
    assert shift_backward(ny(2026, 12, 2, 6, 0), NY, DEFAULT) == ny(2026, 12, 1, 19, 59)


def test_reminder_before_an_early_visit_moves_earlier_not_past_the_visit() -> None:
    visit = ny(2026, 12, 2, 7, 30)  # an early appointment, inside quiet hours itself
    reminder = visit - timedelta(hours=2)  # 05:30: forward would be 08:00, after the visit
    assert place(reminder, NY, DEFAULT, not_after=visit) == ny(2026, 12, 1, 19, 59)
    later_visit = ny(2026, 12, 2, 10, 0)
    assert place(later_visit - timedelta(hours=4), NY, DEFAULT, not_after=later_visit) == ny(2026, 12, 2, 8, 0)


def test_nonexistent_local_time_moves_forward_by_the_gap() -> None:
    # 2026-03-08 02:30 does not exist in New York (02:00 -> 03:00).
    assert resolve_local(date(2026, 3, 8), time(2, 30), NY) == datetime(2026, 3, 8, 7, 30, tzinfo=timezone.utc)
    assert resolve_local(date(2026, 3, 8), time(2, 30), NY).astimezone(NY).time() == time(3, 30)


def test_ambiguous_local_time_takes_the_first_occurrence() -> None:
    # 2026-11-01 01:30 happens twice in New York; the first is EDT (UTC-4).
    assert resolve_local(date(2026, 11, 1), time(1, 30), NY) == datetime(2026, 11, 1, 5, 30, tzinfo=timezone.utc)


def test_nine_am_stays_nine_am_across_both_dst_changes() -> None:
    start = ny(2026, 3, 1, 9, 0)
    for days in range(0, 300, 5):
        assert add_local_days(start, days, NY).astimezone(NY).time() == time(9, 0)
    assert add_local_days(start, 14, NY) - start == timedelta(days=14, hours=-1)  # one hour shorter in UTC


instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(timezone.utc)
)
clock_times = st.times().map(lambda t: t.replace(second=0, microsecond=0))
quiet_hours = st.builds(QuietHours, clock_times, clock_times)


@given(instants, st.sampled_from(ZONES), quiet_hours)
def test_forward_shift_is_never_quiet_never_earlier_and_takes_the_first_allowed_minute(
    due: datetime, tz: ZoneInfo, quiet: QuietHours
) -> None:
    placed = shift_forward(due, tz, quiet)
    assert not is_quiet(placed, tz, quiet)
    assert placed >= due
    if placed != due:
        assert is_quiet(placed - timedelta(minutes=1), tz, quiet)


@given(instants, st.sampled_from(ZONES), quiet_hours, st.integers(min_value=1, max_value=72 * 60))
def test_a_step_before_its_anchor_is_placed_before_the_anchor_and_outside_quiet_hours(
    due: datetime, tz: ZoneInfo, quiet: QuietHours, minutes_before: int
) -> None:
    anchor = due + timedelta(minutes=minutes_before)
    placed = place(due, tz, quiet, not_after=anchor)
    assert placed < anchor
    assert not is_quiet(placed, tz, quiet)


@given(st.dates(min_value=date(2026, 1, 1), max_value=date(2030, 12, 31)), st.sampled_from(ZONES), clock_times)
def test_local_wall_time_is_kept_unless_it_does_not_exist(day: date, tz: ZoneInfo, at: time) -> None:
    local = resolve_local(day, at, tz).astimezone(tz)
    naive = datetime.combine(day, at)
    exists = naive.replace(tzinfo=tz).astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None) == naive
    if exists:
        assert (local.date(), local.time()) == (day, at)
    else:  # in a spring-forward gap: later the same day, never earlier
        assert local.replace(tzinfo=None) > naive
