"""Gauges read from the database at scrape time: the outbox by status and channel, the backlog, the beat.

Read fresh on every scrape, so they are right whichever process serves ``/metrics``
and need no multiprocess bookkeeping. Counts only; no patient data.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from engage import clock
from engage.db import session_scope
from engage.delivery.heartbeat import last_tick
from engage.ops.status import backlog
from engage.records.models import Channel, Message, MessageStatus


class OutboxCollector(Collector):
    """``engage_messages{status,channel}``, ``engage_due_backlog``, ``engage_oldest_due_age_seconds``, the beat.

    One ``GROUP BY`` over the outbox per scrape: fine for a clinic's table (a
    scrape every 15–60 s); every (status, channel) pair is reported, zeros too,
    so a series never vanishes.
    """

    def collect(self) -> Iterator[Metric]:
        now = clock.utcnow()
        with session_scope() as session:
            rows = session.execute(
                select(Message.status, Message.channel, func.count()).group_by(Message.status, Message.channel)
            ).all()
            waiting = backlog(session, now)
        tick = last_tick(now)

        counts = {(MessageStatus(s).value, Channel(c).value): n for s, c, n in rows}
        messages = GaugeMetricFamily(
            "engage_messages", "Outbox rows by status and channel.", labels=["status", "channel"]
        )
        for status in MessageStatus:
            for channel in Channel:
                messages.add_metric([status.value, channel.value], counts.get((status.value, channel.value), 0))
        yield messages
        yield GaugeMetricFamily(
            "engage_due_backlog", "Messages due and not yet sent (scheduled and due, or queued).", value=waiting.total
        )
        yield GaugeMetricFamily(
            "engage_oldest_due_age_seconds",
            "How long the oldest due, unsent message has waited (0 when none).",
            value=waiting.oldest_age_seconds or 0.0,
        )
        yield GaugeMetricFamily(
            "engage_last_tick_age_seconds",
            "Seconds since the last beat tick (-1 when beat never ticked).",
            value=-1.0 if tick.age_seconds is None else tick.age_seconds,
        )
        yield GaugeMetricFamily(
            "engage_beat_stale", "1 when the last beat tick is older than 3 ticks.", value=1.0 if tick.stale else 0.0
        )
