"""Where engage may post a clinic's webhooks: public addresses only, decided on the address actually used.

A webhook URL is chosen by a clinic admin, and engage posts to it from inside the deployment: without
a rule, an admin could make engage reach the cloud metadata service (``169.254.169.254``), a database
on the private network, or ``localhost``, and read the answers or time them (server-side request
forgery). So:

- a host written as a number in an unusual form (``2130706433``, ``0x7f.1``, ``017.0.0.1``) is refused:
  resolvers read those as addresses (``2130706433`` is ``127.0.0.1``);
- a name is resolved, and **every** address it resolves to must be public: not loopback, private,
  link-local, shared (CGNAT), multicast, reserved or unspecified, also when written as an IPv4-mapped
  IPv6 address (``::ffff:127.0.0.1``); ``localhost`` and ``*.localhost`` are loopback without asking DNS;
- the connection goes to an address so checked (:mod:`engage.integrations.pinned`), never to a second
  resolution of the name, which an attacker's DNS server could answer differently (DNS rebinding).

``ENGAGE_WEBHOOK_ALLOW_LOCAL`` (development only) lifts the rule, for a receiver on this machine.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable

from engage.errors import InvalidInput

#: A host name made only of numbers (decimal, octal-looking or 0x-hex parts): an address in disguise.
_NUMERIC = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+))*\.?", re.IGNORECASE)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``resolve(host, port)``: the addresses a name stands for; raises ``OSError`` when it stands for none.
Resolver = Callable[[str, int], list[str]]


class AddressRefused(InvalidInput):
    """The URL's host is, or resolves to, an address engage does not post to."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="url")


def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's answer for ``host`` (``getaddrinfo``), each address once, in its order."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def refusal(address: Address) -> str | None:
    """Why engage must not post to ``address`` (``"loopback"``, ``"private"``, ...), or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified or address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:  # reserved, unspecified, shared (100.64.0.0/10), documentation ranges
        return "reserved"
    return None


def literal(host: str) -> Address | None:
    """``host`` as an IP address when it is one written the usual way (``[::1]``'s brackets already gone)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_host(host: str, *, allow_local: bool) -> None:
    """Refuse (:class:`AddressRefused`) a host that is a disguised number, or an address or ``localhost`` name
    engage does not post to. Names are not resolved here (see :func:`permitted_addresses`)."""
    address = literal(host)
    if address is None and _NUMERIC.fullmatch(host):
        raise AddressRefused("write the webhook host as a name, or an IP address in the usual form (203.0.113.7)")
    if allow_local:
        return
    if address is None and _is_localhost(host):
        address = ipaddress.ip_address("127.0.0.1")
    reason = refusal(address) if address is not None else None
    if reason:
        raise AddressRefused(f"engage does not post webhooks to a {reason} address")


def permitted_addresses(
    host: str, port: int, *, allow_local: bool, resolve: Resolver = system_resolver
) -> list[Address]:
    """The addresses engage may connect to for ``host``: all it resolves to, when every one is permitted.

    Raises :class:`AddressRefused` when any is not (a name with one private address among public ones is
    refused: which one a connection gets is up to the resolver), and ``OSError`` when the name resolves
    to nothing.
    """
    check_host(host, allow_local=allow_local)
    if _is_localhost(host):
        addresses: list[Address] = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    else:
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolve(host, port)]
    if not addresses:
        raise OSError(f"{host} resolves to no address")
    if not allow_local:
        for address in addresses:
            reason = refusal(address)
            if reason:
                raise AddressRefused(f"the webhook host resolves to a {reason} address; engage does not post there")
    return addresses


def _is_localhost(host: str) -> bool:
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")
