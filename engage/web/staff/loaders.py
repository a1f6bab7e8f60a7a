"""One loader per record a staff page can name by id: the record if it belongs to the staff member's clinic,
else 404 (the same answer as an id that does not exist, so ids of other clinics reveal nothing)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from engage.conversation.inbox import get_reply_in_clinic
from engage.delivery.resolve import get_message_in_clinic
from engage.errors import NotFound
from engage.integrations.endpoints import get_endpoint
from engage.records.models import Appointment, Enrollment, InboundMessage, Message, Patient, StaffUser, TreatmentPlan
from engage.records.outgoing_webhooks import WebhookEndpoint
from engage.records.staff import get_staff_in_clinic
from engage.web.staff.pages import Staff


def _not_found() -> HTTPException:
    return HTTPException(status_code=404, detail="not found")


def _in_clinic(record: Any, clinic_id: int | None, staff: Staff) -> Any:
    if record is None or clinic_id != staff.clinic_id:
        raise _not_found()
    return record


def get_patient_for(session: Session, staff: Staff, patient_id: int) -> Patient:
    patient = session.get(Patient, patient_id)
    return _in_clinic(patient, patient.clinic_id if patient else None, staff)


def get_plan_for(session: Session, staff: Staff, plan_id: int, patient_id: int | None = None) -> TreatmentPlan:
    plan = session.get(TreatmentPlan, plan_id)
    if plan is not None and patient_id is not None and plan.patient_id != patient_id:
        raise _not_found()
    return _in_clinic(plan, plan.patient.clinic_id if plan else None, staff)


def get_appointment_for(session: Session, staff: Staff, appointment_id: int) -> Appointment:
    appointment = session.get(Appointment, appointment_id)
    return _in_clinic(appointment, appointment.plan.patient.clinic_id if appointment else None, staff)


def get_enrollment_for(session: Session, staff: Staff, enrollment_id: int) -> Enrollment:
    enrollment = session.get(Enrollment, enrollment_id)
    return _in_clinic(enrollment, enrollment.patient.clinic_id if enrollment else None, staff)


def get_message_for(session: Session, staff: Staff, message_id: int) -> Message:
    try:
        return get_message_in_clinic(session, staff.clinic_id, message_id)
    except NotFound:
        raise _not_found() from None


def get_reply_for(session: Session, staff: Staff, reply_id: int) -> InboundMessage:
    try:
        return get_reply_in_clinic(session, staff.clinic_id, reply_id)
    except NotFound:
        raise _not_found() from None


def get_staff_user_for(session: Session, staff: Staff, staff_id: int) -> StaffUser:
    try:
        return get_staff_in_clinic(session, staff.clinic_id, staff_id)
    except NotFound:
        raise _not_found() from None


def get_endpoint_for(session: Session, staff: Staff, endpoint_id: int) -> WebhookEndpoint:
    try:
        return get_endpoint(session, staff.clinic_id, endpoint_id)
    except NotFound:
        raise _not_found() from None
