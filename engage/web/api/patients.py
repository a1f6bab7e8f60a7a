"""``/patients``: add, read, search, change, consent; a patient's timeline and outcomes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy.orm import Session, selectinload

from engage.conversation.outcomes import list_outcomes, outcome_json
from engage.records import patients
from engage.records.lookup import get_in_clinic
from engage.records.models import Patient, TreatmentPlan
from engage.schedule.enrollments import timeline
from engage.web.api.context import CallerDep, IdempotencyKeyHeader, WriterDep, read, write
from engage.web.api.problems import ERRORS
from engage.web.api.schemas import MessageOut, OutcomeOut, PatientIn, PatientOut

router = APIRouter(prefix="/patients", tags=["patients"], responses=ERRORS)
PatientId = Annotated[int, Path(description="engage's patient id")]


def load_patient(session: Session, clinic_id: int, patient_id: int) -> Patient:
    """The patient with plans and appointments loaded; 404 outside the caller's clinic."""
    patient: Patient = get_in_clinic(session, Patient, patient_id, clinic_id)
    session.refresh(patient)
    return session.get(  # type: ignore[return-value]
        Patient, patient.id, options=[selectinload(Patient.plans).selectinload(TreatmentPlan.appointments)],
    )


def patient_out(session: Session, clinic_id: int, patient_id: int) -> dict[str, Any]:
    return patients.patient_json(load_patient(session, clinic_id, patient_id))


@router.post("", status_code=201, response_model=PatientOut, summary="Add a patient")
def create_patient(body: PatientIn, request: Request, caller: WriterDep, key: IdempotencyKeyHeader = None) -> Any:
    """Add a patient to the token's clinic. Needs an email or a phone; a phone without `+` is read in the
    clinic's country."""

    def work(session: Session) -> dict[str, Any]:
        created = patients.add_patient(session, clinic_id=caller.clinic_id, actor=caller.actor, **body.model_dump())
        return patient_out(session, caller.clinic_id, created.id)

    return write(request, caller, key, body, work, status_code=201)


@router.get("/{patient_id}", response_model=PatientOut, summary="A patient with plans and appointments")
def get_patient(patient_id: PatientId, caller: CallerDep) -> Any:
    return read(lambda session: patient_out(session, caller.clinic_id, patient_id))


@router.get("/{patient_id}/timeline", response_model=list[MessageOut], summary="Every message of the patient")
def get_timeline(patient_id: PatientId, caller: CallerDep) -> Any:
    """Every outbox row, by due time: scheduled, sent, skipped or cancelled (with the reason)."""

    def work(session: Session) -> list[dict[str, Any]]:
        get_in_clinic(session, Patient, patient_id, caller.clinic_id)
        return [{**row, "patient_id": patient_id} for row in timeline(session, patient_id)]

    return read(work)


@router.get("/{patient_id}/outcomes", response_model=list[OutcomeOut], summary="Pain scores over time")
def get_outcomes(patient_id: PatientId, caller: CallerDep, limit: Annotated[int, Query(ge=1, le=1000)] = 1000) -> Any:
    def work(session: Session) -> list[dict[str, Any]]:
        get_in_clinic(session, Patient, patient_id, caller.clinic_id)
        return [outcome_json(o) for o in list_outcomes(session, patient_id)[-limit:]]

    return read(work)
