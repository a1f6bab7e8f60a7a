"""The exercise library (``templates/exercises/*.yaml``) and the exercises a practitioner picks for a plan.

An exercise has a ``key``, a ``name`` and ``steps`` in every language engage ships
(:data:`LANGUAGES`), how long to hold and how often to repeat, whether to do it on
each side, when to stop (``stop_when``), and an optional ``image_url`` / ``video_url``
that the clinic supplies. A bad file raises :class:`ExerciseError` naming the file
and the field.

:func:`set_plan_exercises` is the one way a plan's exercises change (the CLI's
``engage plan exercises``, the staff app and the API call it). Stretch prompts and the
patient's page ``/x/{token}`` show them through :func:`exercises_for`, in the patient's
language.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy.orm import Session

from engage.config import get_settings
from engage.errors import InvalidInput
from engage.records.audit import AuditAction, audit
from engage.records.lookup import get
from engage.records.models import Patient, TreatmentPlan

#: The languages every exercise must be written in (the locales engage ships templates in).
LANGUAGES = ("en", "es")
#: What every ``stop_when`` must say, in each language: the warning sign that matters for sciatica.
STOP_SIGN = {"en": "tingling or numbness spreads down your leg", "es": "le bajan por la pierna"}


class ExerciseError(InvalidInput):
    """An exercise file is malformed; the message names the file and the field."""


class Exercise(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: dict[str, str]
    steps: dict[str, tuple[str, ...]]
    hold_seconds: int | None = Field(default=None, ge=1, le=600)
    repeat: int = Field(default=1, ge=1, le=50)
    each_side: bool = False
    stop_when: dict[str, str]
    image_url: str | None = None
    video_url: str | None = None

    @field_validator("image_url", "video_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError("must be an https:// URL")
        return value

    @model_validator(mode="after")
    def _every_language(self) -> Exercise:
        for field in ("name", "steps", "stop_when"):
            texts = getattr(self, field)
            missing = [lang for lang in LANGUAGES if not texts.get(lang)]
            if missing:
                raise ValueError(f"{field!r} lacks {', '.join(missing)}")
        for lang, sign in STOP_SIGN.items():
            if sign not in self.stop_when[lang]:
                raise ValueError(f"'stop_when' ({lang}) must say when to stop: {sign!r}")
        return self

    def view(self, locale: str | None) -> dict[str, Any]:
        """What a template shows, in the language of ``locale`` (English for any language not shipped)."""
        lang = language_of(locale)
        return {
            "key": self.key,
            "name": self.name[lang],
            "steps": list(self.steps[lang]),
            "hold_seconds": self.hold_seconds,
            "repeat": self.repeat,
            "each_side": self.each_side,
            "stop_when": self.stop_when[lang],
            "image_url": self.image_url,
            "video_url": self.video_url,
        }


def language_of(locale: str | None) -> str:
    lang = (locale or "en").replace("_", "-").split("-")[0].lower()
    return lang if lang in LANGUAGES else "en"


def exercises_dir(templates_dir: Path | str | None = None) -> Path:
    return Path(templates_dir or get_settings().templates_dir) / "exercises"


def parse_exercise(path: Path) -> Exercise:
    """Load and validate one file. Raises :class:`ExerciseError` naming the file and field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ExerciseError(f"{path}: not valid YAML ({exc})") from None
    try:
        return Exercise.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(
            f"field {'.'.join(str(p) for p in e['loc']) or 'file'!r}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ExerciseError(f"{path}: {details}") from None


@lru_cache(maxsize=256)
def _parse_cached(path: Path, _mtime_ns: int) -> Exercise:
    return parse_exercise(path)


def load_exercises(templates_dir: Path | str | None = None) -> dict[str, Exercise]:
    """Every exercise by key, in file-name order (cached by modification time). Raises :class:`ExerciseError`."""
    folder = exercises_dir(templates_dir)
    found: dict[str, Exercise] = {}
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        exercise = _parse_cached(path, path.stat().st_mtime_ns)
        if exercise.key in found:
            raise ExerciseError(f"{path}: field 'key': {exercise.key!r} is used by another file")
        found[exercise.key] = exercise
    return found


def exercises_for(keys: Iterable[str], locale: str | None, templates_dir: Path | str | None = None) -> list[dict]:
    """The views (:meth:`Exercise.view`) of ``keys`` in order; a key no longer in the library is left out."""
    keys = list(keys)
    if not keys:  # most plans pick none: no need to list the library's folder for every message
        return []
    library = load_exercises(templates_dir)
    return [library[key].view(locale) for key in keys if key in library]


def set_plan_exercises(session: Session, plan_id: int, keys: Iterable[str], *, actor: str) -> TreatmentPlan:
    """Replace the exercises a plan's practitioner picked (keys from the library, in the order given; empty: none).

    Raises ``InvalidInput`` naming unknown keys (and listing the known ones) or a key given twice,
    ``NotFound`` for an unknown plan; nothing is written then.
    """
    plan: TreatmentPlan = get(session, TreatmentPlan, plan_id)
    picked = [key.strip() for key in keys if key.strip()]
    library = load_exercises()
    unknown = [key for key in picked if key not in library]
    if unknown:
        raise InvalidInput(f"no exercise {', '.join(map(repr, unknown))} (known: {', '.join(library) or 'none'})")
    twice = sorted({key for key in picked if picked.count(key) > 1})
    if twice:
        raise InvalidInput(f"exercise {', '.join(map(repr, twice))} given twice")
    plan.exercises = picked  # a new list: the JSON column notices reassignment
    session.flush()
    patient = session.get_one(Patient, plan.patient_id)
    audit(
        session,
        clinic_id=patient.clinic_id,
        actor=actor,
        action=AuditAction.PLAN_EXERCISES,
        subject_type="treatment_plan",
        subject_id=plan.id,
        exercises=picked,
    )
    return plan


def exercise_page(session: Session, plan_id: int) -> dict[str, Any] | None:
    """What the patient's page ``/x/{token}`` shows for a plan: its exercises in the patient's language,
    the clinic's name and phone; None when the plan no longer exists."""
    plan = session.get(TreatmentPlan, plan_id)
    if plan is None:
        return None
    patient = session.get_one(Patient, plan.patient_id)
    clinic = patient.clinic
    return {
        "lang": language_of(patient.locale),
        "clinic_name": clinic.name,
        "phone": clinic.phone,
        "exercises": exercises_for(plan.exercises or (), patient.locale),
    }
