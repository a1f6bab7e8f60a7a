"""Send one claimed message, at most once: the worker's half of dispatch.

:func:`send_one` takes a row ``queued -> sending`` (zero rows changed: someone else
has it), waits for a slot in the provider's rate limit, re-checks and renders the
row (:mod:`engage.delivery.send_checks`), commits ``handed_at`` and calls the
provider, then writes the answer (:mod:`engage.delivery.outbox_rows`). A transient
failure puts the row back to ``scheduled`` with ``next_attempt_at`` (exponential
backoff, full jitter); Celery's countdown is never the schedule. A failure after
which the provider may have the message (:data:`AMBIGUOUS_CODES`) makes it ``unknown``.

Logs carry message ids, statuses and error codes only: never names, numbers,
addresses or bodies.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engage import clock, metrics
from engage.config import get_settings
from engage.content.condition_words import CONDITION_WORD_RULE
from engage.content.rendering import TemplateError
from engage.conversation.consent import record_consent
from engage.db import session_scope
from engage.delivery import spool
from engage.delivery.claim import UNKNOWN_REASON
from engage.delivery.outbox_rows import (
    finish,
    hand_over,
    postpone,
    record_accepted,
    release,
    take,
    write_with_retries,
)
from engage.delivery.providers import email_provider, email_provider_name, sms_provider, sms_provider_name
from engage.delivery.providers.base import (
    Accepted,
    ConfigurationError,
    EmailProvider,
    OutgoingSms,
    ProviderError,
    SmsProvider,
)
from engage.delivery.providers.twilio_codes import INVALID_NUMBER as TWILIO_INVALID_NUMBER
from engage.delivery.providers.twilio_codes import NOT_MOBILE as TWILIO_NOT_MOBILE
from engage.delivery.providers.twilio_codes import UNSUBSCRIBED as TWILIO_UNSUBSCRIBED
from engage.delivery.ratelimit import LimiterUnavailable, RateLimited, acquire, acquire_many, get_limiter
from engage.delivery.send_checks import (
    Decision,
    Loaded,
    Ready,
    content_problem,
    load_for_sending,
    render,
    send_time_check,
)
from engage.records.models import Channel, ConsentState, Message, MessageStatus, Patient
from engage.records.outgoing_webhooks import EventType, emit

log = logging.getLogger(__name__)

#: Local providers (files, stdout) have no vendor limit to respect.
UNLIMITED_PROVIDERS = frozenset({"outbox", "console"})
#: Longer than this in the rate limiter's queue and the message goes back on the schedule instead.
MAX_RATE_WAIT_SECONDS = 10.0
#: Transient errors after which the vendor may nevertheless have accepted the message (the request
#: reached it, the answer did not reach us). Retrying could text the patient twice, so the row waits in
#: ``unknown`` for the status callback (or a person), exactly like a worker that died mid-call.
AMBIGUOUS_CODES = frozenset({"read_timeout", "connection_lost", "sdk"})
PUT_BACK_REASON = "database unavailable before the provider call; put back for the next tick"


class Outcome(enum.StrEnum):
    """What :func:`send_one` did with a message."""

    SENT = "sent"  # the provider accepted it
    SKIPPED = "skipped"  # not sendable now (consent, contact details, too late): status skipped
    CANCELLED = "cancelled"  # no longer wanted (appointment cancelled, unenrolled): status cancelled
    FAILED = "failed"  # permanent error, forbidden content or out of attempts: status failed
    RETRY = "retry"  # transient error: back to scheduled, due again after ``delay``
    DEFERRED = "deferred"  # quiet hours, a moved appointment, not due yet: back to scheduled, due after ``delay``
    UNKNOWN = "unknown"  # the provider may have it (its answer was lost): status unknown, never resent blindly
    NOT_MINE = "not_mine"  # the row was not ``queued`` (another worker has it, or it was cancelled) or was taken back


@dataclass(frozen=True)
class SendResult:
    message_id: int
    outcome: Outcome
    reason: str | None = None
    delay: float | None = None  # seconds until the row is due again (RETRY, DEFERRED)
    provider_message_id: str | None = None


def send_one(message_id: int, channel: Channel | None = None) -> SendResult:
    """Send one claimed (``queued``) message, at most once; see the module docstring.

    ``channel``: the message's, when the caller knows it (a batch of one channel);
    otherwise it is read first. Two commits for a message that goes: the take
    (``queued -> sending``, checks, render, ``handed_at``) and the provider's answer.

    Returns a :class:`SendResult`. Raises ``ConfigurationError`` with the row
    left or put back ``queued`` (engage is set up wrongly: stop loudly, lose
    nothing). Any other unexpected error before the provider call puts the row
    back on the schedule (one attempt used; if even that write fails, the row
    stays in ``sending`` without ``handed_at`` and the reaper requeues it) and
    is re-raised; one during or after the call leaves the row in ``sending``
    for the reaper, which flags it ``unknown``. The database failing (down, refusing
    connections, pool exhausted) before the hand-over is no error: the row is still
    ``queued`` and goes back for the next tick (``DEFERRED``, :func:`engage.delivery.spool.retake_later`).
    After the provider accepted, a result the database cannot take is held in Redis until it can.
    """
    try:
        return _send_one(message_id, channel)
    except _BeforeHandOver as stop:
        return _put_back(message_id, stop.error)


class _BeforeHandOver(Exception):
    """The database failed while the row was still ``queued`` (wraps the error)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(type(error).__name__)
        self.error = error


@contextlib.contextmanager
def _before_hand_over() -> Iterator[None]:
    try:
        yield
    except spool.DATABASE_DOWN as exc:
        raise _BeforeHandOver(exc) from exc


def _put_back(message_id: int, exc: Exception) -> SendResult:
    """The database failed before the hand-over: nothing reached the provider and the row is still ``queued``
    (its transaction rolled back), so the next tick re-enqueues it rather than the reaper minutes later."""
    kept = spool.retake_later([message_id])
    log.error(
        "message %d: database unavailable before the provider call (%s); put back for %s",
        message_id,
        type(exc).__name__,
        "the next tick" if kept else "the reaper (Redis refused it too)",
        extra={"message_id": message_id},
    )
    return SendResult(message_id, Outcome.DEFERRED, reason=PUT_BACK_REASON, delay=get_settings().tick_seconds)


def _send_one(message_id: int, channel: Channel | None) -> SendResult:
    now = clock.utcnow()
    if channel is None:
        with _before_hand_over():
            channel = _queued_channel(message_id)
        if channel is None:
            log.info(
                "message %d: not queued (another worker has it, or it was withdrawn)",
                message_id,
                extra={"message_id": message_id},
            )
            return SendResult(message_id, Outcome.NOT_MINE)
    try:
        provider = sms_provider() if channel is Channel.SMS else email_provider()
        # The slot first, the checks after: a STOP, a cancellation or a move that arrives while this worker
        # waits for its turn (up to MAX_RATE_WAIT_SECONDS) is seen. Only a commit and the HTTP call remain
        # between the checks and the provider.
        _wait_for_slot(channel, provider.name)
    except ConfigurationError:
        log.error("message %d: configuration error; left queued", message_id, extra={"message_id": message_id})
        raise
    except (RateLimited, LimiterUnavailable) as exc:
        wait = exc.wait if isinstance(exc, RateLimited) else get_settings().retry_base_seconds
        with _before_hand_over():
            return _postpone(message_id, now, timedelta(seconds=wait), f"rate limit ({type(exc).__name__})")
    now = clock.utcnow()
    with _before_hand_over():  # one transaction: a database error rolls the take back, the row stays queued
        prepared = _take_and_prepare(message_id, now)
    if isinstance(prepared, SendResult):
        return prepared
    ready, attempt = prepared

    accepted = _call_provider(provider, ready, message_id, now, attempt)
    if isinstance(accepted, SendResult):
        return accepted
    _store_accepted(message_id, provider.name, accepted, ready.segments)
    log.info(
        "message %d sent via %s as %s",
        message_id,
        provider.name,
        accepted.provider_message_id,
        extra={"message_id": message_id},
    )
    return SendResult(message_id, Outcome.SENT, provider_message_id=accepted.provider_message_id)


def _call_provider(
    provider: SmsProvider | EmailProvider, ready: Ready, message_id: int, now: datetime, attempt: int
) -> Accepted | SendResult:
    """The provider call for a handed-over row: what it accepted, or the refusal written (:func:`_provider_failed`).

    A ConfigurationError puts the row back to ``queued`` and is raised; any other unexpected error leaves
    the row in ``sending`` for the reaper and is raised.
    """
    answer = _provider_answer(provider, ready, message_id, now, attempt)
    if isinstance(answer, ProviderError):
        return _refused(answer, ready, now, attempt)
    return answer


def _refused(exc: ProviderError, ready: Ready, now: datetime, attempt: int) -> SendResult:
    """Write a provider's refusal of a handed-over row (:func:`_provider_failed`)."""
    message_id = ready.payload.message_id
    return _provider_failed(message_id, exc, now, attempt=attempt, channel=ready.channel, patient_id=ready.patient_id)


def _provider_answer(
    provider: SmsProvider | EmailProvider, ready: Ready, message_id: int, now: datetime, attempt: int
) -> Accepted | ProviderError:
    """The provider call alone: what it accepted, or its refusal (counted, not yet written). Raises as
    :func:`_call_provider` does; no database work unless a ConfigurationError puts the row back."""
    try:
        with metrics.provider_call(provider.name, ready.channel.value):
            if isinstance(ready.payload, OutgoingSms):
                return provider.send_sms(ready.payload)  # type: ignore[union-attr]
            return provider.send_email(ready.payload)  # type: ignore[union-attr]
    except ProviderError as exc:
        metrics.record_provider_error(provider.name, exc.code or exc.status)
        return exc
    except ConfigurationError:
        release(message_id, now, attempt=attempt)
        log.error(
            "message %d: configuration error from provider %s; put back to queued",
            message_id,
            provider.name,
            extra={"message_id": message_id},
        )
        raise
    except Exception as exc:
        # Only the type: an arbitrary exception's text may quote what it was given.
        log.error(
            "message %d: provider %s raised %s; left in sending for the reaper",
            message_id,
            provider.name,
            type(exc).__name__,
            extra={"message_id": message_id},
        )
        raise


def _store_accepted(message_id: int, provider: str, accepted: Accepted, segments: int | None) -> None:
    """Write the provider's acceptance; while the database is down, hold it in Redis (see :func:`send_one`)."""

    def store(session: Session) -> None:
        record_accepted(
            session,
            message_id,
            clock.utcnow(),
            provider=provider,
            provider_message_id=accepted.provider_message_id,
            segments=segments,
            emit_sent=True,
        )

    try:
        write_with_retries(store)
    except spool.DATABASE_DOWN as exc:
        # The message is out: keep its result until the database is back rather than let the reaper
        # flag it ``unknown`` (the status callback would be the only other way back).
        try:
            spool.hold_result(
                message_id,
                clock.utcnow(),
                provider=provider,
                provider_message_id=accepted.provider_message_id,
                segments=segments,
            )
        except spool.SpoolUnavailable:
            log.error(
                "message %d: accepted by %s as %s but the result could not be stored (%s) nor held; the "
                "status callback or the reaper resolves it",
                message_id,
                provider,
                accepted.provider_message_id,
                type(exc).__name__,
                extra={"message_id": message_id},
            )
            raise exc from None


def _queued_channel(message_id: int) -> Channel | None:
    with session_scope() as session:
        channel = session.scalar(
            select(Message.channel).where(Message.id == message_id, Message.status == MessageStatus.QUEUED)
        )
    return Channel(channel) if channel is not None else None


def _take_and_prepare(message_id: int, now: datetime) -> tuple[Ready, int] | SendResult:
    """One transaction: take the row (``queued -> sending``), re-check and render it, then set ``handed_at``.

    Returns what to send and the attempt number, or the result when it must not go (written in the same
    transaction). An unexpected error in the checks rolls the transaction back; the row is then taken
    again (so the failed attempt counts, and a message that always fails cannot loop), committed as
    ``sending`` without ``handed_at``, written as a retry by :func:`_retry_or_fail_after_error`, and the
    error re-raised. No savepoint on the way that goes: two round trips a message saved.
    """
    error: Exception | None = None
    with session_scope() as session:
        attempt = take(session, message_id, now)
        if attempt is None:
            log.info(
                "message %d: not queued (another worker has it, or it was withdrawn)",
                message_id,
                extra={"message_id": message_id},
            )
            return SendResult(message_id, Outcome.NOT_MINE)
        try:
            outcome = _check_and_render(session, message_id, now, attempt)
        except spool.DATABASE_DOWN:
            raise
        except Exception as exc:  # noqa: BLE001 - handled below, then re-raised
            error = exc
            session.rollback()
            again = take(session, message_id, now)
            if again is None:  # withdrawn meanwhile: nothing to count
                raise
            attempt = again
        else:
            if isinstance(outcome, SendResult):
                return outcome
            if not hand_over(session, message_id, now, attempt):
                log.info(
                    "message %d: taken back by the reaper before the provider call; not sent",
                    message_id,
                    extra={"message_id": message_id},
                )
                return SendResult(message_id, Outcome.NOT_MINE)
            return outcome, attempt
    _retry_or_fail_after_error(message_id, now, attempt, error)
    raise error


def _check_and_render(session: Session, message_id: int, now: datetime, attempt: int) -> Ready | SendResult:
    """Re-check and render the message; write and return a result when it must not go."""
    return _check_and_render_loaded(session, load_for_sending(session, message_id), now, attempt)


def _check_and_render_loaded(session: Session, loaded: Loaded, now: datetime, attempt: int) -> Ready | SendResult:
    """:func:`_check_and_render` for a row already loaded (alone, or with its batch)."""
    message_id = loaded.message.id
    decision = send_time_check(session, loaded.message, now, consent=loaded.consent)
    if decision is not None:
        return _apply(session, message_id, now, attempt, decision)
    try:
        ready = render(session, loaded.message, first_sms=loaded.first_sms, pain_scores=loaded.pain_scores)
    except TemplateError as exc:
        reason = str(exc)[:500]
        if finish(
            session,
            message_id,
            now,
            attempt=attempt,
            status=MessageStatus.FAILED,
            status_reason=reason,
            last_error=reason,
            error_code="template",
            next_attempt_at=None,
        ):
            emit(session, EventType.MESSAGE_FAILED, [message_id])
        log.warning(
            "message %d failed: template error in %s", message_id, exc.template, extra={"message_id": message_id}
        )
        return SendResult(message_id, Outcome.FAILED, reason=reason)
    problem = content_problem(ready)
    if problem is not None:
        if finish(
            session,
            message_id,
            now,
            attempt=attempt,
            status=MessageStatus.FAILED,
            status_reason=problem[:500],
            last_error=problem[:500],
            error_code="content",
            next_attempt_at=None,
        ):
            emit(session, EventType.MESSAGE_FAILED, [message_id])
        log.warning(
            "message %d failed: content rule %s", message_id, CONDITION_WORD_RULE, extra={"message_id": message_id}
        )
        return SendResult(message_id, Outcome.FAILED, reason=problem)
    return ready


def _apply(session: Session, message_id: int, now: datetime, attempt: int, decision: Decision) -> SendResult:
    """Write a send-time check's verdict; the attempt is not counted (the message was not tried)."""
    if decision.status is MessageStatus.SCHEDULED:
        values: dict[str, Any] = {
            "status": MessageStatus.SCHEDULED,
            "status_reason": decision.reason,
            "attempts": Message.attempts - 1,
            "sending_at": None,
        }
        if decision.due_at is not None:
            values.update(due_at=decision.due_at, next_attempt_at=None)
        if decision.next_attempt_at is not None:
            values["next_attempt_at"] = decision.next_attempt_at
        finish(session, message_id, now, attempt=attempt, **values)
        again = decision.resume_at or max(decision.next_attempt_at or decision.due_at or now, decision.due_at or now)
        log.info("message %d deferred: %s", message_id, decision.reason, extra={"message_id": message_id})
        return SendResult(message_id, Outcome.DEFERRED, reason=decision.reason, delay=(again - now).total_seconds())
    finish(
        session,
        message_id,
        now,
        attempt=attempt,
        status=decision.status,
        status_reason=decision.reason,
        next_attempt_at=None,
        attempts=Message.attempts - 1,
    )
    log.info(
        "message %d %s at send time: %s",
        message_id,
        decision.status.value,
        decision.reason,
        extra={"message_id": message_id},
    )
    outcome = Outcome.CANCELLED if decision.status is MessageStatus.CANCELLED else Outcome.SKIPPED
    return SendResult(message_id, outcome, reason=decision.reason)


def per_tick(channel: Channel) -> int | None:
    """How many of ``channel``'s messages the shared rate limit lets out in one tick (None: not limited).

    The tick claims no more than this, so a send batch waits for its rate-limit slots a moment, not
    seconds, and never holds a worker process that a tick or a webhook delivery needs.
    """
    settings = get_settings()
    name = sms_provider_name(settings) if channel is Channel.SMS else email_provider_name(settings)
    if name in UNLIMITED_PROVIDERS:
        return None
    rate = settings.sms_rate_per_second if channel is Channel.SMS else settings.email_rate_per_second
    return max(1, math.ceil(rate * settings.tick_seconds))


def _wait_for_slot(channel: Channel, provider_name: str) -> None:
    """Take a slot from the provider's shared bucket (files and the console are not rate limited)."""
    if provider_name in UNLIMITED_PROVIDERS:
        return
    settings = get_settings()
    rate = settings.sms_rate_per_second if channel is Channel.SMS else settings.email_rate_per_second
    acquire(get_limiter(settings), f"{channel.value}:{provider_name}", rate, max_wait=MAX_RATE_WAIT_SECONDS)


def _wait_for_slots(channel: Channel, provider_name: str, count: int) -> tuple[int, float]:
    """:func:`_wait_for_slot` for ``count`` messages in one step: ``(how many may go now, seconds until the next
    slot)``; those beyond go back on the schedule. Raises LimiterUnavailable (nothing reserved)."""
    if provider_name in UNLIMITED_PROVIDERS:
        return count, 0.0
    settings = get_settings()
    rate = settings.sms_rate_per_second if channel is Channel.SMS else settings.email_rate_per_second
    return acquire_many(
        get_limiter(settings), f"{channel.value}:{provider_name}", rate, count, max_wait=MAX_RATE_WAIT_SECONDS
    )


def _postpone(message_id: int, now: datetime, wait: timedelta, reason: str) -> SendResult:
    """A ``queued`` row back to ``scheduled`` for ``wait``; no attempt used (engage, not the message, waits)."""
    with session_scope() as session:
        moved = postpone(session, message_id, now, next_attempt_at=now + wait, reason=reason)
    if not moved:
        log.info(
            "message %d: not queued (another worker has it, or it was withdrawn)",
            message_id,
            extra={"message_id": message_id},
        )
        return SendResult(message_id, Outcome.NOT_MINE)
    log.info("message %d deferred: %s", message_id, reason, extra={"message_id": message_id})
    return SendResult(message_id, Outcome.DEFERRED, reason=reason, delay=wait.total_seconds())


def _provider_failed(
    message_id: int,
    exc: ProviderError,
    now: datetime,
    *,
    attempt: int | None = None,
    channel: Channel | None = None,
    patient_id: int | None = None,
) -> SendResult:
    """Write a refused send: permanent (or out of attempts) -> failed with its follow-ups; else retry later.

    A lost answer (:data:`AMBIGUOUS_CODES`) -> ``unknown``: the message may be out.
    """
    settings = get_settings()
    error = str(exc)[:500]
    code = exc.code or (str(exc.status) if exc.status is not None else None)
    results: list[SendResult] = []

    def work(session: Session) -> None:
        results.clear()
        attempts = session.scalar(select(Message.attempts).where(Message.id == message_id)) or 0
        if not exc.permanent and exc.code in AMBIGUOUS_CODES:
            reason = f"{UNKNOWN_REASON} ({exc.code})"
            finish(
                session,
                message_id,
                now,
                attempt=attempt,
                status=MessageStatus.UNKNOWN,
                status_reason=reason,
                last_error=error,
                error_code=code,
                next_attempt_at=None,
            )
            results.append(SendResult(message_id, Outcome.UNKNOWN, reason=reason))
            return
        if exc.permanent or attempts >= settings.max_attempts:
            reason = exc.message if exc.permanent else f"gave up after {attempts} attempts: {exc.message}"
            if finish(
                session,
                message_id,
                now,
                attempt=attempt,
                status=MessageStatus.FAILED,
                status_reason=reason[:500],
                last_error=error,
                error_code=code,
                next_attempt_at=None,
            ):
                emit(session, EventType.MESSAGE_FAILED, [message_id])
            if exc.permanent and channel is Channel.SMS and patient_id is not None:
                _sms_follow_up(session, patient_id, exc.code)
            results.append(SendResult(message_id, Outcome.FAILED, reason=reason))
            return
        delay = backoff_seconds(attempts, exc.retry_after)
        # Nothing went out (a transient error is one the vendor certainly refused): the next try starts afresh.
        finish(
            session,
            message_id,
            now,
            attempt=attempt,
            status=MessageStatus.SCHEDULED,
            status_reason=None,
            next_attempt_at=now + timedelta(seconds=delay),
            last_error=error,
            error_code=code,
            sending_at=None,
            handed_at=None,
        )
        results.append(SendResult(message_id, Outcome.RETRY, reason=exc.message, delay=delay))

    write_with_retries(work)
    result = results[0]
    log.warning(
        "message %d: %s error from %s (code %s): %s",
        message_id,
        "permanent" if exc.permanent else "transient",
        exc.provider,
        code,
        result.outcome.value,
        extra={"message_id": message_id},
    )
    return result


def _sms_follow_up(session: Session, patient_id: int, code: str | None) -> None:
    """Twilio told us something about the patient's number: remember it so we stop trying."""
    if code == TWILIO_UNSUBSCRIBED:
        record_consent(session, patient_id, Channel.SMS, ConsentState.OPTED_OUT, source="twilio_21610")
    elif code in (TWILIO_INVALID_NUMBER, TWILIO_NOT_MOBILE):
        session.execute(update(Patient).where(Patient.id == patient_id).values(phone_invalid=True))


def _retry_or_fail_after_error(message_id: int, now: datetime, attempt: int, exc: Exception) -> None:
    """An unexpected error before the provider call: nothing went out, so schedule a retry (or give up).

    If that write fails too (the database is gone), the row stays in
    ``sending`` without ``handed_at``; :func:`reap_stale` requeues it later. The
    caller re-raises ``exc`` either way.
    """
    log.error(
        "message %d: %s before the provider call; rescheduling",
        message_id,
        type(exc).__name__,
        extra={"message_id": message_id},
    )
    error = f"internal error before sending ({type(exc).__name__})"
    internal = ProviderError(error, provider="engage", code="internal", message_id=message_id)
    try:
        _provider_failed(message_id, internal, now, attempt=attempt)
    except Exception as failure:  # the original error is the one to raise; this one is logged, not lost
        log.error(
            "message %d: could not reschedule it either (%s); it stays in sending, never handed to the "
            "provider, until the reaper requeues it",
            message_id,
            type(failure).__name__,
            extra={"message_id": message_id},
        )


# --- backoff -------------------------------------------------------------------------------------


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """Seconds before the attempt after ``attempt``: full jitter up to ``base * 2**(attempt-1)``, capped.

    ``retry_after`` (the vendor's Retry-After) is a floor. Never less than a second.
    """
    settings = get_settings()
    ceiling = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** max(attempt - 1, 0))
    delay = random.uniform(min(1.0, ceiling), ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
