"""Pydantic models in and out of the API: the OpenAPI document is the contract.

Times go in as ISO 8601: with an offset they are exact, without one they are the
patient's local wall time (DST-correct), as on the CLI. Times come out in UTC with
``+00:00``. Fields whose check needs no clinic (time zone, locale, email) are checked
here with the library's own validators, so each bad field gets its own error entry.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

T = TypeVar("T")


# Reused field types: each carries its description and an example into the OpenAPI document
# (tests/web/api/test_openapi.py fails naming any property without both). Examples are made up:
# names like Ana Ruiz, 555-01xx numbers, example.com addresses.
_TIME_ZONE = Field(examples=["America/New_York"], description="IANA time zone name")
_LOCALE = Field(examples=["es"], description="Language of the patient's messages: `en` or `es`")
_EMAIL = Field(examples=["ana.ruiz@example.com"], description="Email address")
_PHONE = Field(
    examples=["+1 415 555 0123"],
    description=(
        "Mobile number in any format; without `+`, read in the clinic's country. Stored and answered as E.164"
    ),
)
_FIRST_NAME = Field(min_length=1, max_length=100, examples=["Ana"], description="Given name")
_LAST_NAME = Field(min_length=1, max_length=100, examples=["Ruiz"], description="Family name")
_EXTERNAL_ID = Field(
    min_length=1,
    max_length=100,
    examples=["PMS-10042"],
    description="Your practice-management system's id (unique per clinic)",
)
_WHEN = Field(
    examples=["2026-12-01T09:00", "2026-12-01T14:00:00+00:00"],
    description="ISO 8601; without an offset: the patient's local wall time",
)
_UTC = Field(examples=["2026-12-01T14:00:00+00:00"], description="ISO 8601, UTC")
_ALLOW_PAST = Field(
    examples=[False],
    description=("Record a visit that already happened (a start in the past); it gets no confirmation or reminder"),
)
_DURATION = Field(examples=["45m"], description="A length: `45m`, `1h`, `1h30m`")
_SEQUENCE = Field(examples=["dry-needling-sciatica"], description="A follow-up sequence's key (templates/sequences)")
# Each type twice: a field that may be null carries its description and example on the field itself.
TimeZone = Annotated[str, _TIME_ZONE]
MaybeTimeZone = Annotated[str | None, _TIME_ZONE]
Locale = Annotated[str, _LOCALE]
MaybeLocale = Annotated[str | None, _LOCALE]
MaybeEmail = Annotated[str | None, _EMAIL]
MaybePhone = Annotated[str | None, _PHONE]
FirstName = Annotated[str, _FIRST_NAME]
MaybeFirstName = Annotated[str | None, _FIRST_NAME]
LastName = Annotated[str, _LAST_NAME]
MaybeLastName = Annotated[str | None, _LAST_NAME]
ExternalId = Annotated[str, _EXTERNAL_ID]
MaybeExternalId = Annotated[str | None, _EXTERNAL_ID]
When = Annotated[datetime, _WHEN]
MaybeWhen = Annotated[datetime | None, _WHEN]
# Written as ``+00:00`` like every answer the library builds itself (pydantic alone would write ``Z``).
UtcTime = Annotated[datetime, _UTC, PlainSerializer(lambda value: value.isoformat(), return_type=str)]
MaybeUtcTime = Annotated[
    datetime | None, _UTC, PlainSerializer(lambda value: value.isoformat() if value else None, return_type=str | None)
]
AllowPast = Annotated[bool, _ALLOW_PAST]
Duration = Annotated[str, _DURATION]
MaybeDuration = Annotated[str | None, _DURATION]
SequenceKey = Annotated[str, _SEQUENCE]
MaybeSequenceKey = Annotated[str | None, _SEQUENCE]
Changes = Annotated[
    dict[str, int],
    Field(
        examples=[
            {"inserted": 9, "moved": 0, "updated": 0, "cancelled": 0, "skipped": 1, "revived": 0, "unchanged": 0}
        ],
        description="Outbox rows the change touched, by kind",
    ),
]


def _id(what: str, example: int) -> Any:
    return Field(examples=[example], description=f"engage's {what} id")


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Patient(Input):
    """A whole patient: what adding one (POST) and an upsert by external id (PUT) both take."""

    first_name: FirstName
    last_name: LastName
    email: MaybeEmail = None
    phone: MaybePhone = None
    timezone: MaybeTimeZone = Field(None, description="IANA name; default: the clinic's")
    locale: Locale = "en"
    date_of_birth: date | None = Field(
        None,
        examples=["1980-03-14"],
        description="Optional, to tell patients apart (an upsert without it keeps the date engage has)",
    )


class PatientIn(_Patient):
    external_id: MaybeExternalId = None


class PatientPatch(Input):
    """Only the fields sent change; ``null`` clears an optional one."""

    first_name: MaybeFirstName = None
    last_name: MaybeLastName = None
    email: MaybeEmail = None
    phone: MaybePhone = None
    timezone: MaybeTimeZone = Field(None, description="IANA name; `null`: the clinic's")
    locale: MaybeLocale = None
    date_of_birth: date | None = Field(None, examples=["1980-03-14"], description="Optional; `null` clears it")


class PatientUpsert(_Patient):
    """The whole patient as your system has them (PUT replaces; the external id is in the path)."""


class AppointmentOut(BaseModel):
    id: int = _id("appointment", 881)
    plan_id: int = _id("treatment plan", 12)
    start: UtcTime
    end: UtcTime
    status: Literal["booked", "completed", "cancelled", "no_show"] = Field(
        examples=["booked"], description="booked, completed, cancelled or no_show"
    )
    confirmed_at: MaybeUtcTime = Field(None, description="When the patient confirmed by replying to a reminder")
    callback_requested_at: MaybeUtcTime = Field(
        None, description="When the patient asked, by SMS, to be called to rebook"
    )
    external_id: MaybeExternalId = Field(None, examples=["V-881"], description="Your system's id for the visit")
    practitioner_id: int | None = Field(None, examples=[3], description="engage's id of who sees the patient")


class PlanSummary(BaseModel):
    id: int = _id("treatment plan", 12)
    condition: str = Field(examples=["sciatica"], description="What is treated")
    modality: str = Field(examples=["dry needling"], description="How it is treated")
    planned_sessions: int = Field(examples=[6], description="Sessions planned in all")
    status: str = Field(examples=["active"], description="active, completed or cancelled")
    external_id: MaybeExternalId = Field(
        None, examples=["PMS-10042/dry-needling-sciatica"], description="Your system's id for the plan"
    )
    appointments: list[AppointmentOut] = Field(description="The plan's appointments, in start order")
    practitioner_id: int | None = Field(None, examples=[3], description="engage's id of who treats")


class ConsentInForce(BaseModel):
    state: str = Field(examples=["opted_out"], description="opted_in or opted_out")
    source: str = Field(
        examples=["sms_keyword"],
        description="How it was given or withdrawn: default (no change recorded), sms_keyword, staff, api, email_link",
    )
    at: datetime | None = Field(examples=["2026-12-01T15:04:05+00:00"], description="When; null for the default")


class PatientOut(BaseModel):
    id: int = _id("patient", 42)
    clinic_id: int = _id("clinic", 1)
    first_name: str = Field(examples=["Ana"], description="Given name")
    last_name: str = Field(examples=["Ruiz"], description="Family name")
    email: str | None = Field(examples=["ana.ruiz@example.com"], description="Email address")
    phone: str | None = Field(examples=["+14155550123"], description="Mobile number, E.164")
    timezone: str = Field(examples=["America/New_York"], description="In force: the patient's, or the clinic's")
    locale: str = Field(examples=["es"], description="Language of the patient's messages")
    date_of_birth: date | None = Field(None, examples=["1980-03-14"], description="Optional, to tell patients apart")
    external_id: MaybeExternalId = None
    plans: list[PlanSummary] = Field([], description="Treatment plans, each with its appointments")
    consent: dict[str, ConsentInForce] = Field(
        {},
        examples=[
            {
                "sms": {"state": "opted_out", "source": "sms_keyword", "at": "2026-12-01T15:04:05+00:00"},
                "email": {"state": "opted_in", "source": "default", "at": None},
            }
        ],
        description="The consent in force per channel (sms, email), with its source and time",
    )


class ConsentIn(Input):
    channel: Literal["sms", "email"] = Field(examples=["sms"], description="The channel the consent is about")
    state: Literal["opted_in", "opted_out"] = Field(examples=["opted_out"], description="Given or withdrawn")
    reason: str = Field(
        min_length=1,
        max_length=200,
        examples=["asked at the desk to stop texts"],
        description="Why, for colleagues (no health details)",
    )


class PatientSummary(BaseModel):
    id: int = _id("patient", 42)
    first_name: str = Field(examples=["Ana"], description="Given name")
    last_name: str = Field(examples=["Ruiz"], description="Family name")
    email: str | None = Field(examples=["ana.ruiz@example.com"], description="Email address")
    phone: str | None = Field(examples=["+14155550123"], description="Mobile number, E.164")
    locale: str = Field(examples=["es"], description="Language of the patient's messages")


class ConsentOut(BaseModel):
    patient_id: int = _id("patient", 42)
    channel: str = Field(examples=["sms"], description="sms or email")
    state: str = Field(examples=["opted_out"], description="The consent now in force: opted_in or opted_out")
    changes: Changes


class PlanIn(Input):
    patient_id: int = _id("patient", 42)
    condition: str = Field(min_length=1, max_length=100, examples=["sciatica"], description="What is treated")
    modality: str = Field(min_length=1, max_length=100, examples=["dry needling"], description="How it is treated")
    first: When = Field(description="The first session")
    sessions: int = Field(ge=1, le=100, examples=[6], description="How many sessions to book")
    every: str = Field(examples=["7d"], description="Time between sessions: 7d, 3d12h, 1w")
    duration: Duration = Field("45m", description="Session length")
    reassess_every: int = Field(3, ge=1, examples=[3], description="Sessions between pain reassessments")
    external_id: MaybeExternalId = None
    sequence: MaybeSequenceKey = Field(None, description="Enroll the new plan into this sequence right away")
    allow_past: AllowPast = False
    practitioner_id: int | None = Field(None, examples=[3], description="Who treats: one of the clinic's practitioners")


class PlanOut(PlanSummary):
    patient_id: int = _id("patient", 42)
    exercises: list[str] = Field(
        default_factory=list,
        examples=[["figure-four", "knee-to-chest"]],
        description="Exercise keys the practitioner picked, in order",
    )
    enrollment_id: int | None = Field(None, examples=[7], description="When `sequence` was given: the enrollment")


class ExercisesIn(Input):
    """The whole choice (PUT replaces it); an empty list means none: stretch prompts then use generic wording."""

    exercises: list[str] = Field(
        max_length=50,
        examples=[["figure-four", "knee-to-chest"]],
        description="Keys from the exercise library (templates/exercises), in order",
    )


class AppointmentIn(Input):
    plan_id: int = _id("treatment plan", 12)
    start: When
    end: MaybeWhen = Field(None, description="ISO 8601, like `start`; or give `duration`")
    duration: MaybeDuration = Field(None, description="Instead of `end`; default: the plan's session length")
    external_id: MaybeExternalId = Field(None, examples=["V-881"], description="Your system's id for the visit")
    allow_past: AllowPast = False


class AppointmentPatch(Input):
    """Move (``start``) or change the status; pending reminders follow either way."""

    start: MaybeWhen = Field(None, description="The new start (a move keeps the length)")
    allow_past: AllowPast = False
    status: Literal["cancelled", "completed", "no_show"] | None = Field(
        None, examples=["cancelled"], description="cancelled, or once it has started: completed or no_show"
    )


class AppointmentUpsert(Input):
    """Create or update by your id: a changed time moves the reminders; ``cancelled`` cancels them.

    A start in the past is recorded as history (no confirmation or reminder for it); a visit that would
    overlap another booked visit of the same patient is refused (422, naming it)."""

    patient_external_id: ExternalId
    plan_external_id: MaybeExternalId = Field(
        None,
        examples=["PMS-10042/dry-needling-sciatica"],
        description="The plan to book it in (made when new); "
        "default: see `sequence`, else the patient's newest active plan",
    )
    sequence: MaybeSequenceKey = Field(
        None,
        description=(
            "Without `plan_external_id`: book it in the patient's plan for this sequence, made and enrolled when new"
        ),
    )
    start: When
    duration: Duration = "45m"
    status: Literal["booked", "cancelled", "completed", "no_show"] = Field(
        "booked", examples=["booked"], description="booked, cancelled, completed or no_show"
    )
    practitioner_external_id: MaybeExternalId = Field(
        None, examples=["DR-7"], description="Who sees the patient, by your system's id"
    )
    practitioner_name: str | None = Field(
        None, max_length=200, examples=["Dr. Lee"], description="Their name: adds a practitioner new to engage"
    )


class EnrollmentIn(Input):
    patient_id: int = _id("patient", 42)
    plan_id: int = _id("treatment plan", 12)
    sequence: SequenceKey


class EnrollmentOut(BaseModel):
    id: int = _id("enrollment", 7)
    patient_id: int = _id("patient", 42)
    plan_id: int = _id("treatment plan", 12)
    sequence: str = Field(examples=["dry-needling-sciatica"], description="The sequence's key")
    status: str = Field(examples=["active"], description="active, paused, completed or cancelled")
    changes: Changes = Field(default_factory=dict)


class MessageOut(BaseModel):
    id: int = _id("message", 3051)
    enrollment_id: int = _id("enrollment", 7)
    patient_id: int | None = Field(None, examples=[42], description="engage's patient id")
    appointment_id: int | None = Field(examples=[881], description="The appointment it is about, if any")
    step: str = Field(examples=["visit-reminder"], description="The sequence step that planned it")
    occurrence: str = Field(examples=["appt:881"], description="Which of the step's occurrences: one row each")
    channel: str = Field(examples=["sms"], description="sms or email")
    template: str = Field(examples=["visit-reminder"], description="The template it is rendered from at send time")
    due_at: UtcTime = Field(description="When it is (or was) due, UTC")
    local_due_at: datetime | None = Field(
        None, examples=["2026-11-30T09:00:00-05:00"], description="The same, in the patient's time zone"
    )
    status: str = Field(
        examples=["scheduled"],
        description=(
            "scheduled, queued, sending, sent, delivered, undelivered, bounced, failed, cancelled, skipped or unknown"
        ),
    )
    reason: str | None = Field(
        examples=["appointment cancelled"], description=("Why it was skipped, cancelled or failed")
    )


class OutcomeOut(BaseModel):
    score: int = Field(examples=[4], description="Pain 0-10 as the patient reported it")
    recorded_at: UtcTime = Field(description="When it was recorded, UTC")
    source: str = Field(examples=["sms"], description="sms, sms_unsolicited, email or staff")
    prompt_message_id: int | None = Field(examples=[3057], description="The reassessment message it answers")
    measure: Literal["nprs", "psfs"] = Field(
        "nprs", examples=["nprs"], description="nprs: pain 0-10; psfs: one activity's 0-10"
    )
    item: str | None = Field(None, examples=["climbing stairs"], description="The PSFS activity it rates")


class InboxItem(BaseModel):
    id: int = _id("reply", 311)
    patient_id: int | None = Field(examples=[42], description="engage's patient id, when the number is known")
    patient: str | None = Field(examples=["Ana Ruiz"], description="The patient's name, when the number is known")
    kind: str = Field(
        examples=["other"],
        description=(
            "What the reply was read as: opt_out, opt_in, help, confirm, reschedule, score, ambiguous or other"
        ),
    )
    flag_reason: str | None = Field(examples=["not a keyword or score"], description="Why it needs a person")
    received_at: UtcTime = Field(description="When it arrived, UTC")
    body: str = Field(examples=["can I come Friday instead?"], description="The patient's words: PHI, staff only")
    handled_at: MaybeUtcTime = Field(description="When a colleague marked it handled")
    handled_by: str | None = Field(examples=["desk@clinic.example"], description="Who handled it")
    handled_note: str | None = Field(examples=["moved to Friday 10:00"], description="What they did")


class Page(BaseModel, Generic[T]):
    items: list[T] = Field(description="This page's items, in the list's order")
    next_cursor: str | None = Field(
        examples=["gAAAAABpLd3e...q9Q="],
        description=(
            "Pass as `cursor` for the next page; null on the last page. Opaque: made by the API for this list"
        ),
    )


class SyncReportOut(BaseModel):
    """What an import did (or, with ``dry_run``, would do)."""

    patients_created: int = Field(examples=[2], description="New patients")
    patients_updated: int = Field(examples=[0], description="Patients whose details changed")
    patients_unchanged: int = Field(examples=[0], description="Patients already as sent")
    plans_created: int = Field(examples=[2], description="New treatment plans")
    appointments_created: int = Field(examples=[3], description="New appointments")
    appointments_moved: int = Field(examples=[0], description="Appointments with a new time (reminders moved)")
    appointments_status_changed: int = Field(examples=[0], description="Appointments cancelled, completed or no-show")
    appointments_unchanged: int = Field(examples=[0], description="Appointments already as sent")
    enrollments_created: int = Field(examples=[2], description="New plans enrolled in their sequence")
    messages: Changes
    dry_run: bool = Field(examples=[False], description="True: checked and counted, nothing written")


def dump(model: BaseModel) -> dict[str, Any]:
    """The fields a client actually sent (for PATCH: absent is 'leave as is', null is 'clear')."""
    return model.model_dump(exclude_unset=True)
