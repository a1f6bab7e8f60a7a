"""Reassessment outcomes: a patient's 0-10 pain scores, each linked to the prompt it answers.

A prompt is a ``Message`` with ``template == "reassessment"``. It takes answers only
once it was actually sent (sent, delivered, or handed over with no answer back) and only
for ``ENGAGE_REASSESSMENT_ANSWER_DAYS`` (default 14) after that. Every answer is kept
as its own ``Outcome`` row with its own time, so a later answer never re-dates an
earlier one; the prompt's outcome is its latest answer (someone who clicked 8 for 3
corrects it by answering again). The same score as the latest answer adds nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.config import get_settings
from engage.errors import InvalidInput, NotFound
from engage.records.audit import AuditAction, audit
from engage.records.models import Channel, Measure, Message, MessageStatus, Outcome, Patient
from engage.records.outgoing_webhooks import EventType, emit

REASSESSMENT_TEMPLATE = "reassessment"
#: An SMS reply counts as an answer to a prompt sent at most this long ago.
SMS_ANSWER_WINDOW = timedelta(days=7)
_ANSWERABLE = (MessageStatus.SENT, MessageStatus.DELIVERED)
#: A prompt in one of these statuses reached (or may have reached) the patient, so its links may be answered.
_SENT = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNKNOWN)


class PromptClosed(InvalidInput):
    """The prompt was never sent, or its answer window has passed; nothing was recorded."""


HIGH_SCORE = 8
MUCH_WORSE = 3


def is_high_score(score: int, previous: int | None) -> bool:
    """8 or more, or at least 3 points worse than the patient's previous score: the practitioner should know."""
    return score >= HIGH_SCORE or (previous is not None and score - previous >= MUCH_WORSE)


def previous_score(session: Session, patient_id: int, *, before_prompt: int | None = None) -> int | None:
    """The patient's latest recorded score, not counting the answer to ``before_prompt`` (being replaced)."""
    query = select(Outcome.score).where(Outcome.patient_id == patient_id, Outcome.measure == Measure.NPRS)
    if before_prompt is not None:
        query = query.where((Outcome.prompt_message_id != before_prompt) | Outcome.prompt_message_id.is_(None))
    return session.scalar(query.order_by(Outcome.recorded_at.desc(), Outcome.id.desc()).limit(1))


def answer_from_page(session: Session, prompt: Message, score: int) -> tuple[Outcome, bool]:
    """Record a score confirmed on the ``/r`` page; returns the outcome and whether it is high.

    A high score is flagged for the practitioner (an audit event they see). Raises like :func:`record_outcome`.
    """
    previous = previous_score(session, prompt.patient_id, before_prompt=prompt.id)
    source = "email" if prompt.channel is Channel.EMAIL else "web"
    outcome = record_outcome(session, prompt, score, source=source)
    high = is_high_score(score, previous)
    if high:
        audit(
            session,
            clinic_id=prompt.patient.clinic_id,
            actor="patient:web",
            action=AuditAction.OUTCOME_FLAGGED_FOR_PRACTITIONER,
            subject_type="patient",
            subject_id=prompt.patient_id,
            outcome_id=outcome.id,
            score=score,
        )
    return outcome, high


def is_prompt(message: Message) -> bool:
    """True when ``message`` is a reassessment prompt."""
    return message.template == REASSESSMENT_TEMPLATE


def answer_window() -> timedelta:
    """How long after sending a prompt takes answers (``ENGAGE_REASSESSMENT_ANSWER_DAYS``)."""
    return timedelta(days=get_settings().reassessment_answer_days)


def _sent_at(prompt: Message) -> datetime | None:
    if prompt.status not in _SENT:
        return None
    return prompt.sent_at or prompt.handed_at or prompt.due_at


def is_open(prompt: Message, now: datetime | None = None) -> bool:
    """True when ``prompt`` was sent and its answer window has not passed.

    A sent time ahead of ``now`` is a clock disagreement (the worker that sent it runs ahead of
    the web server answering), not a prompt from the future: its status says it went out, and a
    patient answering it proves so. Such a prompt is open, so an answer is never lost to the clocks.
    """
    sent = _sent_at(prompt)
    return sent is not None and (now or utcnow()) <= sent + answer_window()


def open_sms_prompt(
    session: Session, patient_id: int, window: timedelta = SMS_ANSWER_WINDOW, *, now: datetime | None = None
) -> Message | None:
    """The prompt an SMS score from this patient answers, or None.

    That is the patient's latest SMS reassessment prompt that went out (sent or
    delivered) within ``window``, if it has no answer yet. An older unanswered prompt
    does not collect late replies: a newer prompt superseded it, and a number sent
    after the newest was answered is a message for staff, not a guess. The prompt returned
    is open by :func:`is_open` at ``now`` (default: the clock), so :func:`record_outcome`
    at the same ``now`` accepts an answer to it.
    """
    now = now or utcnow()
    sent = func.coalesce(Message.sent_at, Message.due_at)
    latest = session.scalars(
        select(Message)
        .where(
            Message.patient_id == patient_id,
            Message.channel == Channel.SMS,
            Message.template == REASSESSMENT_TEMPLATE,
            Message.status.in_(_ANSWERABLE),
            sent >= now - min(window, answer_window()),
        )
        .order_by(sent.desc(), Message.id.desc())
        .limit(1)
    ).first()
    if latest is None or not is_open(latest, now):
        return None
    answered = session.scalar(select(Outcome.id).where(Outcome.prompt_message_id == latest.id).limit(1))
    return None if answered is not None else latest


def latest_answer(session: Session, prompt_id: int) -> Outcome | None:
    """The prompt's outcome: its latest answer, or None."""
    return session.scalars(
        select(Outcome)
        .where(Outcome.prompt_message_id == prompt_id)
        .order_by(Outcome.recorded_at.desc(), Outcome.id.desc())
        .limit(1)
    ).first()


def record_outcome(
    session: Session,
    prompt: Message,
    score: int,
    *,
    source: str,
    inbound_message_id: int | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Store ``score`` as a new answer to ``prompt`` at ``now`` (default: the clock); returns the prompt's outcome.

    Answering with the latest answer's score again stores nothing and returns that answer.
    Raises ``InvalidInput`` for a score outside 0-10 or a message that is not a prompt,
    and :class:`PromptClosed` for a prompt never sent or sent longer ago than the answer window.
    """
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 10:
        raise InvalidInput("a pain score is a whole number from 0 to 10")
    if not is_prompt(prompt):
        raise InvalidInput(f"message {prompt.id} is not a reassessment prompt")
    now = now or utcnow()
    if not is_open(prompt, now):
        raise PromptClosed(
            f"message {prompt.id} takes no answers: it was not sent, or was sent more than "
            f"{get_settings().reassessment_answer_days} days ago"
        )
    latest = latest_answer(session, prompt.id)
    if latest is not None and latest.score == score:
        return latest
    outcome = Outcome(
        patient_id=prompt.patient_id,
        prompt_message_id=prompt.id,
        inbound_message_id=inbound_message_id,
        score=score,
        source=source,
        recorded_at=now,
    )
    session.add(outcome)
    session.flush()
    emit(session, EventType.OUTCOME_RECORDED, [outcome.id])
    return outcome


def list_outcomes(session: Session, patient_id: int, measure: Measure | None = None) -> list[Outcome]:
    """The patient's outcomes, oldest first: each prompt's latest answer (and any answer without a prompt);
    ``measure``: only those of one measure.

    Raises ``NotFound`` for an unknown patient.
    """
    if session.get(Patient, patient_id) is None:
        raise NotFound(f"no patient with id {patient_id}")
    query = select(Outcome).where(Outcome.patient_id == patient_id)
    if measure is not None:
        query = query.where(Outcome.measure == measure)
    answers = session.scalars(query.order_by(Outcome.recorded_at, Outcome.id)).all()
    latest: dict[object, Outcome] = {}
    for answer in answers:  # oldest first, so the last one seen for a prompt is its latest
        latest[answer.prompt_message_id if answer.prompt_message_id is not None else ("own", answer.id)] = answer
    return sorted(latest.values(), key=lambda o: (o.recorded_at, o.id))


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    """The JSON shape of one outcome (``recorded_at`` ISO 8601 UTC)."""
    return {
        "score": outcome.score,
        "recorded_at": outcome.recorded_at.isoformat(),
        "source": outcome.source,
        "prompt_message_id": outcome.prompt_message_id,
        "measure": outcome.measure.value,
        "item": outcome.item,
    }


def record_staff_outcome(session: Session, patient_id: int, score: int | str, *, actor: str) -> Outcome:
    """A pain score a practitioner took at a visit (answering no prompt). Raises ``InvalidInput`` for one outside
    0-10; audited."""
    try:
        value = int(str(score).strip())
    except ValueError:
        raise InvalidInput("a pain score is a whole number from 0 to 10") from None
    if not 0 <= value <= 10:
        raise InvalidInput("a pain score is a whole number from 0 to 10")
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"no patient with id {patient_id}")
    outcome = Outcome(patient_id=patient.id, score=value, source="staff", recorded_at=utcnow())
    session.add(outcome)
    session.flush()
    emit(session, EventType.OUTCOME_RECORDED, [outcome.id])
    audit(
        session,
        clinic_id=patient.clinic_id,
        actor=actor,
        action=AuditAction.OUTCOME_RECORD,
        subject_type="patient",
        subject_id=patient.id,
        outcome_id=outcome.id,
    )
    return outcome
