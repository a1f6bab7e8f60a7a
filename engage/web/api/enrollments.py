"""``/enrollments``: enroll a plan into a sequence; pause, resume, cancel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from sqlalchemy.orm import Session

from engage.records.lookup import get_in_clinic
from engage.records.models import Enrollment, Patient
from engage.schedule import enrollments
from engage.schedule.reconcile import ReconcileResult
from engage.web.api.context import IdempotencyKeyHeader, PlansWriter, write
from engage.web.api.problems import errors
from engage.web.api.schemas import EnrollmentIn, EnrollmentOut

router = APIRouter(prefix="/enrollments", tags=["enrollments"], responses=errors(401, 422))
EnrollmentId = Annotated[int, Path(description="engage's enrollment id", examples=[7])]


def enrollment_out(enrollment: Enrollment, result: ReconcileResult) -> dict[str, Any]:
    return {
        "id": enrollment.id,
        "patient_id": enrollment.patient_id,
        "plan_id": enrollment.plan_id,
        "sequence": enrollment.sequence_key,
        "status": enrollment.status.value,
        "changes": result.as_dict(),
    }


@router.post(
    "",
    status_code=201,
    response_model=EnrollmentOut,
    summary="Enroll a plan into a sequence",
    responses=errors(403, 404, 413),
)
def create_enrollment(
    body: EnrollmentIn, request: Request, caller: PlansWriter, key: IdempotencyKeyHeader = None
) -> Any:
    """Plan every message of the sequence for the plan's appointments; `changes.inserted` says how many."""

    def work(session: Session) -> dict[str, Any]:
        get_in_clinic(session, Patient, body.patient_id, caller.clinic_id)
        return enrollment_out(
            *enrollments.enroll(session, body.patient_id, body.plan_id, body.sequence, enrolled_by=caller.actor)
        )

    return write(request, caller, key, body, work, status_code=201)


def _change_route(verb: str, change: Callable[..., tuple[Enrollment, ReconcileResult]], doc: str, more: str) -> None:
    @router.post(
        f"/{{enrollment_id}}/{verb}",
        response_model=EnrollmentOut,
        summary=doc,
        name=f"{verb}_enrollment",
        description=more,
        responses=errors(403, 404),
    )
    def route(
        enrollment_id: EnrollmentId, request: Request, caller: PlansWriter, key: IdempotencyKeyHeader = None
    ) -> Any:
        def work(session: Session) -> dict[str, Any]:
            get_in_clinic(session, Enrollment, enrollment_id, caller.clinic_id)
            return enrollment_out(*change(session, enrollment_id, actor=caller.actor))

        return write(request, caller, key, None, work)


_change_route(
    "pause",
    enrollments.pause,
    "Pause: pending messages are held (cancelled, 'paused')",
    "Nothing more is sent until it is resumed; `changes.cancelled` says how many messages were held.",
)
_change_route(
    "resume",
    enrollments.resume,
    "Resume: held messages still in the future are scheduled again",
    "Messages whose time passed while paused stay cancelled; `changes.revived` counts the others.",
)
_change_route(
    "cancel",
    enrollments.cancel,
    "Cancel for good: pending messages are cancelled",
    "The enrollment cannot be resumed; enroll the plan again to start over.",
)
