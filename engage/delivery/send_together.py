"""Send a batch of claimed messages of one channel with the database work done once per batch, not per message.

:func:`engage.delivery.send.send_one` costs a message four transactions' worth of
round trips (take, load, hand-over, result). :func:`send_together` does the same
steps for many rows at a time: the rate-limit slots first, reserved in one step (a STOP
that arrives while waiting for them is still seen), then one transaction takes every row ``queued -> sending`` (one
conditional ``UPDATE … RETURNING``), loads them (one SELECT), re-checks and renders
each exactly as ``send_one`` does, writes the verdicts of those that must not go and
sets ``handed_at`` on the others (one UPDATE); the provider calls overlap on the
process's send threads; the acceptances are written in one transaction (an
executemany and one INSERT of the ``message.sent`` events).

The rules per row are unchanged: every row is taken by a compare-and-set and only
its holder sends it, ``handed_at`` is committed before the provider call, the call
carries our id, a refusal is written per row (:func:`engage.delivery.send._provider_failed`, by the thread
that collects the batch's answers: the threads making the calls never hold a database connection),
and results the database cannot take while it is down are held in Redis. A
database failure before the hand-over rolls the take back: those rows, and the batch's
rows not yet taken, are still ``queued`` and go back for the next tick. An unexpected
error while checking or rendering one row rolls its chunk back too, and the chunk is
then sent one message at a time by ``send_one``, which writes that row's error as before.

A batch is prepared in chunks of :data:`PREPARE_CHUNK` rows, each in its own
transaction, so the first chunk's calls are in flight while the next is checked and
rendered (at 200 ms a provider answer, the CPU work then hides behind the wait).

Logs carry message ids, counts and error types only.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from datetime import datetime, timedelta

from engage import clock
from engage.config import get_settings
from engage.db import session_scope
from engage.delivery import send, spool
from engage.delivery.outbox_rows import AcceptedRow, hand_over_many, record_accepted_many, take_many
from engage.delivery.providers import email_provider, sms_provider
from engage.delivery.providers.base import Accepted, ConfigurationError, EmailProvider, ProviderError, SmsProvider
from engage.delivery.ratelimit import LimiterUnavailable
from engage.delivery.send import Outcome, SendResult
from engage.delivery.send_checks import Ready, load_many_for_sending
from engage.records.models import Channel

log = logging.getLogger(__name__)

#: Rows taken, checked and handed over in one transaction; a batch's later chunks are prepared while the
#: provider calls of its earlier ones are in flight.
PREPARE_CHUNK = 16
#: What became of each id: its result, or the exception its send raised (already logged).
Results = dict[int, SendResult | Exception]


@dataclass(frozen=True)
class _Call:
    """A handed-over row's provider call in flight."""

    ready: Ready
    attempt: int
    now: datetime
    future: Future[Accepted | ProviderError]


class _CheckFailed(Exception):
    """An unexpected error while checking or rendering one row of the batch (the batch is rolled back)."""


def send_together(message_ids: Sequence[int], channel: Channel, pool: Executor) -> Results:
    """Send claimed (``queued``) rows of ``channel``, the provider calls overlapping on ``pool``; see the module."""
    message_ids = list(dict.fromkeys(message_ids))  # an id twice in one batch is taken, and sent, once
    results: Results = {}
    try:
        provider = sms_provider() if channel is Channel.SMS else email_provider()
    except ConfigurationError as exc:
        log.error("%d messages: configuration error; left queued", len(message_ids))
        return dict.fromkeys(message_ids, exc)
    calls: dict[int, _Call] = {}
    chunks = [message_ids[i : i + PREPARE_CHUNK] for i in range(0, len(message_ids), PREPARE_CHUNK)]
    run = contextvars.copy_context().run
    try:
        for number, chunk in enumerate(chunks):
            try:
                _prepare_and_call(chunk, channel, provider, pool, results, calls)
            except spool.DATABASE_DOWN as exc:
                # This chunk was rolled back and the next ones would fail alike: all back for the next tick.
                later = [i for rest in chunks[number:] for i in rest if i not in results]
                results.update(_put_back(later, exc))
                break
    except BaseException:
        # Interrupted (the task's soft time limit) with calls in flight: their answers are still written.
        if calls:
            pool.submit(run, _collect_and_store, provider.name, calls)
        raise
    # The answers are awaited and written on a send thread too: an interrupted task loses none of them.
    results.update(pool.submit(run, _collect_and_store, provider.name, calls).result())
    return results


def _collect_and_store(provider_name: str, calls: dict[int, _Call]) -> Results:
    """Wait for the batch's provider calls and write their acceptances in one transaction (:func:`_store`)."""
    results: Results = {}
    accepted: list[tuple[AcceptedRow, Accepted]] = []
    for message_id, call in calls.items():
        try:
            answer = call.future.result()
        except Exception as exc:  # noqa: BLE001 - _provider_answer logged it and left the row as it must be
            results[message_id] = exc
            continue
        if isinstance(answer, Accepted):
            row = AcceptedRow(message_id, provider_name, answer.provider_message_id, call.ready.segments)
            accepted.append((row, answer))
            continue
        try:  # a refusal, written here one by one: the send threads never hold a database connection
            results[message_id] = send._refused(answer, call.ready, call.now, call.attempt)
        except Exception as exc:  # noqa: BLE001 - the row stays in sending; the reaper flags it unknown
            log.error(
                "message %d: the provider's refusal could not be written (%s)",
                message_id,
                type(exc).__name__,
                extra={"message_id": message_id},
            )
            results[message_id] = exc
    results.update(_store(accepted))
    return results


def _prepare_and_call(
    chunk: list[int],
    channel: Channel,
    provider: SmsProvider | EmailProvider,
    pool: Executor,
    results: Results,
    calls: dict[int, _Call],
) -> None:
    """Slots, then one transaction for ``chunk`` (take, check, render, hand over), then its calls on ``pool``:
    they are in flight while the next chunk is prepared. Raises what ``DATABASE_DOWN`` has (rolled back)."""
    slotted = _slots(chunk, channel, provider.name, results)
    if not slotted:
        return
    now = clock.utcnow()
    try:
        prepared = _take_and_prepare(slotted, now)
    except _CheckFailed:
        # Rolled back: every row is queued again. One at a time, so the failing row is written as send_one does.
        log.warning("%d messages: a check failed in the batch; sending them one at a time", len(slotted))
        results.update(_one_by_one(slotted, channel))
        return
    for message_id in slotted:
        got = prepared[message_id]
        if isinstance(got, SendResult):
            results[message_id] = got
        else:
            ready, attempt = got
            call = contextvars.copy_context().run
            future = pool.submit(call, send._provider_answer, provider, ready, message_id, now, attempt)
            calls[message_id] = _Call(ready, attempt, now, future)


def _put_back(message_ids: list[int], exc: Exception) -> Results:
    """The database failed before the hand-over: the rows are still ``queued``; the next tick re-enqueues them."""
    if not message_ids:
        return {}
    kept = spool.retake_later(message_ids)
    log.error(
        "%d messages: database unavailable before the provider call (%s); put back for %s",
        len(message_ids),
        type(exc).__name__,
        "the next tick" if kept else "the reaper (Redis refused it too)",
    )
    delay = get_settings().tick_seconds
    return {i: SendResult(i, Outcome.DEFERRED, reason=send.PUT_BACK_REASON, delay=delay) for i in message_ids}


def _slots(chunk: list[int], channel: Channel, provider_name: str, results: Results) -> list[int]:
    """Slots in the provider's rate limit for ``chunk``, all in one step: the ids that may go now. The others
    go back on the schedule until their slot (their results written into ``results``)."""
    now = clock.utcnow()
    try:
        got, following = send._wait_for_slots(channel, provider_name, len(chunk))
        wait, reason = following, "rate limit (RateLimited)"
    except LimiterUnavailable:
        got, wait, reason = 0, get_settings().retry_base_seconds, "rate limit (LimiterUnavailable)"
    for message_id in chunk[got:]:
        try:
            results[message_id] = send._postpone(message_id, now, timedelta(seconds=wait), reason)
        except spool.DATABASE_DOWN as down:
            results[message_id] = send._put_back(message_id, down)
    return chunk[:got]


def _take_and_prepare(message_ids: list[int], now: datetime) -> dict[int, tuple[Ready, int] | SendResult]:
    """One transaction: take the rows, check and render each, write the verdicts, hand over those that go."""
    prepared: dict[int, tuple[Ready, int] | SendResult] = {}
    with session_scope() as session:
        attempts = take_many(session, message_ids, now)
        loaded = load_many_for_sending(session, list(attempts))
        for message_id in message_ids:
            attempt = attempts.get(message_id)
            if attempt is None:
                log.info(
                    "message %d: not queued (another worker has it, or it was withdrawn)",
                    message_id,
                    extra={"message_id": message_id},
                )
                prepared[message_id] = SendResult(message_id, Outcome.NOT_MINE)
                continue
            try:
                outcome = send._check_and_render_loaded(session, loaded[message_id], now, attempt)
            except spool.DATABASE_DOWN:
                raise
            except Exception as exc:
                log.error(
                    "message %d: %s while checking it with its batch",
                    message_id,
                    type(exc).__name__,
                    extra={"message_id": message_id},
                )
                raise _CheckFailed(type(exc).__name__) from exc
            prepared[message_id] = outcome if isinstance(outcome, SendResult) else (outcome, attempt)
        going = {i: attempts[i] for i, got in prepared.items() if not isinstance(got, SendResult)}
        handed = hand_over_many(session, going, now)
    for message_id in going.keys() - handed:  # cannot happen inside one transaction; never send what is not ours
        log.info("message %d: no longer ours at the hand-over; not sent", message_id, extra={"message_id": message_id})
        prepared[message_id] = SendResult(message_id, Outcome.NOT_MINE)
    return prepared


def _store(accepted: list[tuple[AcceptedRow, Accepted]]) -> Results:
    """Write the batch's acceptances in one transaction; while the database is down, hold each in Redis."""
    if not accepted:
        return {}
    results: Results = {}
    rows = [row for row, _ in accepted]
    try:
        send.write_with_retries(lambda session: record_accepted_many(session, rows, clock.utcnow()))
    except spool.DATABASE_DOWN as exc:
        for row in rows:
            try:
                spool.hold_result(
                    row.message_id,
                    clock.utcnow(),
                    provider=row.provider,
                    provider_message_id=row.provider_message_id,
                    segments=row.segments,
                )
            except spool.SpoolUnavailable:
                log.error(
                    "message %d: accepted by %s as %s but the result could not be stored (%s) nor held; the "
                    "status callback or the reaper resolves it",
                    row.message_id,
                    row.provider,
                    row.provider_message_id,
                    type(exc).__name__,
                    extra={"message_id": row.message_id},
                )
                results[row.message_id] = exc
    for row in rows:
        if row.message_id in results:
            continue
        log.info(
            "message %d sent via %s as %s",
            row.message_id,
            row.provider,
            row.provider_message_id,
            extra={"message_id": row.message_id},
        )
        results[row.message_id] = SendResult(row.message_id, Outcome.SENT, provider_message_id=row.provider_message_id)
    return results


def _one_by_one(message_ids: list[int], channel: Channel) -> Results:
    results: Results = {}
    for message_id in message_ids:
        try:
            results[message_id] = send.send_one(message_id, channel)
        except Exception as exc:  # noqa: BLE001 - send_one logged it and left the row as it must be
            results[message_id] = exc
    return results
