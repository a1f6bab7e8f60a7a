"""Thin Celery tasks: each takes ids, calls one function in :mod:`engage.delivery`, and returns counts.

No business logic, no SDK clients, no message bodies here. The outbox table is
the schedule: a transient provider error puts the row back to ``scheduled``
with ``next_attempt_at`` and a later tick claims it again, so these tasks never
``self.retry`` (a Celery countdown would be a second schedule, and a retried
task plus the next tick could both send).
"""

from __future__ import annotations

import time
from datetime import timedelta

from celeryconfig import SEND_QUEUES
from engage.config import get_settings
from engage.delivery import batch, claim, heartbeat, send, spool
from engage.integrations import deliver
from engage.ops import retention
from engage.records.models import Channel
from workers.app import app


@app.task(name="engage.dispatch_due")
def dispatch_due() -> int:
    """Claim due rows, SMS and email apart, and enqueue them as ``send_batch`` tasks on their channel's queue.

    First applies what was held in Redis while the database was down (inbound opt-outs first) and
    re-enqueues rows a send put back. Claims per channel no more than its rate limit lets out in one
    tick (:func:`engage.delivery.send.per_tick`), so no batch waits long for slots while a tick or a
    webhook delivery waits for its process. Returns how many ids were enqueued. Stops when both
    claims come back short or after one tick's time (the next tick carries on). If the broker
    refuses a publish, the task fails and the rows not yet enqueued stay ``queued`` until
    ``reap_stale`` re-enqueues them. A finished tick records the beat's heartbeat
    (``engage.delivery.heartbeat``).
    """
    with heartbeat.ticking():
        return _claim_and_enqueue()


def _claim_and_enqueue() -> int:
    settings = get_settings()
    deadline = time.monotonic() + settings.tick_seconds
    spool.replay()
    enqueued = 0
    for channel, ids in batch.retaken().items():
        _enqueue(channel, ids)
        enqueued += len(ids)
    # No more than the rate limit lets out before the next tick: the rest stays scheduled for it.
    budget = {channel: send.per_tick(channel) for channel in (Channel.EMAIL, Channel.SMS)}
    while True:
        short = True
        for channel in (Channel.EMAIL, Channel.SMS):
            left = budget[channel]
            if left is not None and left <= 0:
                continue
            limit = settings.claim_batch if left is None else min(settings.claim_batch, left)
            ids = claim.claim_due(limit, channel=channel)
            _enqueue(channel, ids)
            enqueued += len(ids)
            if left is not None:
                budget[channel] = left - len(ids)
            short = short and len(ids) < limit
        if short or time.monotonic() >= deadline:
            return enqueued


def _enqueue(channel: Channel, ids: list[int]) -> None:
    for chunk in batch.chunks(ids, get_settings().send_batch):
        queue = SEND_QUEUES[channel.value]
        send_batch.apply_async((chunk, channel.value), queue=queue, routing_key=queue)


@app.task(name="engage.send_batch")
def send_batch(message_ids: list[int], channel: str | None = None) -> dict[str, int]:
    """Send claimed rows of one channel side by side (each exactly as ``send_message`` would); returns counts.

    A redelivered or duplicate batch finds its rows no longer ``queued`` and sends
    nothing twice. A ConfigurationError propagates after the rest of the batch.
    """
    return batch.send_many(message_ids, Channel(channel) if channel else None)


@app.task(name="engage.send_message")
def send_message(message_id: int) -> str:
    """Send one outbox row (``queued -> sending -> …``); returns the outcome's name.

    A redelivered or duplicate task finds the row no longer ``queued`` and does
    nothing (``not_mine``). A ConfigurationError propagates: the task fails loudly.
    """
    return send.send_one(message_id).outcome.value


@app.task(name="engage.reap_stale")
def reap_stale() -> dict[str, int]:
    """Re-enqueue stale ``queued`` rows and ``sending`` rows never handed to the provider.

    A stale ``sending`` row that was handed over becomes ``unknown``: it may be out, so it is never re-sent.
    """
    spool.replay()  # a held send result must land before the reaper could call its row unknown
    result = claim.reap_stale()
    for channel, ids in batch.by_channel(result["ids"]).items():
        _enqueue(channel, ids)
    return {"requeued": result["requeued"], "unknown": result["unknown"], "failed": result["failed"]}


@app.task(name="engage.purge")
def purge() -> dict[str, object]:
    """Weekly data retention (beat, when ``ENGAGE_PURGE_AFTER_DAYS`` is set): see :func:`engage.ops.retention.purge`."""
    days = get_settings().purge_after_days
    if days is None:
        return {"skipped": "ENGAGE_PURGE_AFTER_DAYS is not set"}
    return retention.purge(timedelta(days=days), actor="system").as_dict()


@app.task(name="engage.deliver_webhooks")
def deliver_webhooks() -> dict[str, int]:
    """Post the outgoing webhook events that are due, for up to one tick (see :mod:`engage.integrations.deliver`)."""
    return deliver.deliver_due(max_seconds=get_settings().tick_seconds)
