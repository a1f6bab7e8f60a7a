"""Send rate limits per provider: a token bucket shared by every worker (Redis), or per process.

Celery's ``rate_limit`` is per worker, but Twilio and SendGrid count per
account, so the bucket lives in Redis and all workers draw from it. The
bucket is kept as GCRA (the "generic cell rate algorithm"): one timestamp per
key, the theoretical arrival time of the next message, advanced by
``1 / rate`` per message. It is a token bucket of capacity ``burst`` refilled
at ``rate`` per second, stored in one number and updated atomically by one
Lua script. The script reads Redis's own clock, so workers' clocks may
disagree without letting more through.

Acquiring *reserves* a slot and returns how long to wait for it, so waiting
workers are served in order without polling. A caller that would wait longer
than ``max_wait`` gets :class:`RateLimited` instead and nothing is reserved:
the dispatcher then puts the message back on the schedule rather than
holding a worker.

With no Redis configured (the embedded default: in-process broker, SQLite),
:class:`LocalTokenBucket` applies the same arithmetic inside the process.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from engage.config import Settings, get_settings

if TYPE_CHECKING:
    import redis

KEY_PREFIX = "engage:rate:"

# KEYS[1]: the bucket. ARGV: interval (µs per message), burst tolerance (µs), max wait (µs), slots wanted.
# Reserves consecutive slots while each one's wait is within max wait. Returns {slots reserved, the wait for the
# last one reserved (µs), the wait for the next free slot (µs)}.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local got = 0
local last = 0
local wait = math.max(tat - tolerance - now, 0)
while got < wanted and wait <= max_wait do
  last = wait
  tat = tat + interval
  got = got + 1
  wait = math.max(tat - tolerance - now, 0)
end
if got > 0 then
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
return {got, last, wait}
"""


class RateLimited(Exception):
    """The next slot is further away than the caller is willing to wait; nothing was reserved."""

    def __init__(self, key: str, wait: float) -> None:
        super().__init__(f"rate limit {key}: next slot in {wait:.2f}s")
        self.key = key
        self.wait = wait


class LimiterUnavailable(Exception):
    """The shared bucket could not be reached (Redis down or timing out); nothing was reserved."""


class RateLimiter(Protocol):
    def reserve(self, key: str, rate: float, *, burst: float = 1.0, max_wait: float = 30.0) -> float:
        """Reserve one slot; return seconds to wait for it.

        Raises RateLimited beyond ``max_wait`` (nothing reserved), LimiterUnavailable when the bucket is out of reach.
        """
        ...

    def reserve_many(
        self, key: str, rate: float, count: int, *, burst: float = 1.0, max_wait: float = 30.0
    ) -> tuple[int, float, float]:
        """Reserve up to ``count`` consecutive slots, each within ``max_wait``, in one step: ``(slots reserved,
        seconds to wait for the last of them, seconds to wait for the next free slot)``.

        Raises LimiterUnavailable when the bucket is out of reach (nothing reserved).
        """
        ...


class RedisTokenBucket:
    """A bucket per key in Redis, shared by every process that uses the same Redis database."""

    def __init__(self, client: redis.Redis) -> None:
        import redis  # here, not at the top: importing redis-py takes longer than a whole `engage --help`

        self._errors = redis.RedisError
        self._client = client
        self._script = client.register_script(_GCRA)

    def reserve(self, key: str, rate: float, *, burst: float = 1.0, max_wait: float = 30.0) -> float:
        return _one(key, self.reserve_many(key, rate, 1, burst=burst, max_wait=max_wait))

    def reserve_many(
        self, key: str, rate: float, count: int, *, burst: float = 1.0, max_wait: float = 30.0
    ) -> tuple[int, float, float]:
        if rate <= 0 or count <= 0:
            return max(count, 0), 0.0, 0.0
        interval = int(1_000_000 / rate)
        tolerance = int(interval * max(burst - 1.0, 0.0))
        try:
            got, last, following = self._script(
                keys=[KEY_PREFIX + key], args=[interval, tolerance, int(max_wait * 1_000_000), count]
            )
        except self._errors as exc:
            raise LimiterUnavailable(f"rate limit {key}: {type(exc).__name__}") from exc
        return int(got), int(last) / 1_000_000, int(following) / 1_000_000


class LocalTokenBucket:
    """The same bucket inside one process (threads share it; other processes do not)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._now = monotonic
        self._lock = threading.Lock()
        self._tat: dict[str, float] = {}

    def reserve(self, key: str, rate: float, *, burst: float = 1.0, max_wait: float = 30.0) -> float:
        return _one(key, self.reserve_many(key, rate, 1, burst=burst, max_wait=max_wait))

    def reserve_many(
        self, key: str, rate: float, count: int, *, burst: float = 1.0, max_wait: float = 30.0
    ) -> tuple[int, float, float]:
        if rate <= 0 or count <= 0:
            return max(count, 0), 0.0, 0.0
        interval = 1.0 / rate
        tolerance = interval * max(burst - 1.0, 0.0)
        with self._lock:
            now = self._now()
            tat = max(self._tat.get(key, now), now)
            got, last = 0, 0.0
            wait = max(tat - tolerance - now, 0.0)
            while got < count and wait <= max_wait:
                last, tat, got = wait, tat + interval, got + 1
                wait = max(tat - tolerance - now, 0.0)
            if got:
                self._tat[key] = tat
            return got, last, wait


def _one(key: str, reserved: tuple[int, float, float]) -> float:
    """``reserve``'s answer from ``reserve_many``'s for one slot."""
    got, last, following = reserved
    if not got:
        raise RateLimited(key, following)
    return last


def acquire(limiter: RateLimiter, key: str, rate: float, *, burst: float = 1.0, max_wait: float = 30.0) -> float:
    """Reserve a slot and sleep until it comes; returns the seconds slept. Raises RateLimited beyond ``max_wait``."""
    wait = limiter.reserve(key, rate, burst=burst, max_wait=max_wait)
    if wait > 0:
        time.sleep(wait)
    return wait


def acquire_many(
    limiter: RateLimiter, key: str, rate: float, count: int, *, burst: float = 1.0, max_wait: float = 30.0
) -> tuple[int, float]:
    """Reserve up to ``count`` slots in one step and sleep until the last of them comes: ``(slots reserved,
    seconds until the next free slot)``, for the caller to put the rest back on the schedule."""
    got, last, following = limiter.reserve_many(key, rate, count, burst=burst, max_wait=max_wait)
    if got and last > 0:
        time.sleep(last)
    return got, max(following - last, 0.0) if got else following


def limiter_redis_url(settings: Settings) -> str | None:
    """The Redis that holds the buckets: ``ENGAGE_REDIS_URL`` when set, else the Celery broker when it is Redis.

    The embedded default (``memory://`` broker, no ``ENGAGE_REDIS_URL``) gets
    None: the bucket stays in-process and engage runs with no Redis at all.
    """
    if settings.redis_url and "redis_url" in settings.model_fields_set:
        return settings.redis_url
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return settings.broker_url
    return None


def uses_redis(settings: Settings) -> bool:
    """Whether these settings share the buckets through Redis (see :func:`limiter_redis_url`)."""
    return limiter_redis_url(settings) is not None


_cache_lock = threading.Lock()
_limiters: dict[tuple[int, str], RateLimiter] = {}


def get_limiter(settings: Settings | None = None) -> RateLimiter:
    """The process's limiter for these settings (a forked worker builds its own Redis connection pool)."""
    settings = settings or get_settings()
    url = limiter_redis_url(settings) or ""
    key = (os.getpid(), url)
    with _cache_lock:
        limiter = _limiters.get(key)
        if limiter is None:
            if url:
                import redis

                client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
                limiter = RedisTokenBucket(client)
            else:
                limiter = LocalTokenBucket()
            _limiters[key] = limiter
        return limiter


def reset_limiters() -> None:
    """Forget cached limiters (tests call this after changing the environment)."""
    with _cache_lock:
        _limiters.clear()
