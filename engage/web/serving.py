"""uvicorn's HTTP/1.1 protocol (h11) with the header-read timeout uvicorn does not have.

A client that opens a connection, or starts its next request on a keep-alive one, and then
trickles the request line and headers (slowloris) would hold the connection for ever and
count against ``--limit-concurrency``. :func:`with_header_timeout` gives a protocol class that
closes the connection when a request's headers are not complete within ``seconds`` of the
connection opening or of the first byte of that request. Reading the body is not limited
here: the body size limit and the client's own patience cover it.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


class H11WithHeaderTimeout(H11Protocol):
    """:class:`H11Protocol` that closes a connection whose request headers take longer than ``header_timeout``."""

    header_timeout: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self._between_requests():
            self._arm()  # the first byte of the next request on a kept-alive connection
        super().data_received(data)
        if not self._between_requests():
            self._disarm()  # the headers are complete: a request is being served

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

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


def with_header_timeout(seconds: float) -> type[H11Protocol]:
    """The protocol class to pass as uvicorn's ``http=``, closing connections after ``seconds`` without headers."""
    return type("H11WithHeaderTimeout", (H11WithHeaderTimeout,), {"header_timeout": seconds})
