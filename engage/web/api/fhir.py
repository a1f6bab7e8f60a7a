"""``POST /fhir``: a FHIR R4 Bundle of Patient and Appointment resources, upserted by their identifiers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session

from engage.sync.fhir import sync_bundle
from engage.web.api.context import IdempotencyKeyHeader, PlansWriter, write
from engage.web.api.problems import errors

router = APIRouter(tags=["sync"], responses=errors(401, 422))

EXAMPLE = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {
            "fullUrl": "urn:uuid:8c95253e-8ee8-9ae8-6d40-021d702dc78e",
            "resource": {
                "resourceType": "Patient",
                "identifier": [
                    {
                        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                        "system": "https://pms.example/patients",
                        "value": "PMS-10042",
                    }
                ],
                "name": [{"use": "official", "family": "Ruiz", "given": ["Ana"]}],
                "telecom": [{"system": "phone", "value": "+1 415 555 0123", "use": "mobile"}],
                "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es"}]}}],
            },
            "request": {"method": "PUT", "url": "Patient?identifier=https://pms.example/patients|PMS-10042"},
        },
        {
            "resource": {
                "resourceType": "Appointment",
                "identifier": [{"value": "V-881"}],
                "status": "booked",
                "start": "2026-12-01T09:00:00-05:00",
                "end": "2026-12-01T09:45:00-05:00",
                "participant": [
                    {"actor": {"reference": "urn:uuid:8c95253e-8ee8-9ae8-6d40-021d702dc78e"}, "status": "accepted"}
                ],
            },
            "request": {"method": "PUT", "url": "Appointment?identifier=V-881"},
        },
    ],
}


RESPONSE_EXAMPLE = {
    "resourceType": "Bundle",
    "type": "transaction-response",
    "entry": [
        {"response": {"status": "201 Created", "location": "Patient/42"}},
        {"response": {"status": "201 Created", "location": "Appointment/881"}},
    ],
}


class _Request(BaseModel):
    """What the Idempotency-Key fingerprint covers: the Bundle and the sequence."""

    bundle: dict[str, Any]
    sequence: str | None


@router.post(
    "/fhir",
    summary="Sync a FHIR R4 Bundle of Patients and Appointments",
    response_description="A transaction-response Bundle, one entry per entry sent",
    responses={200: {"content": {"application/json": {"example": RESPONSE_EXAMPLE}}}, **errors(403, 413)},
)
def post_bundle(
    request: Request,
    caller: PlansWriter,
    bundle: Annotated[dict[str, Any], Body(examples=[EXAMPLE], description="A FHIR R4 Bundle (JSON)")],
    sequence: Annotated[
        str | None, Query(description="Enroll new plans in this sequence", examples=["dry-needling-sciatica"])
    ] = None,
    key: IdempotencyKeyHeader = None,
) -> Any:
    """A `transaction` or `collection` Bundle; Patients and Appointments are created or updated by their
    identifiers (type MR first), so the same Bundle twice changes nothing. Appointment.status maps to
    booked / cancelled / no_show / completed; a moved or cancelled appointment moves or cancels its reminders."""

    def work(session: Session) -> dict[str, Any]:
        return sync_bundle(session, caller.clinic_id, bundle, sequence=sequence, actor=caller.actor)

    return write(request, caller, key, _Request(bundle=bundle, sequence=sequence), work)
