"""Post owed events to the clinic's endpoints, signed, with retries and backoff.

:func:`deliver_due` is the whole job (the ``engage.deliver_webhooks`` task runs it every tick;
``engage tick`` and the demo run it too). It works like the message outbox:

- **claim**: due ``pending`` events are taken in one transaction (``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL) and leased: ``attempts`` goes up and ``next_attempt_at`` moves past the time a post
  can take, so two workers never post the same event at once, and an event whose worker died is
  posted again when the lease runs out;
- **post**: outside any transaction, on a few threads (a slow endpoint holds one thread, not the
  rest), signed per Standard Webhooks (https://www.standardwebhooks.com): headers ``webhook-id``
  (the event id), ``webhook-timestamp`` and ``webhook-signature`` (``v1,`` + base64 HMAC-SHA256 of
  ``id.timestamp.body`` under the endpoint's secret). Redirects are not followed; only public addresses
  are connected to, the one checked being the one used (:mod:`engage.integrations.pinned`), and a post
  ends within ``ENGAGE_WEBHOOK_TIMEOUT_SECONDS`` in all, however slowly the receiver answers;
- **record**: a 2xx answer marks the event ``delivered`` and it is never posted again; anything else
  (another status, a timeout, a refused connection) schedules the next attempt after
  :data:`RETRY_DELAYS` (a ``Retry-After`` may ask for longer), and after the last one the event is
  ``failed``. Each write names the attempt it recorded, so a late worker cannot overwrite a newer one.

An event is therefore delivered at least once and recorded delivered once; a receiver that saw
an event id before should answer 2xx and ignore it (a worker can die between the post and the
write). Logs carry event ids, endpoint ids and HTTP statuses: no URL (it may hold a token), no body.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from engage import clock, metrics
from engage.config import get_settings
from engage.db import session_scope
from engage.integrations import pinned
from engage.integrations.payloads import bodies
from engage.records.outgoing_webhooks import EventStatus, WebhookEndpoint, WebhookEvent

log = logging.getLogger(__name__)

#: Waits before the 2nd, 3rd, ... attempt: about a day in all, so a receiver down overnight still gets everything.
RETRY_DELAYS = tuple(timedelta(seconds=s) for s in (30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600))
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
#: The longest ``Retry-After`` honoured.
MAX_RETRY_AFTER = timedelta(hours=12)
#: Threads posting events, and events claimed at once: two rounds, so a batch takes at most two timeouts,
#: well inside its lease (claim_due) and the task's time limit (celeryconfig).
THREADS = 16
BATCH = 2 * THREADS
USER_AGENT = "engage-webhooks/1"
#: What an attempt's ``last_error`` says when no HTTP answer came (timeout, refused, reset, TLS: all alike).
NO_ANSWER = "no answer"
#: ... and when the URL's host resolves to an address engage does not post to (engage.integrations.addresses).
ADDRESS_NOT_ALLOWED = "address not allowed"


@dataclass(frozen=True)
class Post:
    """One claimed event, ready to post."""

    row_id: int
    attempt: int
    endpoint_id: int
    event_id: str
    url: str
    secret: str
    body: str


@dataclass(frozen=True)
class Answer:
    """How one post went: ``status_code`` None when no HTTP answer came."""

    post: Post
    status_code: int | None
    error: str | None
    retry_after: timedelta | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def deliver_due(*, max_seconds: float | None = None) -> dict[str, int]:
    """Claim, post and record due events until none is due (or ``max_seconds`` passed); returns counts:
    ``delivered``, ``retry`` (scheduled again) and ``failed`` (out of attempts)."""
    counts = {"delivered": 0, "retry": 0, "failed": 0}
    deadline = time.monotonic() + max_seconds if max_seconds is not None else None
    while True:
        posts = claim_due(BATCH)
        for answer in _pool().map(post_event, posts):
            counts[record(answer)] += 1
        if len(posts) < BATCH or (deadline is not None and time.monotonic() >= deadline):
            return counts


def claim_due(limit: int) -> list[Post]:
    """Lease up to ``limit`` due events (one transaction) and build their signed-to-be bodies."""
    now = clock.utcnow()
    lease = timedelta(seconds=2 * get_settings().webhook_timeout_seconds + 30)
    with session_scope() as session:
        # SQLite ignores the locking clause: its BEGIN IMMEDIATE already makes the transaction exclusive.
        events = list(
            session.scalars(
                select(WebhookEvent)
                .where(WebhookEvent.status == EventStatus.PENDING, WebhookEvent.next_attempt_at <= now)
                .order_by(WebhookEvent.next_attempt_at, WebhookEvent.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if not events:
            return []
        for event in events:
            event.attempts += 1
            event.next_attempt_at = now + lease
        session.flush()
        return _posts(session, events)


def _posts(session: Session, events: Sequence[WebhookEvent]) -> list[Post]:
    endpoints = {
        e.id: e
        for e in session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.id.in_({e.endpoint_id for e in events})))
    }
    payloads = bodies(session, events)
    return [
        Post(
            row_id=event.id,
            attempt=event.attempts,
            endpoint_id=event.endpoint_id,
            event_id=event.event_id,
            url=endpoints[event.endpoint_id].url,
            secret=endpoints[event.endpoint_id].secret,
            body=json.dumps(payloads[event.id], separators=(",", ":")),
        )
        for event in events
    ]


def signed_headers(post: Post, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for ``post`` signed at ``at``."""
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": post.event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(post.secret).sign(post.event_id, at, post.body),
    }


def post_event(post: Post) -> Answer:
    """POST one event, within ``webhook_timeout_seconds`` in all; never raises for the endpoint's failures (they
    are the answer). Errors are coarse on purpose (``no answer``, ``address not allowed``, ``HTTP 503``): how
    a connection failed would tell an admin which ports are open where engage runs."""
    seconds = get_settings().webhook_timeout_seconds
    try:
        # Signed at the real time, not engage's clock (a demo's simulated one): receivers compare it with theirs.
        with pinned.deadline(seconds):
            response = _client().post(
                post.url, content=post.body.encode(), headers=signed_headers(post, _real_now()), timeout=seconds
            )
    except pinned.AddressNotAllowed:
        return Answer(post, None, ADDRESS_NOT_ALLOWED)
    except httpx.HTTPError:
        return Answer(post, None, NO_ANSWER)
    return Answer(
        post,
        response.status_code,
        None if response.is_success else f"HTTP {response.status_code}",
        _retry_after(response.headers.get("retry-after")),
    )


def _real_now() -> datetime:
    return datetime.now(timezone.utc)


def _retry_after(value: str | None) -> timedelta | None:
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None  # an HTTP date: rare from a webhook receiver; the usual backoff applies
    return min(timedelta(seconds=seconds), MAX_RETRY_AFTER) if seconds and seconds > 0 else None


def record(answer: Answer) -> str:
    """Write how the post went; returns ``delivered``, ``retry`` or ``failed``."""
    now = clock.utcnow()
    post = answer.post
    values: dict[str, object] = {"last_status_code": answer.status_code, "last_error": answer.error}
    if answer.ok:
        outcome = "delivered"
        values.update(status=EventStatus.DELIVERED, delivered_at=now, next_attempt_at=None)
    elif post.attempt >= MAX_ATTEMPTS:
        outcome = "failed"
        values.update(status=EventStatus.FAILED, next_attempt_at=None)
    else:
        outcome = "retry"
        values["next_attempt_at"] = now + max(RETRY_DELAYS[post.attempt - 1], answer.retry_after or timedelta())
    with session_scope() as session:
        session.execute(
            update(WebhookEvent)
            .where(
                WebhookEvent.id == post.row_id,
                WebhookEvent.attempts == post.attempt,
                WebhookEvent.status == EventStatus.PENDING,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    metrics.record_outgoing_webhook(outcome)
    level = logging.INFO if answer.ok else logging.WARNING
    log.log(
        level,
        "webhook %s to endpoint %d, attempt %d: %s",
        post.event_id,
        post.endpoint_id,
        post.attempt,
        answer.status_code or answer.error,
    )
    return outcome


_lock = threading.Lock()
_clients: dict[tuple[int, bool], tuple[httpx.Client, ThreadPoolExecutor]] = {}


def _per_process() -> tuple[httpx.Client, ThreadPoolExecutor]:
    """This process's HTTP client and threads (a forked worker builds its own)."""
    key = (os.getpid(), get_settings().webhook_allow_local)
    with _lock:
        if key not in _clients:
            _clients[key] = (
                pinned.make_client(allow_local=key[1]),
                ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="webhook"),
            )
        return _clients[key]


def _client() -> httpx.Client:
    return _per_process()[0]


def _pool() -> ThreadPoolExecutor:
    return _per_process()[1]
