"""``/patients``: add, read, search, change, consent; a patient's timeline and outcomes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy.orm import Session, selectinload

from engage.conversation.consent import consent_in_force
from engage.conversation.outcomes import list_outcomes, outcome_json
from engage.records import patients
from engage.records.api_tokens import Caller
from engage.records.audit import record_view
from engage.records.lookup import get_in_clinic
from engage.records.models import Patient, TreatmentPlan
from engage.records.patient_search import PatientKey, patient_summary, search_patients_after
from engage.schedule import patient_changes
from engage.schedule.enrollments import timeline
from engage.web.api.context import (
    CallerDep,
    IdempotencyKeyHeader,
    PatientsWriter,
    read,
    write,
)
from engage.web.api.cursors import make_cursor, read_cursor
from engage.web.api.problems import errors
from engage.web.api.schemas import (
    ConsentIn,
    ConsentOut,
    MessageOut,
    OutcomeOut,
    Page,
    PatientIn,
    PatientOut,
    PatientPatch,
    PatientSummary,
    dump,
)

router = APIRouter(prefix="/patients", tags=["patients"], responses=errors(401, 422))
PatientId = Annotated[int, Path(description="engage's patient id", examples=[42])]


def load_patient(session: Session, clinic_id: int, patient_id: int) -> Patient:
    """The patient with plans and appointments loaded; 404 outside the caller's clinic."""
    patient: Patient = get_in_clinic(session, Patient, patient_id, clinic_id)
    session.refresh(patient)
    return session.get(  # type: ignore[return-value]
        Patient,
        patient.id,
        options=[selectinload(Patient.plans).selectinload(TreatmentPlan.appointments)],
    )


def patient_out(session: Session, clinic_id: int, patient_id: int) -> dict[str, Any]:
    return {
        **patients.patient_json(load_patient(session, clinic_id, patient_id)),
        "consent": consent_in_force(session, patient_id),
    }


@router.post("", status_code=201, response_model=PatientOut, summary="Add a patient", responses=errors(403, 413))
def create_patient(body: PatientIn, request: Request, caller: PatientsWriter, key: IdempotencyKeyHeader = None) -> Any:
    """Add a patient to the token's clinic. Needs an email or a phone; a phone without `+` is read in the
    clinic's country."""

    def work(session: Session) -> dict[str, Any]:
        created = patients.add_patient(
            session, clinic_id=caller.clinic_id, actor=caller.actor, **body.model_dump()
        ).patient
        return patient_out(session, caller.clinic_id, created.id)

    return write(request, caller, key, body, work, status_code=201)


@router.get("", response_model=Page[PatientSummary], summary="Find patients")
def find_patients(
    caller: CallerDep,
    q: Annotated[
        str, Query(description="A name (`ana ru`), a phone number in any format, or an email", examples=["ana ru"])
    ] = "",
    limit: Annotated[int, Query(ge=1, le=200, description="Patients per page", examples=[25])] = 25,
    cursor: Annotated[
        str | None,
        Query(description="`next_cursor` of the previous page (with the same `q`)", examples=["gAAAAABpLd3e...q9Q="]),
    ] = None,
) -> Any:
    """Patients of the token's clinic matching `q` (everyone without it), by last name, first name.

    `next_cursor` continues after the last patient of this page: patients added or removed meanwhile
    never move a patient onto another page, so each one is listed once. A cursor works only with the
    same `q`."""

    def work(session: Session) -> dict[str, Any]:
        scope = {"clinic": caller.clinic_id, "q": " ".join(q.split()).lower()}
        after = PatientKey(*read_cursor("patients", scope, cursor)) if cursor else None
        found = search_patients_after(session, caller.clinic_id, q, after=after, limit=limit)
        return {
            "items": [patient_summary(p) for p in found.patients],
            "next_cursor": make_cursor("patients", scope, list(found.next_key)) if found.next_key else None,
        }

    return read(work)


def _viewed(session: Session, caller: Caller, patient_id: int) -> None:
    """The caller's clinic's patient (else ``NotFound``, nothing logged), its read audited as a view."""
    get_in_clinic(session, Patient, patient_id, caller.clinic_id)
    record_view(session, clinic_id=caller.clinic_id, actor=caller.actor, patient_id=patient_id)


@router.get(
    "/{patient_id}", response_model=PatientOut, summary="A patient with plans and appointments", responses=errors(404)
)
def get_patient(patient_id: PatientId, caller: CallerDep) -> Any:
    """The patient's details as engage has them, with every treatment plan and its appointments."""

    def work(session: Session) -> dict[str, Any]:
        found = patient_out(session, caller.clinic_id, patient_id)  # loads it in the clinic, else NotFound
        record_view(session, clinic_id=caller.clinic_id, actor=caller.actor, patient_id=patient_id)
        return found

    return read(work)


@router.get(
    "/{patient_id}/timeline",
    response_model=list[MessageOut],
    summary="Every message of the patient",
    responses=errors(404),
)
def get_timeline(patient_id: PatientId, caller: CallerDep) -> Any:
    """Every outbox row, by due time: scheduled, sent, skipped or cancelled (with the reason)."""

    def work(session: Session) -> list[dict[str, Any]]:
        _viewed(session, caller, patient_id)
        return [{**row, "patient_id": patient_id} for row in timeline(session, patient_id)]

    return read(work)


@router.get(
    "/{patient_id}/outcomes", response_model=list[OutcomeOut], summary="Pain scores over time", responses=errors(404)
)
def get_outcomes(
    patient_id: PatientId,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many, the newest", examples=[100])] = 1000,
) -> Any:
    """The patient's 0-10 pain scores, oldest first (replies to reassessment prompts, and staff entries)."""

    def work(session: Session) -> list[dict[str, Any]]:
        _viewed(session, caller, patient_id)
        return [outcome_json(o) for o in list_outcomes(session, patient_id)[-limit:]]

    return read(work)


@router.patch(
    "/{patient_id}", response_model=PatientOut, summary="Change a patient's details", responses=errors(403, 404, 413)
)
def change_patient(patient_id: PatientId, body: PatientPatch, request: Request, caller: PatientsWriter) -> Any:
    """Only the fields sent change. A new phone, email, time zone or locale re-plans pending messages."""

    def work(session: Session) -> dict[str, Any]:
        patient = get_in_clinic(session, Patient, patient_id, caller.clinic_id)
        patient_changes.update_patient(session, patient, actor=caller.actor, **dump(body))
        return patient_out(session, caller.clinic_id, patient_id)

    return write(request, caller, None, body, work)


@router.post(
    "/{patient_id}/consent",
    response_model=ConsentOut,
    summary="Record consent given or withdrawn",
    responses=errors(403, 404, 413),
)
def set_consent(
    patient_id: PatientId, body: ConsentIn, request: Request, caller: PatientsWriter, key: IdempotencyKeyHeader = None
) -> Any:
    """Opting out cancels the channel's pending messages; opting in brings back future ones."""

    def work(session: Session) -> dict[str, Any]:
        patient = get_in_clinic(session, Patient, patient_id, caller.clinic_id)
        event, result = patient_changes.set_consent(
            session,
            patient,
            body.channel,
            body.state,
            reason=body.reason,
            actor=caller.actor,
        )
        return {
            "patient_id": patient_id,
            "channel": event.channel.value,
            "state": event.state.value,
            "changes": result.as_dict(),
        }

    return write(request, caller, key, body, work)
