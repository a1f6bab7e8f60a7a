"""``engage status`` (backlog, last beat tick, workers, recent failures) and ``engage purge`` (data retention)."""

from __future__ import annotations

import sys

import click

from engage.cli.common import ACTOR, emit, json_option, user_errors
from engage.delivery.heartbeat import last_tick
from engage.ops import retention
from engage.ops import status as ops_status
from engage.schedule.durations import parse_duration


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.0f}s ago"


def _human(s: ops_status.Status) -> str:
    b, t = s.backlog, s.tick
    workers = "broker unreachable" if s.workers is None else (", ".join(s.workers) or "none answered")
    lines = [
        "health       " + ("healthy" if s.healthy else "UNHEALTHY: " + "; ".join(s.problems)),
        f"backlog      {b.total} ({b.due} due, {b.queued} queued; {b.retrying} waiting to retry)",
        "oldest due   "
        + (
            "-"
            if b.oldest_due_at is None
            else f"message {b.oldest_due_id}, due {b.oldest_due_at:%Y-%m-%d %H:%M:%SZ} ({_age(b.oldest_age_seconds)})"
        ),
        "last tick    "
        + ("never" if t.last_tick_at is None else f"{t.last_tick_at:%Y-%m-%d %H:%M:%SZ} ({_age(t.age_seconds)})")
        + ("  STALE" if t.stale else "")
        + (" (dated in the future: check the clocks)" if t.in_the_future else ""),
        f"workers      {workers}",
        f"last 24 h    {s.failed_24h} failed, {s.unknown_24h} unknown",
        f"webhooks     {s.webhooks.pending} pending"
        + (f" (oldest {_age(s.webhooks.oldest_pending_age_seconds)})" if s.webhooks.pending else "")
        + f", {s.webhooks.failed_7d} given up in 7 days",
        "providers    " + (", ".join(f"{p.channel} {'FAILING' if p.failing else 'ok'}" for p in s.providers) or "-"),
    ]
    if s.held:
        lines.append(f"held         {s.held} webhooks/results in Redis, waiting for the database")
    return "\n".join(lines)


@click.command("status")
@click.option(
    "--ping-timeout",
    default=ops_status.PING_TIMEOUT_SECONDS,
    show_default=True,
    type=click.FloatRange(0.1, 30),
    help="Seconds to wait for workers to answer the ping.",
)
@click.option(
    "--heartbeat",
    "heartbeat_only",
    is_flag=True,
    help="Only the last beat tick; exit 1 when it is stale (a container healthcheck).",
)
@json_option
def status(ping_timeout: float, heartbeat_only: bool) -> None:
    """Is engage sending? Backlog, oldest due message, last beat tick, workers that answer, recent failures.

    Exit status 0 when healthy, 1 when not (database, beat, workers or a provider; the output says which);
    with --heartbeat, 1 when the last tick is older than 3 ticks.
    """
    if heartbeat_only:
        tick = last_tick()
        emit(
            tick.as_dict(),
            lambda: (
                (
                    "never"
                    if tick.last_tick_at is None
                    else f"last tick {tick.last_tick_at:%Y-%m-%d %H:%M:%SZ} ({_age(tick.age_seconds)})"
                )
                + (" STALE" if tick.stale else "")
                + (" (dated in the future: check the clocks)" if tick.in_the_future else "")
            ),
        )
        sys.exit(1 if tick.stale else 0)
    result = ops_status.collect(ping_timeout)
    emit(result.as_dict(), lambda: _human(result))
    sys.exit(0 if result.healthy else 1)


@click.command("purge")
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="DURATION",
    help="Retention window, e.g. 365d or 52w (at least 30d).",
)
@json_option
@user_errors
def purge(older_than: str) -> None:
    """Delete message contexts, provider payloads, reply texts and outbox files older than the window.

    Ids, statuses, times, error codes, scores and the audit trail are kept.
    """
    window = parse_duration(older_than)
    result = retention.purge(window, actor=ACTOR)
    emit(
        result.as_dict(),
        f"purged before {result.cutoff:%Y-%m-%d %H:%M}Z: {result.messages} message contexts, "
        f"{result.delivery_events} delivery payloads, {result.inbound_messages} reply texts, "
        f"{result.outbox_files} outbox files",
    )
