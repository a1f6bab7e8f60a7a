"""uvicorn's HTTP/1.1 protocol (h11) with the slow-client guards uvicorn does not have.

uvicorn offers ``--timeout-keep-alive`` (idle connections), ``--limit-concurrency`` (connections and
requests at once, 503 beyond) and ``h11_max_incomplete_event_size`` (header size), but no deadline for
reading a request, and no per-address limit. A client that trickles its headers or its body (slowloris,
slow POST) holds a connection for as long as it likes, and 99 of them fill ``--limit-concurrency`` for
everyone. :func:`guarded` gives a protocol class (uvicorn's ``http=``) that closes a connection when:

- a request's headers are not complete within ``header_timeout`` seconds of the connection opening or of
  the first byte of that request;
- a request's body is not complete within ``body_timeout`` seconds of its headers, or arrives slower than
  ``min_body_rate`` bytes a second on average once :data:`BODY_GRACE_SECONDS` have passed (time during which
  engage itself stopped reading, because the app had not taken the bytes yet, does not count);
- it would be the client address's ``max_per_ip + 1``-th open connection (0: no cap). Behind a reverse
  proxy every connection comes from the proxy: raise the cap above its connection pool, or set 0.

The client of a cut request sees the connection close; the app sees a disconnect (logged as 499).
"""

from __future__ import annotations

import asyncio
import logging
import time

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

#: Seconds a body may take before the minimum rate applies (a slow start: TLS, a phone's radio waking up).
BODY_GRACE_SECONDS = 5.0
#: How often a body in progress is checked.
BODY_CHECK_SECONDS = 1.0
#: At most one log line per this many seconds about refused connections (an attack must not flood the log).
REFUSAL_LOG_SECONDS = 10.0


class GuardedH11(H11Protocol):
    """:class:`H11Protocol` with header and body deadlines, a minimum body rate and a per-address connection cap."""

    header_timeout: float = 10.0
    body_timeout: float = 120.0
    min_body_rate: float = 1024.0
    max_per_ip: int = 20
    _header_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None
    _body_started: float | None = None
    _body_bytes: int = 0
    _watched: object = None  # the request cycle whose body is watched
    _refused_logged_at: float = 0.0  # class-wide: see _refuse

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.max_per_ip and self.client is not None and self._same_address() > self.max_per_ip:
            self._refuse()
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self._between_requests():
            self._arm()  # the first byte of the next request on a kept-alive connection
        if self._body_started is not None:
            self._body_bytes += len(data)
        super().data_received(data)
        if not self._between_requests():
            self._disarm()  # the headers are complete: a request is being served
            if self._watched is not self.cycle:  # a new request: watch its body, if it has one to come
                self._stop_body_watch()
                self._watched = self.cycle
                if self.cycle.more_body:
                    self._body_started, self._body_bytes = time.monotonic(), 0
                    self._body_timer = self.loop.call_later(BODY_CHECK_SECONDS, self._check_body)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._stop_body_watch()
        super().connection_lost(exc)

    def _same_address(self) -> int:
        assert self.client is not None
        ip = self.client[0]
        return sum(1 for c in self.connections if (getattr(c, "client", None) or ("",))[0] == ip)

    def _refuse(self) -> None:
        now = time.monotonic()
        if now - GuardedH11._refused_logged_at >= REFUSAL_LOG_SECONDS:
            GuardedH11._refused_logged_at = now
            log.warning("refused connections: more than %d open from one address", self.max_per_ip)
        self.transport.close()

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._between_requests() and not self.transport.is_closing():
            log.info("closed a connection: no complete request headers within %.0f s", self.header_timeout)
            self.transport.close()

    def _stop_body_watch(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
        self._body_timer, self._body_started = None, None

    def _check_body(self) -> None:
        self._body_timer = None
        if self.cycle is not self._watched or not self.cycle.more_body or self.transport.is_closing():
            self._body_started = None  # the body is complete (or the connection gone): nothing to watch
            return
        assert self._body_started is not None
        if self.flow.read_paused:  # engage stopped reading (the app is busy): the client is not to blame
            self._body_started += BODY_CHECK_SECONDS
        elapsed = time.monotonic() - self._body_started
        too_long = elapsed > self.body_timeout
        too_slow = elapsed > BODY_GRACE_SECONDS and self._body_bytes < self.min_body_rate * elapsed
        if too_long or too_slow:
            log.info(
                "closed a connection: request body %s",
                f"not complete within {self.body_timeout:.0f} s"
                if too_long
                else f"slower than {self.min_body_rate:.0f} bytes/s",
            )
            self._body_started = None
            self.transport.close()
            return
        self._body_timer = self.loop.call_later(BODY_CHECK_SECONDS, self._check_body)


def guarded(*, header_timeout: float, body_timeout: float, min_body_rate: float, max_per_ip: int) -> type[H11Protocol]:
    """The protocol class to pass as uvicorn's ``http=`` with these limits (see the module docstring)."""
    return type(
        "GuardedH11",
        (GuardedH11,),
        {
            "header_timeout": header_timeout,
            "body_timeout": body_timeout,
            "min_body_rate": min_body_rate,
            "max_per_ip": max_per_ip,
        },
    )
