"""The sequence editor's form: a draft's definition (the YAML-shaped dict the loader reads) as fields a person
fills in, and those fields back as a definition.

What was typed is always kept: an offset of "3 dayz" goes into the definition as written (with its sign),
so the draft keeps it and the page shows it again, with a sentence beside it (:func:`field_problems`).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from engage.content.rendering import PARTS as CHANNEL_PARTS
from engage.content.rendering import templates_root
from engage.records.quiet_hours import parse_hhmm
from engage.schedule.durations import parse_duration
from engage.schedule.sequences import valid_key

ANCHORS = {
    "appointment.start": "the appointment's start",
    "appointment.end": "the appointment's end",
    "appointment.next_start": "the start of the next appointment",
    "appointment.booked": "when the appointment is booked",
    "enrollment": "the enrollment",
    "plan.end": "the end of the plan",
    "plan.rebook": "when the plan needs rebooking",
}
_WORDS = re.compile(r"(\d+)\s*(minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w)\b", re.I)
LANGUAGES = {"en": "English", "es": "Spanish"}
PARTS = {"subject.txt": "Email subject", "txt": "Email text", "html": "Email HTML"}


@dataclass(frozen=True)
class StepForm:
    """One step as its fields show it."""

    index: int
    key: str
    template: str
    channel: str
    anchor: str
    direction: str  # "before" | "after"
    offset: str  # "24 hours", "1 day", or what was typed
    at: str
    appointments: str
    or_email: bool
    priority: str
    urgent: bool
    quiet_hours: str
    needs_exercises: bool


def _offset_words(raw: Any) -> tuple[str, str]:
    """``"-24h"`` -> ``("before", "24 hours")``; ``"1d"`` -> ``("after", "1 day")``; unreadable text as it is."""
    text = str(raw if raw is not None else "").strip()
    direction = "before" if text.startswith("-") else "after"
    body = text.lstrip("+-").strip()
    if not body or body in ("0", "0m"):
        return direction, ""
    match = re.fullmatch(r"(\d+)([wdhm])", body)
    if match is None:
        return direction, body  # "1d12h" or what was typed: shown as it is
    number, unit = int(match[1]), match[2]
    name = {"w": "week", "d": "day", "h": "hour", "m": "minute"}[unit]
    return direction, f"{number} {name}{'' if number == 1 else 's'}"


def offset_text(direction: str, typed: str) -> str:
    """The fields back as the loader's duration (``"before"``, ``"3 days"`` -> ``"-3d"``); unreadable text kept
    as typed, signed; ``""`` for no offset."""
    body = typed.strip()
    if not body:
        return ""
    sign = "-" if direction == "before" else ""
    compact = body.replace(" ", "").lower()
    if re.fullmatch(r"(?:\d+[wdhm])+", compact):
        return sign + compact
    parts = _WORDS.findall(body)
    if parts and not _WORDS.sub("", body).replace(",", " ").replace(" and ", " ").strip():
        return sign + "".join(f"{number}{unit[0].lower()}" for number, unit in parts)
    return sign + body


def steps_of(definition: dict[str, Any]) -> list[StepForm]:
    forms = []
    for index, raw in enumerate(definition.get("steps") or []):
        step = raw if isinstance(raw, dict) else {}
        direction, offset = _offset_words(step.get("offset"))
        appointments = step.get("appointments")
        if isinstance(appointments, list | tuple):
            appointments = ", ".join(str(a) for a in appointments)
        at = step.get("at")
        if isinstance(at, int):  # YAML 1.1 read an unquoted 09:00 as 540
            at = f"{at // 60:02d}:{at % 60:02d}"
        forms.append(
            StepForm(
                index=index,
                key=str(step.get("key", "")),
                template=str(step.get("template", "")),
                channel=str(step.get("channel", "sms")),
                anchor=str(step.get("anchor", "")),
                direction=direction,
                offset=offset,
                at="" if at is None else str(at),
                appointments=str(appointments or ""),
                or_email=bool(step.get("or_email")),
                priority=str(step.get("priority", 0)),
                urgent=bool(step.get("urgent")),
                quiet_hours=str(step.get("quiet_hours", "shift")),
                needs_exercises=bool(step.get("needs_exercises")),
            )
        )
    return forms


def _pick(values: list[str], index: int, default: str = "") -> str:
    return values[index] if index < len(values) else default


def definition_from_form(base: dict[str, Any], name: str, fields: dict[str, list[str]]) -> dict[str, Any]:
    """``base`` (the draft's definition) with the form's name and step fields over it; other keys
    (``repeat``, ``needs_exercises``, the description) are kept. ``fields``: one list per field name,
    one entry per step in page order, matched to the base's steps by ``step_key``."""
    definition = copy.deepcopy(base)
    definition["name"] = name
    steps = definition.get("steps") or []
    by_key = {str(s.get("key")): s for s in steps if isinstance(s, dict)}
    for index, key in enumerate(fields.get("step_key", [])):
        step = by_key.get(key)
        if step is None:
            continue
        step["anchor"] = _pick(fields.get("anchor", []), index, step.get("anchor", ""))
        step["channel"] = _pick(fields.get("channel", []), index, step.get("channel", "sms"))
        offset = offset_text(_pick(fields.get("direction", []), index, "after"), _pick(fields.get("offset", []), index))
        _set(step, "offset", offset or None)
        _set(step, "at", _pick(fields.get("at", []), index).strip() or None)
        appointments = [a.strip() for a in _pick(fields.get("appointments", []), index).split(",") if a.strip()]
        _set(step, "appointments", (appointments[0] if len(appointments) == 1 else appointments) or None)
        priority = _pick(fields.get("priority", []), index, "0").strip() or "0"
        step["priority"] = int(priority) if re.fullmatch(r"-?\d{1,6}", priority) else priority
        _set(step, "urgent", _pick(fields.get("caps", []), index, "apply") == "exempt" or None)
        _set(step, "or_email", (step["channel"] == "sms" and _pick(fields.get("or_email", []), index) == "yes") or None)
        quiet = _pick(fields.get("quiet_hours", []), index, "shift")
        _set(step, "quiet_hours", None if quiet == "shift" else quiet)
    return definition


def _set(step: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        step.pop(key, None)
    else:
        step[key] = value


def field_problems(definition: dict[str, Any]) -> dict[str, str]:
    """Sentences for the fields a person can get wrong in the form, by field name (``steps.3.offset``)."""
    found: dict[str, str] = {}
    if not str(definition.get("name") or "").strip():
        found["name"] = "Give the sequence a name: staff pick it by this name when they enroll a patient."
    for form in steps_of(definition):
        where = f"steps.{form.index}"
        if form.offset:
            try:
                parse_duration(offset_text(form.direction, form.offset) or "0m")
            except ValueError:
                found[f"{where}.offset"] = (
                    f"“{form.offset}” is not a length of time: write a number and minutes, hours or days, "
                    "e.g. 3 days or 24 hours."
                )
        if form.at:
            try:
                parse_hhmm(form.at)
            except ValueError:
                found[f"{where}.at"] = (
                    f"“{form.at}” is not a time of day: write HH:MM from 00:00 to 23:59, e.g. 18:00, or leave it empty."
                )
        if not re.fullmatch(r"-?\d{1,6}", form.priority.strip() or "0"):
            found[f"{where}.priority"] = f"“{form.priority}” is not a whole number: higher goes first, e.g. 10."
    return found


def text_label(path: str) -> str:
    """``sms/stretch.es.txt`` -> ``SMS text, Spanish``; ``email/x.subject.txt`` -> ``Email subject, English``."""
    channel, _, file = path.partition("/")
    _template, _, rest = file.partition(".")
    locale, part = "en", rest
    first, _, after = rest.partition(".")
    if first in LANGUAGES and after:
        locale, part = first, after
    what = "SMS text" if channel == "sms" else PARTS.get(part, part)
    return f"{what}, {LANGUAGES.get(locale, locale)}"


def text_locale(path: str) -> str:
    rest = path.partition("/")[2].partition(".")[2]
    first, _, after = rest.partition(".")
    return first if first in LANGUAGES and after else "en"


def texts_of_step(texts: dict[str, str], channel: str, template: str, or_email: bool) -> list[str]:
    """The stored text paths a step sends, SMS before email, English first."""
    prefixes = [f"{channel}/{template}."] + ([f"email/{template}."] if or_email and channel == "sms" else [])
    order = {"sms": 0, "subject.txt": 1, "txt": 2, "html": 3}

    def rank(path: str) -> tuple[int, int, str]:
        part = path.rsplit(".", 2)
        kind = 0 if path.startswith("sms/") else order.get(".".join(part[-2:]) if "subject" in path else part[-1], 4)
        return (0 if text_locale(path) == "en" else 1, kind, path)

    return sorted((p for p in texts if any(p.startswith(prefix) for prefix in prefixes)), key=rank)


#: The variables a message template may use (engage.content.message_context), for the picker.
VARIABLES: tuple[tuple[str, str], ...] = (
    ("{{ patient.first_name }}", "the patient's first name"),
    ("{{ clinic.name }}", "the clinic's name (its short SMS name in an SMS)"),
    ("{{ clinic.full_name }}", "the clinic's registered name"),
    ("{{ clinic.phone }}", "the clinic's phone number"),
    ("{{ clinic.address }}", "the clinic's postal address"),
    ("{{ appointment.start|local_datetime }}", "the visit's day and time, in the patient's time zone"),
    ("{{ appointment.start|local_day }}", "the visit's weekday and date"),
    ("{{ appointment.start|local_time }}", "the visit's time of day"),
    ("{{ step.day }}", "which day of the stretch prompts this is"),
    ("{{ exercises_url }}", "the link to the exercises the practitioner picked"),
    ("{{ intake_url }}", "the link to the intake form"),
    ("{{ unsubscribe_url }}", "the unsubscribe link (emails must carry it)"),
    ("{{ reassessment_form_url }}", "the link to the 0-10 pain question"),
)


def text_paths(channel: str, template: str) -> list[str]:
    """Every text a template of ``channel`` has: each part in each language (English without a suffix)."""
    return [
        f"{channel}/{template}.{'' if locale == 'en' else locale + '.'}{part}"
        for locale in LANGUAGES
        for part in CHANNEL_PARTS.get(channel, ())
    ]


def sends(step: dict[str, Any]) -> list[tuple[str, str]]:
    channel, template = str(step.get("channel", "sms")), str(step.get("template", ""))
    if channel not in CHANNEL_PARTS or not valid_key(template):
        return []
    return [(channel, template)] + ([("email", template)] if channel == "sms" and step.get("or_email") else [])


def with_step_texts(definition: dict[str, Any], texts: dict[str, str]) -> dict[str, str]:
    """``texts`` plus, for each step's channel (and its email instead) that the draft holds no text of, every
    text it needs: the shipped file's words when there is one, else empty (the checks then say so)."""
    found = dict(texts)
    root = templates_root()
    for step in definition.get("steps") or []:
        for channel, template in sends(step) if isinstance(step, dict) else []:
            if any(path.startswith(f"{channel}/{template}.") for path in found):
                continue
            for path in text_paths(channel, template):
                file = root / path
                found[path] = file.read_text(encoding="utf-8") if file.is_file() else ""
    return found
