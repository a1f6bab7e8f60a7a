"""Sequence definitions: ``templates/sequences/*.yaml``, validated with pydantic when loaded.

A sequence is a list of steps; each step says which message (channel + template) goes
out relative to which anchor (an appointment's start or end, the enrolment, the end of
the plan). See ``templates/sequences/dry-needling-sciatica.yaml`` for the shipped one.

A bad file raises :class:`SequenceError` (an ``InvalidInput``) naming the file, the step
and the field, e.g. ``sequences/x.yaml: step 'stretch' (#4), field 'offset': not a duration: '2x'``.

Semantics the planner relies on:

- ``offset`` is a signed duration (``30m``, ``-48h``, ``1d12h``). Its whole days are
  *calendar* days in the patient's time zone (``1d`` after 09:00 is 09:00 the next day,
  also across a DST change); hours and minutes are elapsed time.
- ``at: "09:00"`` pins the local time of day; then ``offset`` (and ``repeat.every``)
  must be whole days.
- ``appointments`` selects among the plan's *counted* appointments (booked or
  completed, in start order): ``first``, ``each``, ``last``, ``every:N`` (the N-th,
  2N-th, ...), ``first:N`` (the first N: aftercare after the first sessions only),
  or a list of these, whose union is taken (``[every:3, last]``). ``no_show`` instead picks
  the appointments marked no-show (a follow-up the same day), and only those.
  Required meaning only for appointment anchors; defaults to ``each`` there.
- ``priority`` (higher wins) decides which SMS go when a patient's frequency caps
  (the clinic's: non-urgent SMS per local day and per any 7 local days) cannot
  take them all; ``urgent: true`` exempts a step from the caps.
- ``appointment.next_start``: the start of the counted appointment after the one selected
  (``every:3`` with ``offset: -1d`` is "the day before the visit after every third"); a
  selected appointment with none after it gets nothing.
- ``needs_exercises: true``: only for a plan whose practitioner picked exercises.
- ``or_email: true``: the step goes by email (same template name under ``email/``)
  to a patient with no usable phone, and to every patient with an email address
  when their clinic prefers email.
- A clinic can turn any step off by its key (``clinic.steps_off``).
- ``appointment.booked``: when an appointment was booked (a booking confirmation): one
  message for everything booked by the time of the enrolment (about the first session),
  then one for each appointment booked after it.
- ``plan.rebook``: the end of the last session when every counted session is completed,
  none is booked and the plan has sessions left (a prompt to book the next one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engage.config import get_settings
from engage.content.rendering import checked_recently
from engage.errors import InvalidInput, NotFound
from engage.records.models import Channel
from engage.records.quiet_hours import parse_hhmm
from engage.schedule.durations import parse_duration

Anchor = Literal[
    "appointment.start",
    "appointment.end",
    "appointment.next_start",
    "appointment.booked",
    "enrollment",
    "plan.end",
    "plan.rebook",
]
APPOINTMENT_ANCHORS = ("appointment.start", "appointment.end", "appointment.next_start")
_SELECTOR = re.compile(r"first|each|last|no_show|every:([1-9]\d*)|first:([1-9]\d*)")
_KEY = re.compile(r"[a-z0-9][a-z0-9_-]*")
_DURATION_PART = re.compile(r"(\d+)([wdhm])")


class SequenceError(InvalidInput):
    """A sequence file is malformed; the message names the file, step and field."""


@dataclass(frozen=True)
class Offset:
    """A signed duration split into calendar days and elapsed minutes (both carry the sign)."""

    days: int = 0
    minutes: int = 0

    @classmethod
    def parse(cls, text: str) -> Offset:
        """``-48h`` -> 2880 elapsed minutes; ``-2d`` -> two calendar days; ``1d12h`` -> both.

        The unit written decides: ``w``/``d`` count calendar days, ``h``/``m`` elapsed time.
        """
        parse_duration(text)  # one grammar for every duration engage reads; raises naming the text
        cleaned = text.strip().replace(" ", "").lower()
        sign = -1 if cleaned.startswith("-") else 1
        days = minutes = 0
        for number, unit in _DURATION_PART.findall(cleaned):
            days += int(number) * {"w": 7, "d": 1}.get(unit, 0)
            minutes += int(number) * {"h": 60, "m": 1}.get(unit, 0)
        return cls(days=sign * days, minutes=sign * minutes)

    def __add__(self, other: Offset) -> Offset:
        return Offset(self.days + other.days, self.minutes + other.minutes)

    def __mul__(self, factor: int) -> Offset:
        return Offset(self.days * factor, self.minutes * factor)

    @property
    def negative(self) -> bool:
        """Before the anchor (taking a day as 1440 minutes, which is all a sign needs)."""
        return self.days * 1440 + self.minutes < 0

    @property
    def whole_days(self) -> bool:
        return self.minutes == 0

    def __str__(self) -> str:
        hours, mins = divmod(abs(self.minutes), 60)
        parts = [(abs(self.days), "d"), (hours, "h"), (mins, "m")]
        text = "".join(f"{n}{unit}" for n, unit in parts if n) or "0m"
        return ("-" if self.negative else "") + text


class Repeat(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(ge=1, le=366)
    every: Offset

    @field_validator("every", mode="before")
    @classmethod
    def _every(cls, value: Any) -> Offset:
        offset = _offset(value)
        if offset.days < 0 or offset.minutes < 0 or offset == Offset():
            raise ValueError("repeat.every must be a positive duration")
        return offset


class Step(BaseModel):
    """One message a sequence implies, relative to an anchor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    channel: Channel
    template: str
    anchor: Anchor
    appointments: tuple[str, ...] | None = None
    offset: Offset = Offset()
    at: time | None = None
    repeat: Repeat | None = None
    quiet_hours: Literal["shift", "ignore"] = "shift"
    priority: int = 0
    urgent: bool = False
    or_email: bool = False
    needs_exercises: bool = False

    @field_validator("key", "template")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _KEY.fullmatch(value):
            raise ValueError(f"{value!r} must be lower-case letters, digits, '-' or '_'")
        return value

    @field_validator("offset", mode="before")
    @classmethod
    def _offset_field(cls, value: Any) -> Offset:
        return _offset(value)

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, value: Any) -> time | None:
        if value is None or isinstance(value, time):
            return value
        if isinstance(value, int):  # YAML 1.1 reads an unquoted 09:00 as the sexagesimal number 540
            return time(*divmod(value, 60))
        return parse_hhmm(value)

    @field_validator("appointments", mode="before")
    @classmethod
    def _appointments(cls, value: Any) -> tuple[str, ...] | None:
        if value is None:
            return None
        items = [value] if isinstance(value, str) else list(value)
        if not items:
            raise ValueError("list at least one of first, each, last, every:N, first:N")
        for item in items:
            if not isinstance(item, str) or not _SELECTOR.fullmatch(item.strip()):
                raise ValueError(f"{item!r} is not one of first, each, last, every:N, first:N, no_show")
        return tuple(item.strip() for item in items)

    @model_validator(mode="after")
    def _consistent(self) -> Step:
        on_appointment = self.anchor in APPOINTMENT_ANCHORS
        if self.appointments is not None and not on_appointment:
            raise ValueError("'appointments' applies only to the appointment.start/end/next_start anchors")
        if on_appointment and self.appointments is None:
            object.__setattr__(self, "appointments", ("each",))
        if self.or_email and self.channel is not Channel.SMS:
            raise ValueError("'or_email' applies only to an sms step")
        if self.at is not None:
            if not self.offset.whole_days:
                raise ValueError(f"with 'at', the offset must be whole days (got {self.offset})")
            if self.repeat is not None and not self.repeat.every.whole_days:
                raise ValueError(f"with 'at', repeat.every must be whole days (got {self.repeat.every})")
        return self

    @property
    def offsets(self) -> list[Offset]:
        """The offset of each repetition (one without ``repeat``)."""
        if self.repeat is None:
            return [self.offset]
        return [self.offset + self.repeat.every * i for i in range(self.repeat.count)]

    def selects(self, position: int, count: int) -> bool:
        """Whether the appointment at 1-based ``position`` of ``count`` counted ones gets this step."""
        for selector in self.appointments or ():
            if selector == "each":
                return True
            if selector == "first" and position == 1:
                return True
            if selector == "last" and position == count:
                return True
            if selector.startswith("every:") and position % int(selector[6:]) == 0:
                return True
            if selector.startswith("first:") and position <= int(selector[6:]):
                return True
        return False


class Sequence(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    name: str
    description: str = ""
    steps: tuple[Step, ...] = Field(min_length=1)

    @field_validator("key")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _KEY.fullmatch(value):
            raise ValueError(f"{value!r} must be lower-case letters, digits, '-' or '_'")
        return value

    @model_validator(mode="after")
    def _unique_steps(self) -> Sequence:
        seen: set[str] = set()
        for step in self.steps:
            if step.key in seen:
                raise ValueError(f"step key {step.key!r} is used twice")
            seen.add(step.key)
        return self

    def step(self, key: str) -> Step:
        for step in self.steps:
            if step.key == key:
                return step
        raise NotFound(f"sequence {self.key!r} has no step {key!r}")


def valid_key(text: str) -> bool:
    """Whether ``text`` may be a sequence or step key (lower-case letters, digits, '-' or '_')."""
    return bool(_KEY.fullmatch(text))


def _offset(value: Any) -> Offset:
    if isinstance(value, Offset):
        return value
    if isinstance(value, int) and value == 0:
        return Offset()
    if not isinstance(value, str):
        raise ValueError(f"not a duration: {value!r} (write e.g. 30m, 2h, -1d, 1d12h)")
    return Offset.parse(value)


def _describe(path: Path, data: Any, exc: ValidationError) -> str:
    """``file: step 'key' (#n), field 'f': problem`` for each pydantic error."""
    lines = []
    for error in exc.errors():
        loc = list(error["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            index = loc[1]
            steps = data.get("steps") if isinstance(data, dict) else None
            raw = steps[index] if isinstance(steps, list) and index < len(steps) else None
            name = raw.get("key") if isinstance(raw, dict) else None
            where = f"step {name!r} (#{index + 1})" if name else f"step #{index + 1}"
            loc = loc[2:]
        field = ".".join(str(part) for part in loc)
        parts = [p for p in (where, f"field {field!r}" if field else "") if p]
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{path}: {', '.join(parts) or 'file'}: {message}")
    return "; ".join(lines)


def parse_sequence(path: Path) -> Sequence:
    """Load and validate one file. Raises :class:`SequenceError` naming file, step and field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SequenceError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise SequenceError(f"{path}: file: a sequence must be a mapping with key, name and steps")
    try:
        return Sequence.model_validate(data)
    except ValidationError as exc:
        raise SequenceError(_describe(path, data, exc)) from None


def sequences_dir(templates_dir: Path | str | None = None) -> Path:
    return _sequences_dir(templates_dir or get_settings().templates_dir)


@lru_cache(maxsize=64)
def _sequences_dir(templates_dir: Path | str) -> Path:
    # Asked on every send: building the Path again each time showed in its profile.
    return Path(templates_dir) / "sequences"


def load_sequences(templates_dir: Path | str | None = None) -> dict[str, Sequence]:
    """Every sequence under ``<templates_dir>/sequences`` by key (default: the configured templates dir).

    Parsed files are cached by path and modification time, so an edit is picked up (within a second)
    and an unchanged directory costs one ``stat`` a file at most once a second.
    """
    folder = sequences_dir(templates_dir)
    # The folder is listed and its files' times read at most once a second (the send path asks for every message).
    return dict(checked_recently(("sequences", folder), lambda: _load_sequences(folder)))


def _load_sequences(folder: Path) -> dict[str, Sequence]:
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []
    found: dict[str, Sequence] = {}
    where: dict[str, Path] = {}
    for path in files:
        sequence = _parse_cached(path, path.stat().st_mtime_ns)
        if sequence.key in found:
            raise SequenceError(f"{path}: field 'key': {sequence.key!r} is already defined in {where[sequence.key]}")
        found[sequence.key] = sequence
        where[sequence.key] = path
    return found


@lru_cache(maxsize=256)
def _parse_cached(path: Path, _mtime_ns: int) -> Sequence:
    return parse_sequence(path)


def get_sequence(key: str, templates_dir: Path | str | None = None) -> Sequence:
    """The sequence called ``key``; ``NotFound`` lists the known keys."""
    sequences = load_sequences(templates_dir)
    try:
        return sequences[key]
    except KeyError:
        known = ", ".join(sorted(sequences)) or "none"
        raise NotFound(f"no sequence {key!r} (known: {known})") from None


def library_definition(key: str, templates_dir: Path | str | None = None) -> dict[str, Any]:
    """The shipped file of sequence ``key`` as the loader reads it (a YAML-shaped dict); ``NotFound`` lists the
    known keys."""
    get_sequence(key, templates_dir)  # NotFound naming the known keys; the file is valid
    folder = sequences_dir(templates_dir)
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        if _parse_cached(path, path.stat().st_mtime_ns).key == key:
            data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
            return data
    raise NotFound(f"no sequence {key!r}")  # removed between the two reads


def missing_templates(sequence: Sequence, templates_dir: Path | str | None = None) -> list[str]:
    """Steps whose template has no file ``templates/<channel>/<name>.*`` (for ``templates check``)."""
    root = Path(templates_dir or get_settings().templates_dir)
    problems = []
    for step in sequence.steps:
        folder = root / step.channel.value
        if not any(folder.glob(f"{step.template}.*")):
            problems.append(f"step {step.key!r}: no template {step.channel.value}/{step.template}.*")
    return problems
