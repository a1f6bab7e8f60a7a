"""Clinics: create one, validated, with its quiet hours; show it to staff."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from engage.config import get_settings
from engage.errors import InvalidInput
from engage.records import validation
from engage.records.audit import AuditAction, audit
from engage.records.models import Channel, Clinic
from engage.records.quiet_hours import describe_quiet_hours, parse_window


def create_clinic(
    session: Session,
    *,
    name: str,
    timezone: str,
    address: str,
    email: str,
    sms_from: str | None = None,
    phone: str | None = None,
    region: str | None = None,
    quiet_hours: Mapping[str, str] | None = None,
    actor: str,
) -> Clinic:
    """A new clinic. ``quiet_hours``: channel (``sms``/``email``) -> ``"20:00-08:00"`` or ``"off"``;
    a channel not given keeps the default 20:00-08:00. Raises ``InvalidInput``.

    The SMS name, frequency caps and steps turned off are set afterwards
    (:func:`engage.schedule.clinic_settings.change_clinic_settings`), since the
    SMS name is checked by a content rule this layer cannot see."""
    if not name.strip():
        raise InvalidInput("the clinic needs a name")
    if not address.strip():
        raise InvalidInput("the clinic needs a postal address (every email must carry it)")
    region_code = validation.region(region or get_settings().default_region)
    clinic = Clinic(
        name=name.strip(),
        timezone=validation.timezone_name(timezone),
        address=address.strip(),
        email_from=validation.email_address(email),
        sms_from=validation.phone_e164(sms_from, region_code) if sms_from else None,
        phone=validation.phone_e164(phone, region_code) if phone else None,
        region=region_code,
        quiet_hours=quiet_hours_settings(quiet_hours or {}),
    )
    session.add(clinic)
    session.flush()
    audit(
        session,
        clinic_id=clinic.id,
        actor=actor,
        action=AuditAction.CLINIC_CREATE,
        subject_type="clinic",
        subject_id=clinic.id,
    )
    return clinic


#: Frequency caps on a patient's non-urgent SMS when the clinic set none: per local day, per any 7 local days.
#: They are the limits of the FCC's healthcare exemption (TCPA; FCC 15-72, 2015): at most one message a day
#: and three a week, so a clinic that keeps the defaults stays within them.
DEFAULT_SMS_PER_DAY = 1
DEFAULT_SMS_PER_WEEK = 3
#: What the defaults are called where staff see them.
DEFAULT_CAPS_NAME = "FCC healthcare exemption (1 a day, 3 a week)"


def cap_value(value: int | None, what: str) -> int | None:
    """A frequency cap: None (the default) or a whole number from 0 up. Raises ``InvalidInput``."""
    if value is None:
        return None
    if value < 0:
        raise InvalidInput(f"the {what} cap must be 0 or more (got {value})")
    return value


def sms_caps(clinic: Clinic) -> tuple[int, int]:
    """The clinic's caps on a patient's non-urgent SMS: (per local day, per any 7 local days)."""
    day = clinic.sms_per_day if clinic.sms_per_day is not None else DEFAULT_SMS_PER_DAY
    week = clinic.sms_per_week if clinic.sms_per_week is not None else DEFAULT_SMS_PER_WEEK
    return day, week


def caps_name(clinic: Clinic) -> str:
    """What the clinic's caps are: :data:`DEFAULT_CAPS_NAME` when it keeps the defaults, else "set by the clinic"."""
    if clinic.sms_per_day is None and clinic.sms_per_week is None:
        return DEFAULT_CAPS_NAME
    return "set by the clinic"


def quiet_hours_settings(given: Mapping[str, str], current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``current`` (a clinic's stored ``quiet_hours``) with the channels in ``given`` replaced, validated.

    ``given`` maps a channel to ``"HH:MM-HH:MM"`` or ``"off"``. Raises ``InvalidInput`` naming
    the channel and what is wrong, so nothing invalid is ever stored.
    """
    merged = dict(current or {})
    for channel, text in given.items():
        if channel not in {c.value for c in Channel}:
            raise InvalidInput(f"quiet hours are set for sms or email, not {channel!r}")
        try:
            merged[channel] = parse_window(text)
        except ValueError as exc:
            raise InvalidInput(f"{channel} quiet hours: {exc}") from None
    return merged


def clinic_json(clinic: Clinic) -> dict[str, Any]:
    """The clinic for staff, with the quiet hours in force per channel (defaults filled in)."""
    return {
        "id": clinic.id,
        "name": clinic.name,
        "timezone": clinic.timezone,
        "address": clinic.address,
        "email_from": clinic.email_from,
        "sms_from": clinic.sms_from,
        "phone": clinic.phone,
        "region": clinic.region,
        "quiet_hours": describe_quiet_hours(clinic.quiet_hours),
        "sms_name": clinic.sms_name,
        "sms_per_day": sms_caps(clinic)[0],
        "sms_per_week": sms_caps(clinic)[1],
        "sms_caps": caps_name(clinic),
        "steps_off": list(clinic.steps_off or []),
        "prefers_email": bool(clinic.prefers_email),
        "default_sequence": clinic.default_sequence,
    }


def update_clinic(
    session: Session,
    clinic: Clinic,
    *,
    name: str,
    address: str,
    email: str,
    phone: str | None,
    actor: str,
) -> list[str]:
    """Change the clinic's name, postal address, sender email and phone, validated as on create.

    Returns the names of the fields that changed. Raises ``InvalidInput`` before writing.
    (The time zone and quiet hours change elsewhere: they move messages.)
    """
    if not name.strip():
        raise InvalidInput("the clinic needs a name")
    if not address.strip():
        raise InvalidInput("the clinic needs a postal address (every email must carry it)")
    values = {
        "name": name.strip(),
        "address": address.strip(),
        "email_from": validation.email_address(email),
        "phone": validation.phone_e164(phone, clinic.region) if phone and phone.strip() else None,
    }
    changed = [field for field, value in values.items() if getattr(clinic, field) != value]
    for field in changed:
        setattr(clinic, field, values[field])
    if changed:
        session.flush()
        audit(
            session,
            clinic_id=clinic.id,
            actor=actor,
            action=AuditAction.CLINIC_UPDATE,
            subject_type="clinic",
            subject_id=clinic.id,
            fields=changed,
        )
    return changed
