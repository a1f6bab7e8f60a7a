"""Prometheus metrics that engage's processes update, and the ``/metrics`` text they add up to.

Labels are only channels, provider names, vendor error codes, statuses and
results: never a patient, an address, a number or a message id (ids would also
make the series unbounded).

Workers are several processes (Celery's prefork pool), so in production every
process writes its samples to files in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's
multiprocess mode, chosen by that variable when the library is first imported)
and :func:`exposition` adds the files up. Point web, worker and beat at the same
directory (a shared volume) and empty it when the deployment restarts.
Without the variable each process counts in memory (``engage serve`` alone, tests).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

TICK_DURATION = Histogram(
    "engage_tick_duration_seconds",
    "How long one beat tick (claim and enqueue) took.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PROVIDER_LATENCY = Histogram(
    "engage_provider_request_seconds",
    "Time of one provider send call, answered or not.",
    ["provider", "channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5, 5, 10),
)
PROVIDER_ERRORS = Counter(
    "engage_provider_errors",
    "Provider send calls that failed, by vendor error code or transport failure.",
    ["provider", "code"],
)
WEBHOOKS = Counter(
    "engage_webhook_requests",
    "Provider webhook requests by result (accepted, forbidden, rejected, error).",
    ["provider", "result"],
)
OUTGOING_WEBHOOKS = Counter(
    "engage_outgoing_webhook_posts",
    "Posts of events to clinics' webhook endpoints by result (delivered, retry, failed).",
    ["result"],
)
LOGINS = Counter("engage_logins", "Staff login attempts by result (ok, failed, locked, ...).", ["result"])


def record_login(result: str) -> None:
    """Count one staff login attempt; ``result`` is a short fixed word such as ``ok`` or ``failed``, never a name."""
    LOGINS.labels(result=result).inc()


def record_outgoing_webhook(result: str) -> None:
    """Count one post to a clinic's endpoint: ``delivered``, ``retry`` or ``failed`` (out of attempts)."""
    OUTGOING_WEBHOOKS.labels(result=result).inc()


def record_webhook(provider: str, status_code: int) -> None:
    """Count one webhook request by the HTTP status engage answered."""
    if status_code < 300:
        result = "accepted"
    elif status_code == 403:
        result = "forbidden"  # bad or missing signature
    elif status_code < 500:
        result = "rejected"
    else:
        result = "error"
    WEBHOOKS.labels(provider=provider, result=result).inc()


@contextmanager
def provider_call(provider: str, channel: str) -> Iterator[None]:
    """Time one provider call (whatever its ending) into ``engage_provider_request_seconds``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        PROVIDER_LATENCY.labels(provider=provider, channel=channel).observe(time.perf_counter() - started)


def record_provider_error(provider: str, code: str | int | None) -> None:
    """Count one failed provider call under its vendor code (``21610``), HTTP status or transport tag."""
    PROVIDER_ERRORS.labels(provider=provider, code=str(code) if code is not None else "unknown").inc()


def exposition(*extra: Collector) -> bytes:
    """The Prometheus text for this process (or, in multiprocess mode, all processes) plus ``extra`` collectors."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    if extra:
        registry = CollectorRegistry(auto_describe=False)
        for collector in extra:
            registry.register(collector)
        body += generate_latest(registry)
    return body
