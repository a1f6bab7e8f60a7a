"""Acting on an SMS a patient sent: store it once, do what it asks, and choose the answer.

:func:`receive_sms` is what the Twilio webhook calls (after checking the signature).
The meaning comes from :mod:`engage.conversation.replies` (pure); this module applies it:

- **opt-out** (every patient on that phone, because STOP must always work) and **opt-in**,
  each a consent event with source ``sms_keyword``; a CANCEL/CANCELAR answer also says the
  appointments are not cancelled and how to change one;
- **help**: what the messages are, how often, rates, the clinic's phone, STOP;
- **confirm** (C, YES, SI): the appointment the latest reminder was about (else the next
  booked one) gets ``confirmed_at``; **reschedule** (R): ``callback_requested_at`` and a
  flag for staff;
- **score**: the answer to the open SMS prompt (see ``engage.conversation.outcomes``), or,
  with none open, an unsolicited outcome flagged for staff; a high score (8 or more, or 3 or
  more worse than the last) is flagged for the practitioner and answered with what to do if
  pain gets much worse;
- **ambiguous** numbers while a prompt is open: ask once for one number, then leave it to staff;
- **anything else**: flagged for staff, with at most one automatic answer a day per phone.

When Twilio's Advanced Opt-Out answers its own keywords (``ENGAGE_TWILIO_HANDLES_KEYWORDS``),
we still record the consent but send no answer of our own to those exact keywords, so the
patient does not get two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.config import get_settings
from engage.conversation.consent import record_consent
from engage.conversation.outcomes import (
    PromptClosed,
    is_high_score,
    open_sms_prompt,
    previous_score,
    record_outcome,
)
from engage.conversation.replies import TWILIO_KEYWORDS, Kind, Reply, parse_reply
from engage.conversation.sms_replies import reply_text
from engage.records.audit import AuditAction, audit
from engage.records.models import (
    Appointment,
    AppointmentStatus,
    Channel,
    Clinic,
    ConsentState,
    InboundMessage,
    Message,
    Outcome,
    Patient,
    TreatmentPlan,
)
from engage.records.outgoing_webhooks import EventType, emit

__all__ = ["InboundSms", "Kind", "Sender", "find_sender", "receive_sms"]

#: Free text gets at most one automatic answer per phone in this long.
OTHER_REPLY_EVERY = timedelta(days=1)
_CANCEL_WORDS = frozenset({"CANCEL", "CANCELAR"})


@dataclass(frozen=True)
class InboundSms:
    """One inbound SMS as the provider handed it to us."""

    sid: str | None
    from_phone: str
    to_phone: str
    body: str
    messaging_service_sid: str | None = None


@dataclass(frozen=True)
class Sender:
    """Who an inbound SMS is from: the clinic it was sent to (if known) and the patients on that phone."""

    clinic: Clinic | None
    patients: list[Patient]


def receive_sms(
    session: Session,
    sms: InboundSms,
    *,
    replan: Callable[[Session, int], object],
) -> str | None:
    """Store and act on one inbound SMS; returns our answer's text, or None for no answer.

    A repeated delivery (the same ``sid``) changes nothing and gets no answer. ``replan`` is
    called with each patient whose SMS consent the message changed (STOP or START), inside this
    transaction: pass ``engage.schedule.reconcile.reconcile_patient``, so after START the future SMS
    skipped for the opt-out come back, and after STOP the steps that fall back to email (aftercare,
    pain prompts) are planned by email. It is required, not optional, because re-planning lives a
    layer above this module (imports point down) and a caller that forgot it would silently leave
    the patient's messages planned for a channel they no longer have.
    """
    if sms.sid and session.scalar(select(InboundMessage.id).where(InboundMessage.provider_sid == _storable(sms.sid))):
        return None
    meaning = parse_reply(sms.body)
    sms = InboundSms(
        sid=sms.sid and _storable(sms.sid),
        from_phone=_storable(sms.from_phone),
        to_phone=_storable(sms.to_phone),
        body=sms.body,
        messaging_service_sid=sms.messaging_service_sid and _storable(sms.messaging_service_sid),
    )
    sender = find_sender(session, sms.from_phone, sms.to_phone, sms.messaging_service_sid, meaning.kind)
    single = sender.patients[0] if len(sender.patients) == 1 else None
    clinic = sender.clinic or (sender.patients[0].clinic if sender.patients else None)
    record = InboundMessage(
        provider_sid=sms.sid,
        clinic_id=clinic.id if clinic else None,
        patient_id=single.id if single else None,
        from_phone=_storable(sms.from_phone)[:20],
        to_phone=_storable(sms.to_phone)[:20] or None,
        body=_storable(sms.body),
        kind=meaning.kind.value,
        received_at=utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(record)
    except IntegrityError:
        return None  # the same sid arrived concurrently and the other request stored it
    emit(session, EventType.REPLY_RECEIVED, [record.id])
    turn = _Turn(session, meaning, sender, record, clinic, single)
    key, values = turn.act(replan)
    if key is None:
        return None
    record.auto_reply = key
    if _twilio_answers(sms.body, meaning):
        return None
    locale = single.locale if single else "en"
    return reply_text(
        locale,
        key,
        clinic_name=clinic.name if clinic else None,
        phone=_national(clinic.phone) if clinic and clinic.phone else None,
        **values,
    )


def _storable(text: str) -> str:
    """``text`` without NUL characters, which PostgreSQL cannot store in text (the words are read without them)."""
    return text.replace("\x00", "")


def find_sender(
    session: Session,
    from_phone: str,
    to_phone: str,
    messaging_service_sid: str | None,
    kind: Kind,
) -> Sender:
    """The clinic owning the ``To`` number (or messaging service) and its patients with phone ``from_phone``.

    Clinics without their own sender send from the account's default number, so when no
    clinic claims ``To`` they are the candidates. An opt-out that finds nobody there is
    applied to every patient with that phone: STOP must work even after a clinic changed numbers.
    """
    keys = [k for k in (to_phone, (messaging_service_sid or "").strip()) if k]
    clinics = list(session.scalars(select(Clinic).where(Clinic.sms_from.in_(keys)))) if keys else []
    if not clinics:
        clinics = list(session.scalars(select(Clinic).where(Clinic.sms_from.is_(None))))
    if not from_phone:
        return Sender(clinics[0] if len(clinics) == 1 else None, [])
    query = select(Patient).where(Patient.phone == from_phone).order_by(Patient.id)
    patients = list(session.scalars(query.where(Patient.clinic_id.in_([c.id for c in clinics])))) if clinics else []
    if not patients and kind is Kind.OPT_OUT:
        patients = list(session.scalars(query))
    return Sender(clinics[0] if len(clinics) == 1 else None, patients)


@dataclass
class _Turn:
    """One inbound message being acted on; ``act`` returns the answer's key and values (or None)."""

    session: Session
    meaning: Reply
    sender: Sender
    record: InboundMessage
    clinic: Clinic | None
    patient: Patient | None

    @property
    def now(self) -> datetime:
        """When the reply arrived: one instant for every decision about it."""
        return self.record.received_at

    def act(self, replan: Callable[[Session, int], object]) -> tuple[str | None, dict[str, object]]:
        key, values = self._act(replan)
        if not self.meaning.urgent:
            return key, values
        # A red flag or a score of 8+: staff see it first, and the patient always gets the safety
        # answer, even after the day's one automatic answer (an opt-out keeps its own confirmation).
        self.record.urgent = True
        self.record.flagged = True
        if self.meaning.red_flags:
            self._flag("urgent: " + ", ".join(self.meaning.red_flags) + self._reason_suffix())
        if self.patient is not None:
            self._audit(self.patient.id, AuditAction.REPLY_FLAGGED_URGENT, red_flags=list(self.meaning.red_flags))
        if self.meaning.kind is Kind.OPT_OUT or key == "score_high":
            return key, values
        return "urgent", {}

    def _reason_suffix(self) -> str:
        reason = self.record.flag_reason
        return f"; {reason}" if reason and not reason.startswith("urgent: ") else ""

    def _act(self, replan: Callable[[Session, int], object]) -> tuple[str | None, dict[str, object]]:
        kind = self.meaning.kind
        if kind is Kind.OPT_OUT:
            for patient in self.sender.patients:
                record_consent(
                    self.session, patient.id, Channel.SMS, ConsentState.OPTED_OUT, "sms_keyword", self.meaning.keyword
                )
                self._audit(patient.id, AuditAction.CONSENT_SMS_OPT_OUT)
                replan(self.session, patient.id)  # steps with an email fallback go by email now
            # The same words whether or not we know the number: the answer reveals nothing.
            return ("stop_cancel" if self.meaning.keyword in _CANCEL_WORDS else "stop"), {}
        if kind is Kind.OPT_IN:
            for patient in self.sender.patients:
                record_consent(
                    self.session, patient.id, Channel.SMS, ConsentState.OPTED_IN, "sms_keyword", self.meaning.keyword
                )
                self._audit(patient.id, AuditAction.CONSENT_SMS_OPT_IN)
                replan(self.session, patient.id)  # future SMS skipped for the opt-out come back
            return "start", {}
        if kind is Kind.HELP:
            return "help", {}
        if self.patient is None:
            return self._unmatched()
        if kind in (Kind.CONFIRM, Kind.RESCHEDULE):
            return self._appointment(kind)
        if kind is Kind.SCORE and self.meaning.score is not None:
            return self._score(self.meaning.score)
        if kind is Kind.OTHER and self.meaning.text_score is not None:
            # "9/10 worse after yesterday": the score is kept (the answer to the open prompt, else
            # unsolicited), and the words around it are for a person.
            key, values = self._score(self.meaning.text_score)
            self._flag("; ".join(r for r in (self.record.flag_reason, "score written in a message") if r))
            return key, values
        if kind is Kind.AMBIGUOUS:
            prompt = open_sms_prompt(self.session, self.patient.id, now=self.now)
            if prompt is not None:
                if not self._asked_since(prompt):
                    return "ask_again", {}
                self._flag("still no single score after asking again")
                return None, {}
        return self._other("message for staff")

    def _unmatched(self) -> tuple[str | None, dict[str, object]]:
        count = len(self.sender.patients)
        if count > 1:
            self._flag(f"phone shared by {count} patients: {self.meaning.kind.value} not matched to a patient")
            return None, {}
        return self._other("message for staff; sender not recognised")

    def _appointment(self, kind: Kind) -> tuple[str | None, dict[str, object]]:
        assert self.patient is not None
        appointment = upcoming_appointment(self.session, self.patient.id, self.now)
        if appointment is None:
            self._flag(f"{kind.value} with no upcoming appointment")
            return "no_appointment", {}
        now = self.now
        self.record.appointment_id = appointment.id
        if kind is Kind.CONFIRM:
            if appointment.confirmed_at is None:
                appointment.confirmed_at = now
            self._audit(self.patient.id, AuditAction.APPOINTMENT_CONFIRMED_BY_PATIENT, appointment_id=appointment.id)
            return "confirm", {}
        appointment.callback_requested_at = now
        self._flag(f"call back to rebook appointment {appointment.id}")
        self._audit(self.patient.id, AuditAction.APPOINTMENT_CALLBACK_REQUESTED, appointment_id=appointment.id)
        return "reschedule", {}

    def _score(self, score: int) -> tuple[str | None, dict[str, object]]:
        assert self.patient is not None
        previous = previous_score(self.session, self.patient.id)
        prompt = open_sms_prompt(self.session, self.patient.id, now=self.now)
        reasons = []
        if prompt is not None:
            try:
                record_outcome(
                    self.session, prompt, score, source="sms", inbound_message_id=self.record.id, now=self.now
                )
            except PromptClosed:  # closed between the look-up and now: kept as unsolicited, never lost
                prompt = None
        if prompt is None:
            # Kept, and shown to staff: a number sent on the patient's own initiative still says something.
            unsolicited = Outcome(
                patient_id=self.patient.id,
                prompt_message_id=None,
                inbound_message_id=self.record.id,
                score=score,
                source="sms_unsolicited",
                recorded_at=self.now,
            )
            self.session.add(unsolicited)
            self.session.flush()
            emit(self.session, EventType.OUTCOME_RECORDED, [unsolicited.id])
            reasons.append("score with no open reassessment prompt")
        high = is_high_score(score, previous)
        if high:
            reasons.insert(
                0, f"for the practitioner: pain {score}/10" + (f" (was {previous})" if previous is not None else "")
            )
            self._audit(self.patient.id, AuditAction.OUTCOME_FLAGGED_FOR_PRACTITIONER)
        if reasons:
            self._flag("; ".join(reasons))
        return ("score_high" if high else "score"), {"score": score}

    def _asked_since(self, prompt: Message) -> bool:
        since = prompt.sent_at or prompt.due_at
        asked = self.session.scalar(
            select(func.count())
            .select_from(InboundMessage)
            .where(
                InboundMessage.patient_id == self.record.patient_id,
                InboundMessage.auto_reply == "ask_again",
                InboundMessage.received_at >= since,
                InboundMessage.id != self.record.id,
            )
        )
        return bool(asked)

    def _other(self, reason: str) -> tuple[str | None, dict[str, object]]:
        self._flag(reason)
        answered = self.session.scalar(
            select(func.count())
            .select_from(InboundMessage)
            .where(
                InboundMessage.from_phone == self.record.from_phone,
                InboundMessage.auto_reply == "other",
                InboundMessage.received_at >= self.now - OTHER_REPLY_EVERY,
                InboundMessage.id != self.record.id,
            )
        )
        return ("other", {}) if not answered else (None, {})

    def _flag(self, reason: str) -> None:
        self.record.flagged = True
        self.record.flag_reason = reason[:200]

    def _audit(self, patient_id: int, action: AuditAction, **detail: object) -> None:
        audit(
            self.session,
            clinic_id=self.clinic.id if self.clinic else None,
            actor="webhook:twilio",
            action=action,
            subject_type="patient",
            subject_id=patient_id,
            inbound_message_id=self.record.id,
            **detail,
        )


def upcoming_appointment(session: Session, patient_id: int, now: datetime | None = None) -> Appointment | None:
    """The booked visit a confirmation or call-back request is about: the patient's next one after ``now``.

    Always the next one, never a later one, even when the latest text was about a later visit
    (a booking confirmation for a visit added weeks ahead): "yes" to a reminder means the visit
    coming up, and confirming a later one would leave the next one unconfirmed without a word.
    """
    return session.scalars(
        select(Appointment)
        .join(TreatmentPlan)
        .where(
            TreatmentPlan.patient_id == patient_id,
            Appointment.status == AppointmentStatus.BOOKED,
            Appointment.start_at > (now or utcnow()),
        )
        .order_by(Appointment.start_at, Appointment.id)
        .limit(1)
    ).first()


def _twilio_answers(body: str, meaning: Reply) -> bool:
    """True when Twilio's Advanced Opt-Out has already answered this exact keyword (and the setting says it is on)."""
    if meaning.kind not in (Kind.OPT_OUT, Kind.OPT_IN, Kind.HELP):
        return False
    return get_settings().twilio_handles_keywords and body.strip().upper() in TWILIO_KEYWORDS


def _national(phone: str) -> str:
    """``+14155550100`` as people dial it from the same country: ``(415) 555-0100``."""
    try:
        number = phonenumbers.parse(phone)
    except phonenumbers.NumberParseException:
        return phone
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
