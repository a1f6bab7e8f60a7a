"""``engage clinic|patient|plan|appointment``: the records staff keep."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click
from sqlalchemy.orm import selectinload

from engage.cli.common import ACTOR, emit, json_option, table, user_errors
from engage.cli.outcomes import outcomes
from engage.conversation.consent import consent_in_force
from engage.db import session_scope
from engage.records import clinics, lookup, patients, plans
from engage.records.models import AppointmentStatus, Clinic, Patient, TreatmentPlan
from engage.schedule import appointments, clinic_hours, clinic_settings
from engage.schedule.durations import parse_duration
from engage.schedule.plan_exercises import choose_exercises


def _duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _quiet_hours_pairs(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    """``("sms=21:00-08:00", "email=off")`` -> ``{"sms": "21:00-08:00", "email": "off"}`` (checked later)."""
    pairs: dict[str, str] = {}
    for value in values:
        channel, sep, window = value.partition("=")
        channel = channel.strip().lower()
        if not sep or not channel:
            raise click.BadParameter(f"write CHANNEL=START-END (e.g. sms=20:00-08:00) or CHANNEL=off, not {value!r}")
        if channel in pairs:
            raise click.BadParameter(f"{channel} quiet hours given twice")
        pairs[channel] = window
    return pairs


def _quiet_hours_text(quiet_hours: dict[str, dict[str, Any]]) -> str:
    return "\n".join(
        f"  {channel}: " + ("off" if window.get("off") else f"{window['start']}-{window['end']}")
        for channel, window in quiet_hours.items()
    )


def _clinic_text(data: dict[str, Any]) -> str:
    return f"clinic {data['id']}: {data['name']} ({data['timezone']})\nquiet hours (local time):\n" + _quiet_hours_text(
        data["quiet_hours"]
    )


@click.group()
def clinic() -> None:
    """Clinics: name, time zone, address, senders and quiet hours."""


@clinic.command("create")
@click.option("--name", required=True)
@click.option("--timezone", "tz", required=True, help="IANA name, e.g. America/New_York.")
@click.option("--address", required=True, help="Postal address; every email carries it.")
@click.option("--email", required=True, help="Sender address for email.")
@click.option("--sms-from", help="Sender number for SMS (E.164).")
@click.option("--phone", help="The clinic's phone number, given in HELP replies.")
@click.option("--region", help="Two-letter country for phone numbers written without +; default ENGAGE_DEFAULT_REGION.")
@click.option(
    "--quiet-hours",
    "quiet_hours",
    multiple=True,
    callback=_quiet_hours_pairs,
    metavar="CHANNEL=HH:MM-HH:MM",
    help="No messages on CHANNEL (sms or email) in this local-time window, e.g. sms=20:00-08:00, or "
    "CHANNEL=off. Repeatable. Default for both: 20:00-08:00.",
)
@json_option
@user_errors
def clinic_create(
    name: str,
    tz: str,
    address: str,
    email: str,
    sms_from: str | None,
    phone: str | None,
    region: str | None,
    quiet_hours: dict[str, str],
) -> None:
    """Create a clinic."""
    with session_scope() as session:
        created = clinics.create_clinic(
            session,
            name=name,
            timezone=tz,
            address=address,
            email=email,
            sms_from=sms_from,
            phone=phone,
            region=region,
            quiet_hours=quiet_hours,
            actor=ACTOR,
        )
        data = clinics.clinic_json(created)
    emit(data, lambda: f"clinic {data['id']} created\n" + _clinic_text(data))


@clinic.command("show")
@click.argument("clinic_id", type=int)
@json_option
@user_errors
def clinic_show(clinic_id: int) -> None:
    """A clinic, with the quiet hours in force."""
    with session_scope() as session:
        data = clinics.clinic_json(lookup.get(session, Clinic, clinic_id))
    emit(data, lambda: _clinic_text(data))


@clinic.command("quiet-hours")
@click.argument("clinic_id", type=int)
@click.option("--sms", "sms", metavar="HH:MM-HH:MM|off", help="SMS quiet hours (local time), e.g. 20:00-08:00.")
@click.option("--email", "email", metavar="HH:MM-HH:MM|off", help="Email quiet hours (local time), e.g. 21:00-07:00.")
@json_option
@user_errors
def clinic_quiet_hours(clinic_id: int, sms: str | None, email: str | None) -> None:
    """Change a clinic's quiet hours; pending messages of its patients move to fit.

    Without --sms or --email, show the quiet hours in force.
    """
    given = {channel: value for channel, value in (("sms", sms), ("email", email)) if value is not None}
    with session_scope() as session:
        if not given:
            data = clinics.clinic_json(lookup.get(session, Clinic, clinic_id))
            emit(data, lambda: _clinic_text(data))
            return
        changed, result = clinic_hours.set_quiet_hours(session, clinic_id, given, actor=ACTOR)
        data = {**clinics.clinic_json(changed), "changes": result.as_dict()}

    def human() -> str:
        counts = data["changes"]
        moved = f"{counts['moved']} pending messages moved, {counts['skipped']} skipped, {counts['revived']} revived"
        return f"clinic {data['id']} quiet hours (local time):\n{_quiet_hours_text(data['quiet_hours'])}\n{moved}"

    emit(data, human)


@click.group()
def patient() -> None:
    """Patients."""


@patient.command("add")
@click.option("--clinic", "clinic_id", type=int, required=True)
@click.option("--first-name", required=True)
@click.option("--last-name", required=True)
@click.option("--email")
@click.option("--phone", help="Normalised to E.164; without + the clinic's country is assumed.")
@click.option("--timezone", "tz", help="IANA name; default: the clinic's.")
@click.option("--locale", default="en", show_default=True, help="en or es.")
@click.option("--date-of-birth", help="YYYY-MM-DD or MM/DD/YYYY; optional, tells two patients of one name apart.")
@json_option
@user_errors
def patient_add(
    clinic_id: int,
    first_name: str,
    last_name: str,
    email: str | None,
    phone: str | None,
    tz: str | None,
    locale: str,
    date_of_birth: str | None,
) -> None:
    """Add a patient to a clinic (needs an email or a phone)."""
    with session_scope() as session:
        added = patients.add_patient(
            session,
            clinic_id=clinic_id,
            first_name=first_name,
            last_name=last_name,
            email=email,
            phone=phone,
            timezone=tz,
            locale=locale,
            actor=ACTOR,
            date_of_birth=date_of_birth,
        )
        patient_id, warnings = added.patient.id, added.warnings
    emit(
        {"id": patient_id, "warnings": warnings},
        "\n".join([f"patient {patient_id} added", *(f"warning: {w}" for w in warnings)]),
    )


@patient.command("show")
@click.argument("patient_id", type=int)
@json_option
@user_errors
def patient_show(patient_id: int) -> None:
    """A patient with their plans and appointments."""
    with session_scope() as session:
        found = session.get(
            Patient,
            patient_id,
            options=[selectinload(Patient.plans).selectinload(TreatmentPlan.appointments)],
        )
        if found is None:
            raise LookupError(f"no patient with id {patient_id}")
        data = {**patients.patient_json(found), "consent": consent_in_force(session, found.id)}

    def human() -> str:
        born = f", born {data['date_of_birth']}" if data.get("date_of_birth") else ""
        who = f"{data['first_name']} {data['last_name']} ({data['timezone']}, {data['locale']}{born})"
        lines = [f"patient {data['id']}: {who}"]
        for channel, given in data["consent"].items():
            since = f" since {given['at'][:16].replace('T', ' ')}" if given["at"] else ""
            lines.append(f"{channel} consent: {given['state'].replace('_', ' ')} ({given['source']}{since})")
        for plan in data["plans"]:
            lines.append(f"\nplan {plan['id']}: {plan['condition']}, {plan['modality']}, {plan['status']}")
            lines.append(table(plan["appointments"], ["id", "start", "end", "status"]))
        return "\n".join(lines)

    emit(data, human)


patient.add_command(outcomes)


@click.group()
def plan() -> None:
    """Treatment plans."""


@plan.command("create")
@click.option("--patient", "patient_id", type=int, required=True)
@click.option("--condition", required=True)
@click.option("--modality", required=True)
@click.option("--first", required=True, help="First session; without an offset it is the patient's local time.")
@click.option("--sessions", type=int, required=True)
@click.option("--every", required=True, callback=_duration, help="Time between sessions, e.g. 7d.")
@click.option("--duration", default="45m", show_default=True, callback=_duration, help="Session length.")
@click.option("--reassess-every", type=int, default=3, show_default=True, help="Sessions between reassessments.")
@click.option("--allow-past", is_flag=True, help="Record appointments that already happened (staff history).")
@click.option(
    "--practitioner", "practitioner_id", type=int, help="Who treats: a practitioner id (engage practitioner list)."
)
@json_option
@user_errors
def plan_create(
    patient_id: int,
    condition: str,
    modality: str,
    first: str,
    sessions: int,
    every: timedelta,
    duration: timedelta,
    reassess_every: int,
    allow_past: bool,
    practitioner_id: int | None,
) -> None:
    """Create a treatment plan and book its appointments."""
    with session_scope() as session:
        created = plans.create_plan(
            session,
            patient_id=patient_id,
            condition=condition,
            modality=modality,
            first=first,
            sessions=sessions,
            every=every,
            duration=duration,
            reassess_every=reassess_every,
            actor=ACTOR,
            allow_past=allow_past,
            practitioner_id=practitioner_id,
        )
        data: dict[str, Any] = {
            "id": created.id,
            "practitioner_id": created.practitioner_id,
            "appointments": [plans.appointment_json(a) for a in created.appointments],
        }
    emit(data, lambda: f"plan {data['id']} created\n" + table(data["appointments"], ["id", "start", "end", "status"]))


@click.group()
def appointment() -> None:
    """Appointments: add, move, cancel, complete, no-show. Messages follow."""


@appointment.command("add")
@click.option("--plan", "plan_id", type=int, required=True)
@click.option("--start", required=True)
@click.option("--end")
@click.option("--duration", callback=_duration)
@click.option("--allow-past", is_flag=True, help="Record appointments that already happened (staff history).")
@json_option
@user_errors
def appointment_add(plan_id: int, start: str, end: str | None, duration: timedelta | None, allow_past: bool) -> None:
    """Book one more appointment in a plan."""
    with session_scope() as session:
        change = appointments.add_appointment(
            session, plan_id=plan_id, start=start, end=end, duration=duration, actor=ACTOR, allow_past=allow_past
        )
        data = plans.appointment_json(change.appointment)
    emit(data, f"appointment {data['id']} booked for {data['start']}")


@appointment.command("move")
@click.argument("appointment_id", type=int)
@click.option("--to", required=True, help="New start; without an offset it is the patient's local time.")
@click.option("--allow-past", is_flag=True, help="Record appointments that already happened (staff history).")
@json_option
@user_errors
def appointment_move(appointment_id: int, to: str, allow_past: bool) -> None:
    """Move an appointment; its pending reminders move with it."""
    with session_scope() as session:
        change = appointments.move_appointment(session, appointment_id, to, actor=ACTOR, allow_past=allow_past)
        data = plans.appointment_json(change.appointment)
    emit(data, f"appointment {appointment_id} moved to {data['start']}")


def _status_command(name: str, status: AppointmentStatus, doc: str) -> None:
    @appointment.command(name, help=doc)
    @click.argument("appointment_id", type=int)
    @json_option
    @user_errors
    def command(appointment_id: int) -> None:
        with session_scope() as session:
            change = appointments.set_appointment_status(session, appointment_id, status, actor=ACTOR)
            data = plans.appointment_json(change.appointment)
        emit(data, f"appointment {appointment_id} is {data['status']}")


_status_command("cancel", AppointmentStatus.CANCELLED, "Cancel an appointment; its pending messages are cancelled.")
_status_command("complete", AppointmentStatus.COMPLETED, "Mark an appointment as attended.")
_status_command("no-show", AppointmentStatus.NO_SHOW, "Mark an appointment as missed.")


# --- care content settings (issue 14) ---------------------------------------------------------


def _keys(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    return [key.strip() for item in value for key in item.split(",") if key.strip()]


@clinic.command("settings")
@click.argument("clinic_id", type=int)
@click.option(
    "--sms-name",
    help="Short name SMS carry instead of the clinic's name (at most 20 characters, "
    "no condition or treatment words); '' removes it.",
)
@click.option(
    "--sms-per-day",
    type=int,
    help="Non-urgent SMS a patient may get per local day (default 1: the FCC healthcare exemption's limit).",
)
@click.option(
    "--sms-per-week",
    type=int,
    help="Non-urgent SMS a patient may get in any 7 local days (default 3: the FCC healthcare exemption's limit).",
)
@click.option(
    "--step-off",
    "steps_off",
    multiple=True,
    callback=_keys,
    metavar="KEY[,KEY]",
    help="Turn sequence steps off (e.g. rebook). Repeatable.",
)
@click.option(
    "--step-on",
    "steps_on",
    multiple=True,
    callback=_keys,
    metavar="KEY[,KEY]",
    help="Turn sequence steps back on. Repeatable.",
)
@click.option(
    "--prefer-email/--prefer-sms",
    default=None,
    help="Send steps that may go by email (the reassessment) by email to every patient with an address.",
)
@json_option
@user_errors
def clinic_settings_command(
    clinic_id: int,
    sms_name: str | None,
    sms_per_day: int | None,
    sms_per_week: int | None,
    steps_off: list[str],
    steps_on: list[str],
    prefer_email: bool | None,
) -> None:
    """Change a clinic's messaging settings; pending messages of its patients are re-planned."""
    given: dict[str, Any] = {}
    if sms_name is not None:
        given["sms_name"] = sms_name
    if sms_per_day is not None:
        given["sms_per_day"] = sms_per_day
    if sms_per_week is not None:
        given["sms_per_week"] = sms_per_week
    with session_scope() as session:
        changed, result = clinic_settings.change_clinic_settings(
            session, clinic_id, steps_off=steps_off, steps_on=steps_on, prefers_email=prefer_email, actor=ACTOR, **given
        )
        data = {**clinics.clinic_json(changed), "changes": result.as_dict()}

    def human() -> str:
        counts = data["changes"]
        return (
            f"clinic {data['id']}: SMS name {data['sms_name'] or '(the clinic name)'}; at most "
            f"{data['sms_per_day']} SMS a day, {data['sms_per_week']} a week ({data['sms_caps']}); steps off: "
            f"{', '.join(data['steps_off']) or 'none'}; prefers email: {'yes' if data['prefers_email'] else 'no'}\n"
            f"{counts['skipped']} pending messages skipped, {counts['revived']} revived, "
            f"{counts['cancelled']} cancelled, {counts['updated']} updated"
        )

    emit(data, human)


@plan.command("exercises")
@click.argument("plan_id", type=int)
@click.option(
    "--set",
    "keys",
    metavar="KEY[,KEY]",
    help="The exercises the practitioner picked, in order "
    "(keys from templates/exercises); '' picks none. Without it, show the plan's exercises.",
)
@json_option
@user_errors
def plan_exercises(plan_id: int, keys: str | None) -> None:
    """The exercises a plan's practitioner picked; stretch prompts link the patient to them."""
    with session_scope() as session:
        if keys is None:
            chosen = list(lookup.get(session, TreatmentPlan, plan_id).exercises or [])
        else:
            chosen = list(choose_exercises(session, plan_id, keys.split(","), actor=ACTOR).exercises)
        data = {"plan_id": plan_id, "exercises": chosen}
    emit(data, lambda: f"plan {plan_id} exercises: {', '.join(chosen) or 'none picked'}")
