"""What the demo leaves on the real present, so its Today looks like a real morning.

After the simulated weeks (which end now): the visits that are over are marked attended (one a
no-show), with the pain score the practitioner took at each (falling over the weeks, so the charts
show a course beside the patients' own texted answers); a few patients' texts arrive in the last
hour and wait for a person (one in Spanish, one naming a red-flag symptom, a call-back request, a
confirmation); and one SMS has failed at the carrier and waits to be resolved. Each goes through
the library functions the webhooks and the staff app use, at the time it happens.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engage import clock
from engage.conversation.inbound import InboundSms, receive_sms
from engage.conversation.outcomes import record_staff_outcome
from engage.delivery.status import apply_status
from engage.records.models import (
    Appointment,
    AppointmentStatus,
    Channel,
    Clinic,
    Message,
    MessageStatus,
    Patient,
    TreatmentPlan,
)
from engage.schedule.appointments import set_appointment_status
from engage.schedule.reconcile import reconcile_patient

#: (first name, minutes ago, text): texts that arrived this last hour and want a person.
TEXTS = (
    ("Lucía", 52, "Hola, ¿puedo cambiar mi cita de mañana para más tarde? Gracias"),
    ("Maria", 38, "Since the last session my leg has gone numb and I can't feel my foot properly"),
    ("Priya", 24, "R"),
    ("John", 11, "C"),
    ("Grace", 6, "Is there parking near the clinic?"),
)
NO_SHOW = "Grace"  # her last visit: a no-show
FAILED_FOR = "Tom"  # his latest SMS failed at the carrier


def set_the_morning(session: Session, clinic_id: int, now: datetime) -> dict[str, Any]:
    """Leave the clinic as a real morning finds it (see the module docstring); returns what was done."""
    clinic: Clinic = session.get_one(Clinic, clinic_id)
    patients = list(session.scalars(select(Patient).where(Patient.clinic_id == clinic_id).order_by(Patient.id)))
    by_name = {p.first_name: p for p in reversed(patients)}  # the first patient of a name
    attended = no_show = 0
    taken: Counter[int] = Counter()  # patient id -> scores taken so far
    for appointment in session.scalars(
        select(Appointment)
        .join(TreatmentPlan, TreatmentPlan.id == Appointment.plan_id)
        .where(
            TreatmentPlan.patient_id.in_([p.id for p in patients]),
            Appointment.status == AppointmentStatus.BOOKED,
            Appointment.end_at <= now,
        )
        .order_by(Appointment.start_at)
    ).all():
        name = appointment.plan.patient.first_name
        last_of_grace = name == NO_SHOW and not no_show and appointment.end_at > now - timedelta(days=8)
        status = AppointmentStatus.NO_SHOW if last_of_grace else AppointmentStatus.COMPLETED
        set_appointment_status(session, appointment.id, status, actor="demo")
        if status is AppointmentStatus.COMPLETED:
            patient_id = appointment.plan.patient_id
            with clock.frozen(appointment.end_at):
                record_staff_outcome(session, patient_id, max(1, 8 - taken[patient_id]), actor="demo")
            taken[patient_id] += 1
        no_show += last_of_grace
        attended += not last_of_grace
    texts = 0
    for first_name, minutes_ago, body in TEXTS:
        patient = by_name.get(first_name)
        if patient is None or not patient.phone:
            continue
        with clock.frozen(now - timedelta(minutes=minutes_ago)):
            receive_sms(
                session,
                InboundSms(
                    sid=f"demo-{clinic_id}-{patient.id}-{minutes_ago}",
                    from_phone=patient.phone,
                    to_phone=clinic.sms_from or "",
                    body=body,
                ),
                replan=reconcile_patient,
            )
        texts += 1
    failed = _fail_latest_sms(session, by_name.get(FAILED_FOR))
    return {"visits_attended": attended, "no_shows": no_show, "texts": texts, "failed_messages": failed}


def _fail_latest_sms(session: Session, patient: Patient | None) -> int:
    """The carrier reports the patient's latest sent SMS undeliverable (as its status webhook would)."""
    if patient is None:
        return 0
    message = session.scalars(
        select(Message)
        .where(Message.patient_id == patient.id, Message.channel == Channel.SMS, Message.status == MessageStatus.SENT)
        .order_by(Message.sent_at.desc())
        .limit(1)
    ).first()
    if message is None:
        return 0
    apply_status(
        session,
        message,
        MessageStatus.FAILED,
        provider=message.provider or "outbox",
        event_id=f"demo-failed-{message.id}",
        payload={"demo": True, "ErrorCode": "30006"},
        error_code="30006",
        error="landline or unreachable carrier",
    )
    return 1
