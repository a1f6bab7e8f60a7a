"""What must outlive a database outage, held in Redis until the database is back.

Three things cannot wait for the database and must not be lost: an inbound SMS (Twilio
never retries one; a lost STOP means a patient is texted after saying stop), a provider's
answer to a send (the message is out; without the record the reaper would flag it
``unknown``) and a Twilio status callback. When the database refuses them, their fields go
on a Redis list (:func:`hold`); :func:`replay` applies them, inbound opt-outs first, each in
its own transaction. Workers replay at the start of every tick, reap and send batch, so a
STOP held during an outage is applied before any send once the database is back.

Ids of ``queued`` rows whose send could not reach the database before the hand-over go on
a Redis set (:func:`retake_later`); the next tick re-enqueues them (:func:`retakes`), so
they wait one tick, not the reaper's stale threshold.

The Redis is the rate limiter's (``ENGAGE_REDIS_URL``, else a Redis broker). Without one
(the embedded default) nothing can be held and callers see :class:`SpoolUnavailable`.
Held fields carry phone numbers and bodies, like the database would; logs carry counts only.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from engage.config import get_settings
from engage.db import session_scope
from engage.delivery import twilio_events
from engage.delivery.outbox_rows import record_accepted
from engage.delivery.ratelimit import limiter_redis_url
from engage.records.outgoing_webhooks import EventType, emit

log = logging.getLogger(__name__)

#: Errors that mean "the database cannot take this now" (down, refusing connections, pool exhausted).
DATABASE_DOWN: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout)

INBOUND = "inbound"  # Twilio inbound SMS form fields
RESULT = "result"  # a provider's acceptance of one of our sends
TWILIO_STATUS = "twilio_status"  # a Twilio status callback: {"ref": ?m=, "fields": {...}}
#: Replay order: what a patient said first (opt-outs before anything else), then send results, then callbacks.
KINDS = (INBOUND, RESULT, TWILIO_STATUS)
PREFIX = "engage:spool:"
RETAKE_KEY = "engage:retake"
LOCK_KEY = PREFIX + "lock"
#: One replay holds the lock at most this long (a stuck replayer must not block the rest for ever).
LOCK_SECONDS = 60


class SpoolUnavailable(RuntimeError):
    """Nothing can be held: no Redis is configured, or it did not answer."""


_lock = threading.Lock()
_clients: dict[tuple[int, str], Any] = {}


def _redis() -> Any:
    url = limiter_redis_url(get_settings())
    if url is None:
        raise SpoolUnavailable("no Redis configured (ENGAGE_REDIS_URL) to hold work while the database is down")
    key = (os.getpid(), url)
    with _lock:
        client = _clients.get(key)
        if client is None:
            import redis

            client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
            _clients[key] = client
        return client


def _unavailable(exc: Exception) -> bool:
    """Whether ``exc`` means Redis cannot be used now (not configured, down, refusing)."""
    import redis

    return isinstance(exc, (SpoolUnavailable, redis.RedisError, OSError))


def hold(kind: str, payload: Mapping[str, Any]) -> None:
    """Keep ``payload`` until :func:`replay` applies it; raises :class:`SpoolUnavailable` when it cannot."""
    client = _redis()
    try:
        client.rpush(PREFIX + kind, json.dumps(dict(payload), default=_json_default))
    except Exception as exc:
        if not _unavailable(exc):
            raise
        raise SpoolUnavailable(f"Redis refused to hold a {kind} ({type(exc).__name__})") from exc
    log.warning("database unavailable: a %s is held in Redis until it is back", kind)


def hold_result(
    message_id: int, at: datetime, *, provider: str, provider_message_id: str, segments: int | None
) -> None:
    """Hold a provider's acceptance of our message (see :func:`hold`)."""
    hold(
        RESULT,
        {
            "message_id": message_id,
            "at": at.isoformat(),
            "provider": provider,
            "provider_message_id": provider_message_id,
            "segments": segments,
        },
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def pending() -> int:
    """How many held items wait for the database (0 without Redis)."""
    try:
        client = _redis()
        pipe = client.pipeline(transaction=False)
        for kind in KINDS:
            pipe.llen(PREFIX + kind)
        return sum(int(n) for n in pipe.execute())
    except Exception as exc:
        if not _unavailable(exc):
            raise
        return 0


def replay() -> dict[str, int]:
    """Apply every held item, inbound opt-outs first, each in its own transaction; return counts by kind.

    Cheap when nothing is held (one Redis round trip). One process replays at a time (a Redis lock);
    the others return at once. An item is removed only after its transaction committed; a database
    error stops the replay (the rest stay held) and is raised. Each kind is idempotent, so an item
    applied twice (a replayer killed between commit and removal) changes nothing the second time.
    """
    counts = dict.fromkeys(KINDS, 0)
    if pending() == 0:
        return counts
    client = _redis()
    token = uuid.uuid4().hex
    if not client.set(LOCK_KEY, token, nx=True, ex=LOCK_SECONDS):
        return counts
    try:
        for kind in KINDS:
            counts[kind] = _replay_kind(client, kind)
    finally:
        if client.get(LOCK_KEY) == token.encode():
            client.delete(LOCK_KEY)
    if any(counts.values()):
        log.warning("database back: applied held %s", ", ".join(f"{n} {k}" for k, n in counts.items() if n))
    return counts


def _replay_kind(client: Any, kind: str) -> int:
    key = PREFIX + kind
    raw = client.lrange(key, 0, -1)
    if not raw:
        return 0
    items = [json.loads(item) for item in raw]
    order = list(range(len(items)))
    if kind == INBOUND:  # a STOP is applied before anything else a patient said while the database was down
        order.sort(key=lambda i: not twilio_events.is_opt_out(items[i]))
    apply = _APPLY[kind]
    for i in order:
        with session_scope() as session:
            apply(session, items[i])
        client.lrem(key, 1, raw[i])
    return len(items)


def _apply_inbound(session: Session, fields: dict[str, Any]) -> None:
    # The answer (TwiML) is long gone: the webhook answered 200 with no reply when it held the message.
    twilio_events.inbound_sms(session, fields)


def _apply_result(session: Session, item: dict[str, Any]) -> None:
    record_accepted(
        session,
        int(item["message_id"]),
        datetime.fromisoformat(item["at"]),
        provider=item["provider"],
        provider_message_id=item["provider_message_id"],
        segments=item["segments"],
    )
    emit(session, EventType.MESSAGE_SENT, [int(item["message_id"])])


def _apply_twilio_status(session: Session, item: dict[str, Any]) -> None:
    twilio_events.status_callback(session, item.get("ref"), item["fields"])


_APPLY: dict[str, Callable[[Session, dict[str, Any]], None]] = {
    INBOUND: _apply_inbound,
    RESULT: _apply_result,
    TWILIO_STATUS: _apply_twilio_status,
}


# --- rows to take back at the next tick ------------------------------------------------------------


def retake_later(message_ids: Iterable[int]) -> bool:
    """Ask the next tick to re-enqueue these ``queued`` rows; False when Redis cannot (the reaper will)."""
    ids = [int(i) for i in message_ids]
    if not ids:
        return True
    try:
        _redis().sadd(RETAKE_KEY, *ids)
    except Exception as exc:
        if not _unavailable(exc):
            raise
        return False
    return True


def retakes() -> list[int]:
    """The ids :func:`retake_later` collected (left in place; :func:`forget_retakes` once they are enqueued)."""
    try:
        return sorted(int(i) for i in _redis().smembers(RETAKE_KEY))
    except Exception as exc:
        if not _unavailable(exc):
            raise
        return []


def forget_retakes(message_ids: Iterable[int]) -> None:
    ids = list(message_ids)
    if ids:
        _redis().srem(RETAKE_KEY, *ids)
