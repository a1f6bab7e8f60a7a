"""Per-IP request rate limits for the public pages, staff sign-in and the API (and per API token), shared by
every web process.

Built on the ``limits`` library (moving window). The counters live in Redis when one
is configured — the same rule as the send buckets (:func:`engage.delivery.ratelimit.limiter_redis_url`:
``ENGAGE_REDIS_URL`` when set, else a Redis broker) — so all web processes count together;
on the embedded default (SQLite, ``memory://`` broker) they live in the process. If Redis
stops answering, requests are counted in the process meanwhile (one warning a minute):
a Redis outage must not take the patient pages down.

Each limit is a FastAPI dependency. Over the limit: 429 with ``Retry-After``. Usage::

    app.include_router(patient_pages.router, dependencies=[Depends(ratelimit.public_pages)])

    @router.post("/login", dependencies=[Depends(ratelimit.login)])   # the staff sign-in route
    def login(...): ...

A new limit is one line: ``PerIpLimit("name", "setting_name")`` with a ``rate_limit_*``
setting in :mod:`engage.config`. The client address is ``request.client.host``, which
uvicorn takes from ``X-Forwarded-For`` only when the connection comes from a proxy listed in
``ENGAGE_TRUSTED_PROXIES`` (``engage serve``; none by default), so a client cannot pick its own address.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from functools import lru_cache

from fastapi import HTTPException, Request
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from engage.config import Settings, get_settings
from engage.delivery.ratelimit import limiter_redis_url

log = logging.getLogger(__name__)

KEY_PREFIX = "engage:web-limit"


class PerIpLimit:
    """A FastAPI dependency: at most ``settings.<setting>`` requests per client IP, else 429 with ``Retry-After``."""

    def __init__(self, name: str, setting: str) -> None:
        self.name = name
        self.setting = setting

    def item(self, settings: Settings) -> RateLimitItem:
        """The configured rate; raises ValueError for a string ``limits`` cannot read."""
        return parse(str(getattr(settings, self.setting)))

    def __call__(self, request: Request) -> None:
        self.check(request, request.client.host if request.client else "unknown")

    def check(self, request: Request, identity: str) -> None:
        """Count one request of ``identity`` (an address, ``token:42``); 429 with ``Retry-After`` over the limit."""
        settings = get_settings()
        item = self.item(settings)
        redis_url = limiter_redis_url(settings)
        limiter = _shared(redis_url) if redis_url else _in_process(request)
        try:
            allowed = limiter.hit(item, self.name, identity)
        except RedisError as exc:
            _warn_redis_down(exc)
            limiter = _in_process(request)
            allowed = limiter.hit(item, self.name, identity)
        if not allowed:
            reset = limiter.get_window_stats(item, self.name, identity).reset_time
            raise HTTPException(
                status_code=429,
                detail="too many requests; try again shortly",
                headers={"Retry-After": str(max(1, math.ceil(reset - time.time())))},
            )


#: The pages patients open from their messages (``/u``, ``/r``, ``/x``).
public_pages = PerIpLimit("public-pages", "rate_limit_public_pages")
#: The staff sign-in form: apply it to the POST that checks a password.
login = PerIpLimit("login", "rate_limit_login")
#: Every JSON API request, per client address (before the token is looked at: floods without one count too) ...
api_per_ip = PerIpLimit("api-ip", "rate_limit_api_per_ip")
#: ... and per API token, wherever it is used from (``api_per_token.check(request, f"token:{id}")``).
api_per_token = PerIpLimit("api-token", "rate_limit_api_per_token")


def check_settings(settings: Settings) -> None:
    """Raise ValueError naming the setting when a configured rate cannot be read (called when the app starts)."""
    for limit in (public_pages, login, api_per_ip, api_per_token):
        try:
            limit.item(settings)
        except ValueError:
            raise ValueError(f"ENGAGE_{limit.setting.upper()} is not a rate like '60/minute'") from None


@lru_cache
def _shared(redis_url: str) -> MovingWindowRateLimiter:
    return MovingWindowRateLimiter(RedisStorage(redis_url, key_prefix=KEY_PREFIX))


_lock = threading.Lock()
_warned_at = 0.0


def _in_process(request: Request) -> MovingWindowRateLimiter:
    """The app's own counters: one app per process in production, and a fresh app starts from zero."""
    state = request.app.state
    with _lock:
        if getattr(state, "rate_limiter", None) is None:
            state.rate_limiter = MovingWindowRateLimiter(MemoryStorage())
        limiter: MovingWindowRateLimiter = state.rate_limiter
    return limiter


def _warn_redis_down(exc: RedisError) -> None:
    global _warned_at
    with _lock:
        if time.monotonic() - _warned_at < 60:
            return
        _warned_at = time.monotonic()
    log.warning("rate limits counted per process: Redis is not answering (%s)", type(exc).__name__)
