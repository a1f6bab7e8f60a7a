"""Checks for what staff type in: phone numbers, time zones, emails, local times.

Each function returns the normalised value or raises ``InvalidInput`` with a
message a person understands. Messages name the field, never echo a phone or
email back into logs beyond the CLI's own error line.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from engage.clock import utcnow
from engage.errors import InvalidInput

LOCALES = ("en", "es")


#: The areas of IANA's region zones ("America/New_York"); "EST", "US/Eastern", "Etc/GMT+5" and "UTC" name
#: no place, so they do not follow a place's clock changes (EST never has summer time) or are legacy links.
REGION_AREAS = (
    "Africa",
    "America",
    "Antarctica",
    "Arctic",
    "Asia",
    "Atlantic",
    "Australia",
    "Europe",
    "Indian",
    "Pacific",
)


def timezone_name(name: str) -> str:
    """A canonical IANA region time zone, e.g. ``America/New_York`` (not ``EST``, ``US/Eastern`` or ``UTC``)."""
    name = name.strip()
    # The known names first: ZoneInfo opens a file named after its argument, and a name too long for a
    # file name raises OSError (found by tests/web/test_no_server_errors.py).
    if name not in _known_zones():
        raise InvalidInput(f"unknown time zone {name!r}: use an IANA name such as America/New_York") from None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(f"unknown time zone {name!r}: use an IANA name such as America/New_York") from None
    if name.split("/", 1)[0] not in REGION_AREAS or "/" not in name:
        raise InvalidInput(
            f"{name!r} is not a region time zone: use the IANA name of the place, such as America/New_York"
        )
    return name


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    # available_timezones() walks the tz database on disk each call: far too slow per imported row.
    return frozenset(available_timezones())


def phone_e164(text: str, region: str | None) -> str:
    """A phone number in E.164 (``+15551234567``); ``region`` (ISO country) reads numbers without ``+``."""
    try:
        number = phonenumbers.parse(text, (region or "").upper() or None)
    except phonenumbers.NumberParseException:
        raise InvalidInput("invalid phone number: write it with a country code, e.g. +1 415 555 0100") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput("invalid phone number: it is not a valid number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email_address(text: str) -> str:
    """A syntactically valid email address, lower-cased (no DNS lookup)."""
    try:
        # Lower-cased whole: mailboxes are case-insensitive in practice, and duplicates must be caught.
        return validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidInput(f"invalid email address: {exc}") from None


def locale(value: str) -> str:
    value = value.strip().lower().replace("_", "-").split("-")[0]
    if value not in LOCALES:
        raise InvalidInput(f"unsupported locale {value!r}: choose one of {', '.join(LOCALES)}")
    return value


def region(value: str) -> str:
    value = value.strip().upper()
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidInput(f"unknown country code {value!r}: use two letters, e.g. US, GB, ES")
    return value


def local_datetime(text: str | datetime, tz: str) -> datetime:
    """An aware UTC datetime. Text with an offset is exact; without one it is wall time in ``tz``.

    A wall time that does not exist (skipped by a DST change) is refused, and so is an
    ambiguous one (repeated when clocks go back), naming both instants it could be.
    """
    if isinstance(text, datetime):
        value = text
    else:
        try:
            value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"not a date and time: {text!r} (write e.g. 2026-12-01T09:00)") from None
    if value.tzinfo is not None:
        return value.astimezone(timezone.utc)
    zone = ZoneInfo(tz)
    aware = value.replace(tzinfo=zone, fold=0)
    if aware.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None) != value:
        raise InvalidInput(f"{value:%Y-%m-%d %H:%M} does not exist in {tz} (clocks change then); pick another time")
    later = value.replace(tzinfo=zone, fold=1)
    if later.utcoffset() != aware.utcoffset():
        raise InvalidInput(
            f"{value:%Y-%m-%d %H:%M} happens twice in {tz} (clocks go back then): write "
            f"{aware.isoformat(timespec='minutes')} or {later.isoformat(timespec='minutes')}"
        )
    return aware.astimezone(timezone.utc)


def not_in_past(start_at: datetime, tz: str, *, allow_past: bool, what: str = "the appointment") -> None:
    """Refuse booking ``start_at`` in the past, unless ``allow_past`` (staff recording history)."""
    if not allow_past and start_at < utcnow():
        local = start_at.astimezone(ZoneInfo(tz))
        raise InvalidInput(
            f"{what} at {local:%Y-%m-%d %H:%M} ({tz}) is in the past; to record one that happened, allow it "
            "(--allow-past; allow_past in the API)"
        )
