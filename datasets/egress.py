"""Outbound connections from data sources: checked before any connection.

Every address a host name resolves to must be a public one, unless the admin
allowed its network in ``DATA_EGRESS_ALLOWED_CIDRS``. This machine (loopback,
and the unspecified address, which reaches it too) is reachable only on the
ports listed in ``DATA_EGRESS_LOOPBACK_PORTS``, whatever the networks say, so
that a source cannot probe the portal's own database, broker or web process.
Callers connect to the address returned here, not to the name again, so a
second DNS answer cannot swap in a private address.
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


def _is_this_machine(address: IPAddress) -> bool:
    return address.is_loopback or address.is_unspecified


def is_allowlisted(address: IPAddress, port: int) -> bool:
    if _is_this_machine(address):
        return port in settings.DATA_EGRESS_LOOPBACK_PORTS
    return any(address in net for net in _allowed_networks())


def _resolve(host: str, port: int | None) -> list[IPAddress]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        addresses.append(address)
    return addresses


def egress_check(host: str, port: int) -> str:
    """Resolve ``host`` and return the address to connect to, or raise EgressRefused."""
    if not host:
        raise EgressRefused("No host given.")
    if not 0 < port < 65536:
        raise EgressRefused(f"Port {port} is not a valid port.")
    try:
        addresses = _resolve(host, port)
    except (socket.gaierror, UnicodeError) as exc:
        raise EgressRefused(f"Cannot resolve {host}.") from exc
    if not addresses:
        raise EgressRefused(f"Cannot resolve {host}.")
    for address in addresses:
        if _is_this_machine(address):
            if not is_allowlisted(address, port):
                raise EgressRefused(
                    f"{host} is this machine ({address}); sources may reach it only on the "
                    "ports an admin lists in DATA_EGRESS_LOOPBACK_PORTS."
                )
            continue
        category = _category(address)
        if category and not is_allowlisted(address, port):
            raise EgressRefused(
                f"{host} resolves to {address}, a {category} address; "
                "an admin must allow its network in DATA_EGRESS_ALLOWED_CIDRS."
            )
    return str(addresses[0])


def host_is_allowlisted(host: str, port: int) -> bool:
    """Whether every address of ``host`` is allowed by the admin on ``port``."""
    try:
        addresses = _resolve(host, port)
    except (socket.gaierror, UnicodeError):
        return False
    return bool(addresses) and all(is_allowlisted(a, port) for a in addresses)
