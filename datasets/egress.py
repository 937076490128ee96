"""Outbound connections from data sources: checked before any connection.

Every address a host name resolves to must be a public one, unless the admin
allowed its network in ``DATA_EGRESS_ALLOWED_CIDRS``. Callers connect to the
address returned here, not to the name again, so a second DNS answer cannot
swap in a private address.
"""

from __future__ import annotations

import ipaddress
import socket

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(Exception):
    """The destination is not allowed; no connection was made."""


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(c, strict=False) for c in settings.DATA_EGRESS_ALLOWED_CIDRS]


def _category(address: IPAddress) -> str | None:
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local (cloud metadata)"
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        return "reserved"
    if address.is_private or not address.is_global:
        return "private"
    return None


def is_allowlisted(address: IPAddress) -> bool:
    return any(address in net for net in _allowed_networks())


def egress_check(host: str, port: int) -> str:
    """Resolve ``host`` and return the address to connect to, or raise EgressRefused."""
    if not host:
        raise EgressRefused("No host given.")
    if not 0 < port < 65536:
        raise EgressRefused(f"Port {port} is not a valid port.")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise EgressRefused(f"Cannot resolve {host}.") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        raw = str(info[4][0]).split("%", 1)[0]
        address = ipaddress.ip_address(raw)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        addresses.append(address)
    if not addresses:
        raise EgressRefused(f"Cannot resolve {host}.")
    for address in addresses:
        category = _category(address)
        if category and not is_allowlisted(address):
            raise EgressRefused(
                f"{host} resolves to {address}, a {category} address; "
                "an admin must allow its network in DATA_EGRESS_ALLOWED_CIDRS."
            )
    return str(addresses[0])


def host_is_allowlisted(host: str) -> bool:
    """Whether every address of ``host`` is in an allowlisted network."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return False
    return bool(infos) and all(
        is_allowlisted(ipaddress.ip_address(str(i[4][0]).split("%", 1)[0])) for i in infos
    )
