"""An HTTP client for webhook posts: connects only to checked addresses, and gives each post a total deadline.

:func:`make_client` returns an ``httpx.Client`` whose connections are opened by :class:`PinnedBackend`
(an ``httpcore`` network backend). For each new connection it resolves the URL's host once, checks
every address (:func:`engage.integrations.addresses.permitted_addresses`) and connects to one of those
very addresses: there is no second lookup for a rebinding DNS server to answer differently. The URL
is left as it is, so the ``Host`` header, TLS SNI and the certificate check all use the name.

httpx's timeouts apply to each read, so a receiver that sends a byte every few seconds could hold a
post for ever. :func:`deadline` sets, for the posts made in a ``with`` block on this thread, a total
time: every connect, read and write gets at most what is left, and past it raises
``httpcore.ReadTimeout`` (httpx's ``ReadTimeout``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

from engage.integrations.addresses import AddressRefused, Resolver, permitted_addresses, system_resolver

_local = threading.local()


class AddressNotAllowed(httpx.TransportError):
    """The host resolves to an address engage does not post to (raised when connecting)."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Posts on this thread inside the block end within ``seconds`` in all (each read and write included)."""
    before = getattr(_local, "deadline", None)
    _local.deadline = time.monotonic() + seconds
    try:
        yield
    finally:
        _local.deadline = before


def _left(timeout: float | None) -> float | None:
    """``timeout`` cut to what is left of the thread's deadline; ``ReadTimeout`` when nothing is left."""
    end: float | None = getattr(_local, "deadline", None)
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the post's total deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation waits at most until the thread's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, _left(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class PinnedBackend(httpcore.SyncBackend):
    """Opens TCP connections only to addresses :func:`permitted_addresses` allows for the host asked for."""

    def __init__(self, *, allow_local: bool, resolve: Resolver = system_resolver) -> None:
        self.allow_local = allow_local
        self.resolve = resolve

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = permitted_addresses(host, port, allow_local=self.allow_local, resolve=self.resolve)
        except AddressRefused as exc:
            raise AddressNotAllowed(str(exc)) from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve the host: {exc}") from None
        error: Exception | None = None
        for address in addresses:  # the first that answers, as a browser would
            try:
                stream = super().connect_tcp(str(address), port, _left(timeout), local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            return _DeadlineStream(stream)
        assert error is not None
        raise error


def make_client(*, allow_local: bool, resolve: Resolver = system_resolver) -> httpx.Client:
    """An ``httpx.Client`` (no redirects, no proxy from the environment) whose connections :class:`PinnedBackend`
    opens; use it inside :func:`deadline`."""
    transport = httpx.HTTPTransport()
    # httpx has no public way to choose httpcore's network backend; the pool it would build, with ours.
    transport._pool = httpcore.ConnectionPool(  # noqa: SLF001
        ssl_context=httpx.create_ssl_context(),
        network_backend=PinnedBackend(allow_local=allow_local, resolve=resolve),
    )
    return httpx.Client(transport=transport, follow_redirects=False, trust_env=False)
