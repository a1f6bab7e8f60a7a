"""Pydantic models in and out of the API: the OpenAPI document is the contract.

Times go in as ISO 8601: with an offset they are exact, without one they are the
patient's local wall time (DST-correct), as on the CLI. Times come out in UTC with
``+00:00``. Fields whose check needs no clinic (time zone, locale, email) are checked
here with the library's own validators, so each bad field gets its own error entry.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


TimeZone = Annotated[str, Field(examples=["America/New_York"])]
Locale = Annotated[str, Field(examples=["es"])]
Email = Annotated[str, Field(examples=["ana@example.com"])]
Phone = Annotated[str, Field(examples=["+1 415 555 0123"])]
ExternalId = Annotated[str, Field(min_length=1, max_length=100, examples=["PMS-10042"],
                                  description="Your practice-management system's id (unique per clinic)")]
When = Annotated[datetime, Field(examples=["2026-12-01T09:00", "2026-12-01T14:00:00+00:00"],
                                 description="ISO 8601; without an offset: the patient's local wall time")]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PatientIn(Input):
    first_name: str = Field(min_length=1, max_length=100, examples=["Ana"])
    last_name: str = Field(min_length=1, max_length=100, examples=["Ruiz"])
    email: Email | None = None
    phone: Phone | None = None
    timezone: TimeZone | None = Field(None, description="IANA name; default: the clinic's")
    locale: Locale = "en"
    external_id: ExternalId | None = None


class PatientPatch(Input):
    """Only the fields sent change; ``null`` clears an optional one."""

    first_name: str | None = Field(None, min_length=1, max_length=100)
    last_name: str | None = Field(None, min_length=1, max_length=100)
    email: Email | None = None
    phone: Phone | None = None
    timezone: TimeZone | None = None
    locale: Locale | None = None


class PatientUpsert(Input):
    """The whole patient as your system has them (PUT replaces; the external id is in the path)."""

    first_name: str = Field(min_length=1, max_length=100, examples=["Ana"])
    last_name: str = Field(min_length=1, max_length=100, examples=["Ruiz"])
    email: Email | None = None
    phone: Phone | None = None
    timezone: TimeZone | None = Field(None, description="IANA name; default: the clinic's")
    locale: Locale = "en"


class AppointmentOut(BaseModel):
    id: int
    plan_id: int
    start: datetime
    end: datetime
    status: Literal["booked", "completed", "cancelled", "no_show"]
    external_id: str | None = None


class PlanSummary(BaseModel):
    id: int
    condition: str
    modality: str
    planned_sessions: int
    status: str
    external_id: str | None = None
    appointments: list[AppointmentOut]


class PatientOut(BaseModel):
    id: int
    first_name: str
    last_name: str
    email: str | None
    phone: str | None
    timezone: str = Field(description="In force: the patient's, or the clinic's")
    locale: str
    external_id: str | None = None
    plans: list[PlanSummary] = []


class ConsentIn(Input):
    channel: Literal["sms", "email"]
    state: Literal["opted_in", "opted_out"]
    reason: str = Field(min_length=1, max_length=200, examples=["asked at the desk to stop texts"],
                        description="Why, for colleagues (no health details)")


class PatientSummary(BaseModel):
    id: int
    first_name: str
    last_name: str
    email: str | None
    phone: str | None
    locale: str


class ConsentOut(BaseModel):
    patient_id: int
    channel: str
    state: str
    changes: dict[str, int] = Field(description="Outbox rows the change touched, by kind")


class PlanIn(Input):
    patient_id: int
    condition: str = Field(min_length=1, max_length=100, examples=["sciatica"])
    modality: str = Field(min_length=1, max_length=100, examples=["dry needling"])
    first: When = Field(description="The first session")
    sessions: int = Field(ge=1, le=100, examples=[6])
    every: str = Field(examples=["7d"], description="Time between sessions: 7d, 3d12h, 1w")
    duration: str = Field("45m", examples=["45m"], description="Session length")
    reassess_every: int = Field(3, ge=1, description="Sessions between pain reassessments")
    external_id: ExternalId | None = None
    sequence: str | None = Field(None, examples=["dry-needling-sciatica"],
                                 description="Enrol the new plan into this sequence right away")


class PlanOut(PlanSummary):
    patient_id: int
    exercises: list[str] = Field(default_factory=list, description="Exercise keys the practitioner picked, in order")
    enrollment_id: int | None = Field(None, description="When `sequence` was given")


class ExercisesIn(Input):
    """The whole choice (PUT replaces it); an empty list means none: stretch prompts then use generic wording."""

    exercises: list[str] = Field(max_length=50, examples=[["figure-four", "knee-to-chest"]],
                                 description="Keys from the exercise library (templates/exercises), in order")


class AppointmentIn(Input):
    plan_id: int
    start: When
    end: When | None = None
    duration: str | None = Field(None, examples=["45m"], description="Instead of `end`; default: the plan's")
    external_id: ExternalId | None = None


class AppointmentPatch(Input):
    """Move (``start``) or change the status; pending reminders follow either way."""

    start: When | None = None
    status: Literal["cancelled", "completed", "no_show"] | None = None


class AppointmentUpsert(Input):
    """Create or update by your id: a changed time moves the reminders; ``cancelled`` cancels them."""

    patient_external_id: ExternalId
    plan_external_id: ExternalId | None = Field(
        None, description="The plan to book it in (made when new); default: see `sequence`, else the patient's "
        "newest active plan")
    sequence: str | None = Field(None, examples=["dry-needling-sciatica"], description=(
        "Without `plan_external_id`: book it in the patient's plan for this sequence, made and enrolled when new"))
    start: When
    duration: str = Field("45m", examples=["45m"])
    status: Literal["booked", "cancelled", "completed", "no_show"] = "booked"


class EnrollmentIn(Input):
    patient_id: int
    plan_id: int
    sequence: str = Field(examples=["dry-needling-sciatica"])


class EnrollmentOut(BaseModel):
    id: int
    patient_id: int
    plan_id: int
    sequence: str
    status: str
    changes: dict[str, int] = Field(default_factory=dict, description="Outbox rows the change touched, by kind")


class MessageOut(BaseModel):
    id: int
    enrollment_id: int
    patient_id: int | None = None
    appointment_id: int | None
    step: str
    occurrence: str
    channel: str
    template: str
    due_at: datetime
    local_due_at: datetime | None = None
    status: str
    reason: str | None


class OutcomeOut(BaseModel):
    score: int
    recorded_at: datetime
    source: str
    prompt_message_id: int | None


class InboxItem(BaseModel):
    id: int
    patient_id: int | None
    patient: str | None = Field(description="The patient's name, when the number is known")
    kind: str
    flag_reason: str | None
    received_at: datetime
    body: str = Field(description="The patient's words: PHI, shown to staff only")
    handled_at: datetime | None
    handled_by: str | None
    handled_note: str | None


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


def dump(model: BaseModel) -> dict[str, Any]:
    """The fields a client actually sent (for PATCH: absent is 'leave as is', null is 'clear')."""
    return model.model_dump(exclude_unset=True)
