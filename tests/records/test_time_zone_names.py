"""Time zone names are checked against the tz database's list before any file is opened."""

from __future__ import annotations

import pytest

from engage.errors import InvalidInput
from engage.records.validation import timezone_name


@pytest.mark.parametrize("name", ["a" * 300, "America/" + "x" * 300, "Nowhere/City", "EST", "../../etc/passwd"])
def test_an_unknown_or_overlong_time_zone_is_a_sentence_not_a_crash(name: str) -> None:
    with pytest.raises(InvalidInput, match="unknown time zone|not a region time zone"):
        timezone_name(name)


def test_a_region_time_zone_is_accepted_as_written() -> None:
    assert timezone_name(" America/New_York ") == "America/New_York"
