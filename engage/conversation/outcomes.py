"""Reassessment outcomes: a patient's 0-10 pain score, linked to the prompt it answers.

A prompt is a ``Message`` with ``template == "reassessment"``; it gets at most one
``Outcome`` (unique ``prompt_message_id``). Answering the same prompt again updates
that outcome: the latest answer is the patient's (someone who clicked 8 for 3 in an
email corrects it by clicking again); the same answer twice changes nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engage.clock import utcnow
from engage.errors import InvalidInput, NotFound
from engage.records.models import Channel, Message, MessageStatus, Outcome, Patient

REASSESSMENT_TEMPLATE = "reassessment"
#: An SMS reply counts as an answer to a prompt sent at most this long ago.
SMS_ANSWER_WINDOW = timedelta(days=7)
_ANSWERABLE = (MessageStatus.SENT, MessageStatus.DELIVERED)


def is_prompt(message: Message) -> bool:
    """True when ``message`` is a reassessment prompt."""
    return message.template == REASSESSMENT_TEMPLATE


def open_sms_prompt(session: Session, patient_id: int, window: timedelta = SMS_ANSWER_WINDOW) -> Message | None:
    """The prompt an SMS score from this patient answers, or None.

    That is the patient's latest SMS reassessment prompt that went out (sent or
    delivered) within ``window``, if it has no answer yet. An older unanswered prompt
    does not collect late replies: a newer prompt superseded it, and a number sent
    after the newest was answered is a message for staff, not a guess.
    """
    sent = func.coalesce(Message.sent_at, Message.due_at)
    latest = session.scalars(
        select(Message)
        .where(
            Message.patient_id == patient_id,
            Message.channel == Channel.SMS,
            Message.template == REASSESSMENT_TEMPLATE,
            Message.status.in_(_ANSWERABLE),
            sent >= utcnow() - window,
        )
        .order_by(sent.desc(), Message.id.desc())
        .limit(1)
    ).first()
    if latest is None:
        return None
    answered = session.scalar(select(Outcome.id).where(Outcome.prompt_message_id == latest.id))
    return None if answered is not None else latest


def record_outcome(
    session: Session, prompt: Message, score: int, *, source: str, inbound_message_id: int | None = None,
) -> Outcome:
    """Store ``score`` as the answer to ``prompt`` (insert, or update the earlier answer). Returns the outcome.

    Raises ``InvalidInput`` for a score outside 0-10 or a message that is not a prompt.
    """
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 10:
        raise InvalidInput("a pain score is a whole number from 0 to 10")
    if not is_prompt(prompt):
        raise InvalidInput(f"message {prompt.id} is not a reassessment prompt")
    outcome = session.scalar(select(Outcome).where(Outcome.prompt_message_id == prompt.id))
    if outcome is None:
        outcome = Outcome(
            patient_id=prompt.patient_id, prompt_message_id=prompt.id, inbound_message_id=inbound_message_id,
            score=score, source=source, recorded_at=utcnow(),
        )
        session.add(outcome)
    elif outcome.score != score:
        outcome.score = score
        outcome.source = source
        outcome.inbound_message_id = inbound_message_id
        outcome.recorded_at = utcnow()
    session.flush()
    return outcome


def list_outcomes(session: Session, patient_id: int) -> list[Outcome]:
    """The patient's outcomes, oldest first. Raises ``NotFound`` for an unknown patient."""
    if session.get(Patient, patient_id) is None:
        raise NotFound(f"no patient with id {patient_id}")
    return list(
        session.scalars(
            select(Outcome).where(Outcome.patient_id == patient_id).order_by(Outcome.recorded_at, Outcome.id)
        )
    )


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    """The JSON shape of one outcome (``recorded_at`` ISO 8601 UTC)."""
    return {
        "score": outcome.score,
        "recorded_at": outcome.recorded_at.isoformat(),
        "source": outcome.source,
        "prompt_message_id": outcome.prompt_message_id,
    }
