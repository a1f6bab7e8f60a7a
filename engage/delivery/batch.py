"""Send many claimed messages at once: their provider calls overlap on a thread pool.

A vendor answers in 100-300 ms, so a process that waited for each answer in turn
would send about five messages a second. :func:`send_many` sends a batch of one
channel with :func:`engage.delivery.send_together.send_together`: the database work
once per batch (take, load, hand-over, results), the HTTP calls overlapping on this
process's thread pool (``ENGAGE_SEND_THREADS`` threads). A single id, or ids of an
unknown channel, go through :func:`engage.delivery.send.send_one` on the same pool.
Every row is still taken by its own ``queued -> sending`` compare-and-set and fenced
by its attempt number, so a duplicate id, a duplicate batch or a batch redelivered
after a crash sends nothing twice. The shared rate limit is drawn per message.

:func:`by_channel` splits ids by channel, so SMS (slow, rate limited) and email
travel on separate queues and an email never waits behind an SMS's rate-limit slot.

Logs carry message ids and counts only.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from sqlalchemy import select

from engage.config import get_settings
from engage.db import session_scope
from engage.delivery import heartbeat, spool
from engage.delivery.providers.base import ConfigurationError
from engage.delivery.send import Outcome, SendResult, send_one
from engage.delivery.send_together import send_together
from engage.records.models import Channel, Message, MessageStatus

log = logging.getLogger(__name__)

_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}


def _pool() -> ThreadPoolExecutor:
    """This process's send threads (a forked worker builds its own: threads do not survive a fork)."""
    pid = os.getpid()
    with _lock:
        pool = _pools.get(pid)
        if pool is None:
            pool = ThreadPoolExecutor(max_workers=max(1, get_settings().send_threads), thread_name_prefix="send")
            _pools[pid] = pool
        return pool


def send_many(message_ids: Sequence[int], channel: Channel | None = None) -> dict[str, int]:
    """Send each claimed id (see :func:`send_one`) concurrently; return how many ended in each :class:`Outcome`.

    ``channel``: the channel of every id, when the caller knows it (saves each send a read).
    ``error`` counts unexpected errors (``send_one`` logged them and put the row back on the
    schedule). A ``ConfigurationError`` is raised after every other send of the batch has
    finished (its row went back to ``queued``): engage is set up wrongly and must stop loudly.
    The caller's context (a frozen clock) carries over to the threads.
    """
    counts = {**{o.value: 0 for o in Outcome}, "error": 0}
    ids = list(dict.fromkeys(message_ids))  # the same id twice in one batch would only find itself "not mine"
    try:
        spool.replay()  # what patients said (a STOP) while the database was down goes first
    except Exception as exc:  # noqa: BLE001 - nothing may go out before it; the rows wait for the next tick
        kept = spool.retake_later(ids)
        log.error(
            "held webhooks could not be applied (%s); %d messages put back for %s",
            type(exc).__name__,
            len(ids),
            "the next tick" if kept else "the reaper",
        )
        counts[Outcome.DEFERRED.value] = len(ids)
        return counts
    pool = _pool()
    if channel is not None and len(ids) > 1:
        results = send_together(ids, channel, pool)
        outcomes: list[tuple[int, SendResult | Exception]] = [(i, results[i]) for i in ids]
    else:
        futures: list[Future[SendResult]] = [
            pool.submit(contextvars.copy_context().run, send_one, i, channel) for i in ids
        ]
        outcomes = []
        for message_id, future in zip(ids, futures, strict=True):
            try:
                outcomes.append((message_id, future.result()))
            except Exception as exc:  # noqa: BLE001 - counted below
                outcomes.append((message_id, exc))
    problem: ConfigurationError | None = None
    for message_id, outcome in outcomes:
        if isinstance(outcome, SendResult):
            counts[outcome.outcome.value] += 1
        elif isinstance(outcome, ConfigurationError):
            problem = problem or outcome
            counts["error"] += 1
        else:  # send_one rescheduled the row (or left it to the reaper)
            log.error(
                "message %d: send failed with %s", message_id, type(outcome).__name__, extra={"message_id": message_id}
            )
            counts["error"] += 1
    if channel is not None:
        heartbeat.record_provider(
            channel.value,
            accepted=counts[Outcome.SENT.value],
            refused=counts[Outcome.RETRY.value] + counts[Outcome.UNKNOWN.value],
        )
    if problem is not None:
        raise problem
    return counts


def by_channel(message_ids: Iterable[int]) -> dict[Channel, list[int]]:
    """The ids grouped by their message's channel (ids that do not exist are left out), in id order."""
    ids = sorted(set(message_ids))
    groups: dict[Channel, list[int]] = {}
    if not ids:
        return groups
    with session_scope() as session:
        for message_id, channel in session.execute(
            select(Message.id, Message.channel).where(Message.id.in_(ids)).order_by(Message.id)
        ):
            groups.setdefault(Channel(channel), []).append(message_id)
    return groups


def retaken() -> dict[Channel, list[int]]:
    """Rows whose send found the database unavailable before the hand-over (:func:`spool.retake_later`)
    and are still ``queued``, by channel, for the tick to enqueue again; forgotten once read."""
    ids = spool.retakes()
    if not ids:
        return {}
    groups: dict[Channel, list[int]] = {}
    with session_scope() as session:
        for message_id, channel in session.execute(
            select(Message.id, Message.channel)
            .where(Message.id.in_(ids), Message.status == MessageStatus.QUEUED)
            .order_by(Message.id)
        ):
            groups.setdefault(Channel(channel), []).append(message_id)
    spool.forget_retakes(ids)
    log.warning("re-enqueued %d messages a send had put back (database unavailable)", sum(map(len, groups.values())))
    return groups


def chunks(ids: Sequence[int], size: int) -> list[list[int]]:
    """``ids`` cut into lists of at most ``size``."""
    size = max(1, size)
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]
