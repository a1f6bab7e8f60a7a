"""Upserts by the clinic's own ids: ``PUT /patients/by-external-id/{id}``, ``PUT /appointments/by-external-id/{id}``.

Both go through :func:`engage.sync.apply.apply_sync`, like the CSV import and FHIR: the
same data twice changes nothing; a changed time moves the reminders; ``cancelled`` cancels them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from sqlalchemy.orm import Session

from engage.records import plans
from engage.records.models import Appointment
from engage.sync.apply import apply_sync
from engage.sync.records import AppointmentRecord, PatientRecord
from engage.web.api.context import PatientsWriter, PlansWriter, write
from engage.web.api.patients import patient_out
from engage.web.api.plans import duration
from engage.web.api.problems import errors
from engage.web.api.schemas import AppointmentOut, AppointmentUpsert, PatientOut, PatientUpsert

router = APIRouter(tags=["sync"], responses=errors(401, 422))
ExternalIdPath = Annotated[
    str, Path(min_length=1, max_length=100, description="Your system's id", examples=["PMS-10042"])
]
_CREATED: dict[int | str, dict[str, Any]] = {
    201: {"description": "Created (200: it existed, and was updated or left as it was)"},
    **errors(403, 413),
}


@router.put(
    "/patients/by-external-id/{external_id}",
    response_model=PatientOut,
    responses=_CREATED,
    summary="Create or update a patient by your id",
)
def put_patient(external_id: ExternalIdPath, body: PatientUpsert, request: Request, caller: PatientsWriter) -> Any:
    """A changed phone, email, time zone or locale re-plans the patient's pending messages."""
    status = {"code": 200}

    def work(session: Session) -> dict[str, Any]:
        record = PatientRecord(external_id=external_id, where="body", **body.model_dump())
        report = apply_sync(session, caller.clinic_id, [record], [], actor=caller.actor)
        status["code"] = 201 if report.patients_created else 200
        return patient_out(session, caller.clinic_id, report.patient_ids[external_id.strip()])

    answer = write(request, caller, None, body, work)
    answer.status_code = status["code"]
    return answer


@router.put(
    "/appointments/by-external-id/{external_id}",
    response_model=AppointmentOut,
    responses=_CREATED,
    summary="Create or update an appointment by your id",
)
def put_appointment(external_id: ExternalIdPath, body: AppointmentUpsert, request: Request, caller: PlansWriter) -> Any:
    """The patient must exist (by `patient_external_id`). A new time moves the reminders; `cancelled` cancels
    them; `completed` and `no_show` mark the visit."""
    status = {"code": 200}

    def work(session: Session) -> dict[str, Any]:
        minutes = int(duration(body.duration, "duration").total_seconds() // 60)
        record = AppointmentRecord(
            external_id=external_id,
            patient_external_id=body.patient_external_id,
            start=body.start,
            minutes=minutes,
            status=body.status,
            sequence=body.sequence,
            plan_external_id=body.plan_external_id,
            practitioner_external_id=body.practitioner_external_id,
            practitioner_name=body.practitioner_name,
            where="body",
        )
        report = apply_sync(session, caller.clinic_id, [], [record], actor=caller.actor)
        status["code"] = 201 if report.appointments_created else 200
        return plans.appointment_json(session.get_one(Appointment, report.appointment_ids[external_id.strip()]))

    answer = write(request, caller, None, body, work)
    answer.status_code = status["code"]
    return answer
