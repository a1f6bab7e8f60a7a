"""Celery settings for engage's workers and beat, read from the environment.

The broker only carries message *ids*; the outbox table is the schedule
(DESIGN.md). So nothing here schedules a message: beat fires ``dispatch_due``
every tick, that task claims due rows and enqueues one ``send_message`` per
id, and ``reap_stale`` repairs what a crash or a broker flush left behind.

Environment (all optional):

- ``ENGAGE_BROKER_URL``: ``memory://`` (the embedded default: in-process
  broker, only for a worker in the same process, e.g. ``engage demo``);
  in production Redis, e.g. ``redis://127.0.0.1:6379/0``.
- ``ENGAGE_TICK_SECONDS`` (15): how often beat runs ``dispatch_due``.
- ``ENGAGE_REAP_SECONDS`` (one tick): how often beat runs ``reap_stale``.
- ``ENGAGE_SEND_SOFT_TIME_LIMIT`` (30): seconds one ``send_message`` may run.
- ``ENGAGE_VISIBILITY_TIMEOUT`` (900): Redis redelivery of unacknowledged tasks.
- ``ENGAGE_STALE_QUEUED_SECONDS`` / ``ENGAGE_STALE_SENDING_SECONDS`` (60 / 600),
  ``ENGAGE_HTTP_TIMEOUT_SECONDS`` (10): engage settings the numbers below must agree with.

The relations between the numbers are checked at import: a worker or beat
started with inconsistent values stops with an error naming them.
"""

from __future__ import annotations

import os

from celery.schedules import crontab
from kombu import Exchange, Queue

from engage.config import get_settings

_settings = get_settings()


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number of seconds, not {raw!r}") from exc
    if value <= 0:
        raise ValueError(f"{name} must be positive, not {raw!r}")
    return value


# -- Broker -------------------------------------------------------------------
broker_url = _settings.broker_url
# Results are not needed (the outbox row records every outcome); storing them
# would only fill Redis. The demo switches an in-memory backend on for itself.
result_backend = _settings.result_backend
task_ignore_result = True
broker_connection_retry_on_startup = True
# Workers and beat ride out a Redis restart: reconnect forever, a few seconds apart.
broker_connection_max_retries = None
# A publish (enqueue) during a broker outage fails after ~2 s instead of
# hanging a tick; the rows stay `queued` and the reaper re-enqueues them.
task_publish_retry_policy = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0}

# -- Time limits ---------------------------------------------------------------
TICK_SECONDS = _settings.tick_seconds
# Every tick: with stale ``queued`` rows taken back after a minute, a dead worker's messages wait about a
# tick plus a minute (the reaper's queries use the (status, due_at) index and touch only stale rows).
REAP_SECONDS = _seconds("ENGAGE_REAP_SECONDS", TICK_SECONDS)

# One send is one HTTP call with an explicit timeout (ENGAGE_HTTP_TIMEOUT_SECONDS,
# 10 s) plus a short wait for a rate-limit slot; 30 s is three timeouts' worth. A
# batch's sends run side by side on the process's threads (no more of them than
# there are threads), so a batch takes about as long as its slowest send.
# At the soft limit the task stops with the row in `sending`: the reaper, not a
# blind retry, decides (it may have reached the provider).
SEND_SOFT_TIME_LIMIT = _seconds("ENGAGE_SEND_SOFT_TIME_LIMIT", 30.0)
# The hard limit kills a worker process stuck in C code (a hung socket) a little later.
SEND_TIME_LIMIT = SEND_SOFT_TIME_LIMIT + max(5.0, SEND_SOFT_TIME_LIMIT / 2)

# A tick claims in batches until nothing is due or one tick's time has passed
# (the next tick carries on), so a tick's run is bounded by the tick itself plus
# one batch; a minute covers a 500-row batch on a slow database many times over.
DISPATCH_SOFT_TIME_LIMIT = max(60.0, 2 * TICK_SECONDS)
DISPATCH_TIME_LIMIT = DISPATCH_SOFT_TIME_LIMIT + 30.0

# Outgoing webhooks: batches for one tick's time, each batch at most two endpoint timeouts
# (engage.integrations.deliver), so a run is bounded by a tick plus one batch.
WEBHOOKS_SOFT_TIME_LIMIT = TICK_SECONDS + 2 * _settings.webhook_timeout_seconds + 30.0
WEBHOOKS_TIME_LIMIT = WEBHOOKS_SOFT_TIME_LIMIT + 30.0

LONGEST_TASK = max(SEND_TIME_LIMIT, DISPATCH_TIME_LIMIT, WEBHOOKS_TIME_LIMIT)

# With acks_late a task stays unacknowledged in Redis while it waits in a
# worker's prefetch slot (at most one task: prefetch multiplier 1, so at most
# the hard limit of the task ahead of it) and while it runs (at most its own
# hard limit). Redis hands it to another worker after the visibility timeout,
# so the timeout must exceed both together, or a healthy slow task would be
# delivered twice. 900 s leaves a wide margin (and room for worker clocks
# that disagree) while a task from a crashed worker still comes back within
# 15 minutes; usually the reaper re-enqueues its row first (stale queued, 60 s).
VISIBILITY_TIMEOUT = _seconds("ENGAGE_VISIBILITY_TIMEOUT", 900.0)

if VISIBILITY_TIMEOUT <= 2 * LONGEST_TASK:
    raise ValueError(
        f"ENGAGE_VISIBILITY_TIMEOUT ({VISIBILITY_TIMEOUT:g}s) must exceed twice the longest task hard "
        f"time limit ({LONGEST_TASK:g}s), or Redis redelivers tasks that are still running"
    )
# A `sending` row older than this is one whose worker died (the hard limit has
# passed): only then may the reaper flag it `unknown`.
if _settings.stale_sending_seconds <= SEND_TIME_LIMIT:
    raise ValueError(
        f"ENGAGE_STALE_SENDING_SECONDS ({_settings.stale_sending_seconds:g}s) must exceed the send task's hard "
        f"time limit ({SEND_TIME_LIMIT:g}s), or the reaper flags messages that are still being sent"
    )
# A `queued` row younger than a tick may simply not have been taken yet.
if _settings.stale_queued_seconds <= TICK_SECONDS:
    raise ValueError(
        f"ENGAGE_STALE_QUEUED_SECONDS ({_settings.stale_queued_seconds:g}s) must exceed ENGAGE_TICK_SECONDS "
        f"({TICK_SECONDS:g}s)"
    )
# A batch's sends run side by side only while it has no more ids than the process has send threads;
# beyond that they run in rounds and a batch could outlast the send time limit.
if _settings.send_batch > _settings.send_threads:
    raise ValueError(
        f"ENGAGE_SEND_BATCH ({_settings.send_batch}) must not exceed ENGAGE_SEND_THREADS ({_settings.send_threads}), "
        "or a batch's sends run in rounds and can outlast ENGAGE_SEND_SOFT_TIME_LIMIT"
    )
if _settings.http_timeout_seconds >= SEND_SOFT_TIME_LIMIT:
    raise ValueError(
        f"ENGAGE_SEND_SOFT_TIME_LIMIT ({SEND_SOFT_TIME_LIMIT:g}s) must exceed ENGAGE_HTTP_TIMEOUT_SECONDS "
        f"({_settings.http_timeout_seconds:g}s)"
    )

broker_transport_options = {
    "visibility_timeout": VISIBILITY_TIMEOUT,
    # The in-process broker polls its queues; 1 s (kombu's default) would make
    # every hop of the demo wait a second. Redis uses BRPOP and ignores this.
    "polling_interval": 0.01 if broker_url.startswith("memory://") else 1.0,
}

# -- Delivery semantics ----------------------------------------------------------
# Acknowledge after the task ran: a worker that dies mid-task leaves the task
# to be redelivered; the queued -> sending conditional UPDATE makes the second
# delivery a no-op when the first got as far as the provider.
task_acks_late = True
# A pool process killed (OOM, SIGKILL) requeues its task at once instead of acking it.
task_reject_on_worker_lost = True
# Each pool process reserves one task at a time, so a slow send holds back one
# message, not a prefetched batch, and nothing waits unacked longer than needed.
worker_prefetch_multiplier = 1
task_soft_time_limit = SEND_SOFT_TIME_LIMIT
task_time_limit = SEND_TIME_LIMIT
# Transient provider errors are retried by the schedule (the row goes back to
# `scheduled` with next_attempt_at), never by Celery countdowns: the broker is
# not the schedule store, and a countdown task plus the next tick could both send.
task_serializer = "json"
accept_content = ["json"]
worker_hijack_root_logger = True
worker_send_task_events = False
timezone = "UTC"
enable_utc = True

# -- Queues ------------------------------------------------------------------------
# Ticks and the reaper get their own queue so that a backlog of sends cannot
# starve them: workers take from every queue in turn. SMS and email sends travel
# on queues of their own, so an email never waits behind an SMS that waits for
# its rate-limit slot; a worker started with ``-Q engage.send.sms`` (and another
# with ``-Q engage.dispatch,engage.send.email``) keeps even their processes apart.
DISPATCH_QUEUE = "engage.dispatch"
SEND_QUEUE = "engage.send"  # single sends (``send_message``) and anything unrouted
SEND_QUEUES = {"sms": "engage.send.sms", "email": "engage.send.email"}
# Posts to clinics' own endpoints: a slow endpoint must not hold up ticks or sends.
WEBHOOKS_QUEUE = "engage.webhooks"
_exchange = Exchange("engage", type="direct")
task_queues = (
    Queue(DISPATCH_QUEUE, _exchange, routing_key=DISPATCH_QUEUE),
    Queue(SEND_QUEUE, _exchange, routing_key=SEND_QUEUE),
    *(Queue(name, _exchange, routing_key=name) for name in SEND_QUEUES.values()),
    Queue(WEBHOOKS_QUEUE, _exchange, routing_key=WEBHOOKS_QUEUE),
)
task_default_queue = SEND_QUEUE
task_default_exchange = "engage"
task_default_routing_key = SEND_QUEUE
task_routes = {
    "engage.dispatch_due": {"queue": DISPATCH_QUEUE, "routing_key": DISPATCH_QUEUE},
    "engage.reap_stale": {"queue": DISPATCH_QUEUE, "routing_key": DISPATCH_QUEUE},
    "engage.purge": {"queue": DISPATCH_QUEUE, "routing_key": DISPATCH_QUEUE},
    "engage.send_message": {"queue": SEND_QUEUE, "routing_key": SEND_QUEUE},
    "engage.deliver_webhooks": {"queue": WEBHOOKS_QUEUE, "routing_key": WEBHOOKS_QUEUE},
    # engage.send_batch: routed per call to SEND_QUEUES[channel] (workers/tasks.py)
}
task_annotations = {
    "engage.dispatch_due": {"soft_time_limit": DISPATCH_SOFT_TIME_LIMIT, "time_limit": DISPATCH_TIME_LIMIT},
    "engage.reap_stale": {"soft_time_limit": DISPATCH_SOFT_TIME_LIMIT, "time_limit": DISPATCH_TIME_LIMIT},
    # A first purge of a year's backlog rewrites many rows; it runs weekly, at night, and may take minutes.
    # Within half the visibility timeout like the rest; a purge cut short is simply finished the next week.
    "engage.purge": {"soft_time_limit": 300, "time_limit": 330},
    "engage.deliver_webhooks": {"soft_time_limit": WEBHOOKS_SOFT_TIME_LIMIT, "time_limit": WEBHOOKS_TIME_LIMIT},
}

# -- Beat --------------------------------------------------------------------------
# A tick that waited longer than one tick in the queue is dropped: the next one
# does the same work, and a backlog of ticks after an outage would only pile up.
beat_schedule = {
    "dispatch-due": {
        "task": "engage.dispatch_due",
        "schedule": TICK_SECONDS,
        "options": {"expires": TICK_SECONDS, "queue": DISPATCH_QUEUE},
    },
    "reap-stale": {
        "task": "engage.reap_stale",
        "schedule": REAP_SECONDS,
        "options": {"expires": REAP_SECONDS, "queue": DISPATCH_QUEUE},
    },
    "deliver-webhooks": {
        "task": "engage.deliver_webhooks",
        "schedule": TICK_SECONDS,
        "options": {"expires": TICK_SECONDS, "queue": WEBHOOKS_QUEUE},
    },
}

# Data retention (ENGAGE_PURGE_AFTER_DAYS, at least 30): every Sunday at 03:00 UTC,
# the same as `engage purge --older-than <days>d`. Unset: no purge is scheduled.
PURGE_AFTER_DAYS = _settings.purge_after_days
if PURGE_AFTER_DAYS is not None:
    beat_schedule["purge"] = {
        "task": "engage.purge",
        "schedule": crontab(minute=0, hour=3, day_of_week=0),
        "options": {"expires": 24 * 3600, "queue": DISPATCH_QUEUE},
    }
