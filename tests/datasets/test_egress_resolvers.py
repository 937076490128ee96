"""Egress checks against resolvers that answer several addresses, or change their
answer between the check and the connection (DNS rebinding): every address is
checked, and the connectors connect to the address that was checked."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from datasets import connectors
from datasets.egress import EgressRefused, egress_check, host_is_allowlisted

CHECKED = "127.0.0.2"  # what the resolver tells the egress check
REBOUND = "127.0.0.3"  # what it tells anyone who asks again
HOST = "warehouse.rebind.invalid"


def answer(*addresses: str, port: int = 0) -> list[Any]:
    return [
        (
            socket.AF_INET6 if ":" in a else socket.AF_INET,
            socket.SOCK_STREAM,
            6,
            "",
            (a, port, 0, 0) if ":" in a else (a, port),
        )
        for a in addresses
    ]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Resolve names from a table; the test fills it in."""
    table: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in table:
            return answer(*table[host], port=int(port or 0))
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return table


@pytest.mark.parametrize(
    "addresses",
    [
        ["93.184.216.34", "10.0.0.5"],
        ["93.184.216.34", "8.8.8.8", "169.254.169.254"],
        ["2606:2800:220:1:248:1893:25c8:1946", "::ffff:10.0.0.5"],
        ["93.184.216.34", "fd00::7"],
    ],
)
def test_any_private_address_among_several_refuses(
    settings: Any, resolver: dict[str, list[str]], addresses: list[str]
) -> None:
    settings.DATA_EGRESS_ALLOWED_CIDRS = []
    resolver["mixed.example"] = addresses
    with pytest.raises(EgressRefused, match=r"mixed\.example resolves to"):
        egress_check("mixed.example", 443)


def test_the_first_of_several_public_addresses_is_returned(
    settings: Any, resolver: dict[str, list[str]]
) -> None:
    settings.DATA_EGRESS_ALLOWED_CIDRS = []
    resolver["public.example"] = ["93.184.216.34", "8.8.8.8"]
    assert egress_check("public.example", 443) == "93.184.216.34"


def test_an_allowlisted_network_admits_only_its_addresses(
    settings: Any, resolver: dict[str, list[str]]
) -> None:
    settings.DATA_EGRESS_ALLOWED_CIDRS = ["10.1.0.0/16"]
    resolver["inside.example"] = ["10.1.2.3", "10.1.9.9"]
    assert egress_check("inside.example", 5432) == "10.1.2.3"
    resolver["straddles.example"] = ["10.1.2.3", "10.2.0.1"]
    with pytest.raises(EgressRefused, match="10.2.0.1"):
        egress_check("straddles.example", 5432)


@pytest.mark.parametrize(
    ("port", "allowed"), [(0, False), (1, True), (65535, True), (65536, False)]
)
def test_ports_outside_1_to_65535_are_refused(
    settings: Any, resolver: dict[str, list[str]], port: int, allowed: bool
) -> None:
    settings.DATA_EGRESS_ALLOWED_CIDRS = []
    resolver["public.example"] = ["93.184.216.34"]
    if allowed:
        assert egress_check("public.example", port) == "93.184.216.34"
    else:
        with pytest.raises(EgressRefused, match=f"Port {port} is not a valid port"):
            egress_check("public.example", port)


def test_no_host_no_answer_and_bad_names_are_refused(
    settings: Any, resolver: dict[str, list[str]]
) -> None:
    settings.DATA_EGRESS_ALLOWED_CIDRS = []
    with pytest.raises(EgressRefused, match="No host given"):
        egress_check("", 443)
    resolver["empty.example"] = []
    with pytest.raises(EgressRefused, match=r"Cannot resolve empty\.example"):
        egress_check("empty.example", 443)
    with pytest.raises(EgressRefused, match="Cannot resolve"):
        egress_check("bad..name" + "x" * 300, 443)


def test_scoped_and_mapped_addresses_are_judged_by_their_address(
    settings: Any, resolver: dict[str, list[str]]
) -> None:
    settings.DATA_EGRESS_ALLOWED_CIDRS = ["fe80::/10", "10.9.0.0/16"]
    resolver["scoped.example"] = ["fe80::1%eth0"]
    assert egress_check("scoped.example", 443) == "fe80::1"
    resolver["mapped.example"] = ["::ffff:10.9.1.1"]
    assert egress_check("mapped.example", 443) == "10.9.1.1"
    settings.DATA_EGRESS_ALLOWED_CIDRS = []
    with pytest.raises(EgressRefused, match="link-local"):
        egress_check("scoped.example", 443)


@pytest.mark.parametrize(
    ("addresses", "expected"),
    [
        (["10.1.2.3"], True),
        (["10.1.2.3", "10.1.200.9"], True),
        (["10.1.2.3", "10.2.0.1"], False),  # every address, not any
        (["10.2.0.1", "10.1.2.3"], False),
        (["93.184.216.34"], False),
        (["fe80::1%eth0"], True),  # the scope is not part of the address
        ([], False),  # no answer: nothing is allowlisted
    ],
)
def test_host_is_allowlisted_only_when_every_address_is(
    settings: Any, resolver: dict[str, list[str]], addresses: list[str], expected: bool
) -> None:
    settings.DATA_EGRESS_ALLOWED_CIDRS = ["10.1.0.0/16", "fe80::/10"]
    resolver["host.example"] = addresses
    assert host_is_allowlisted("host.example", 5432) is expected


def test_host_is_allowlisted_is_false_for_names_that_do_not_resolve(
    settings: Any, resolver: dict[str, list[str]]
) -> None:
    settings.DATA_EGRESS_ALLOWED_CIDRS = ["0.0.0.0/0"]
    assert host_is_allowlisted("bad..name" + "x" * 300, 5432) is False
    assert host_is_allowlisted("nothing.invalid", 5432) is False


class Listener:
    """Accepts connections on one address, notes them and hangs up at once."""

    def __init__(self, address: str, port: int = 0) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.contacted = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.contacted.set()
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def rebinding(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Listener, Listener]]:
    """HOST resolves to CHECKED for the egress check and to REBOUND for anyone
    else; a listener on each records which one a connector reached."""
    settings.DATA_EGRESS_ALLOWED_CIDRS = [f"{CHECKED}/32"]
    checked = Listener(CHECKED)
    rebound = Listener(REBOUND, checked.port)
    # Both stand-ins are on loopback, which egress allows only on listed ports.
    settings.DATA_EGRESS_LOOPBACK_PORTS = [checked.port]
    real = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != HOST:
            return real(host, port, *args, **kwargs)
        caller = sys._getframe(1).f_globals.get("__name__")
        return answer(CHECKED if caller == "datasets.egress" else REBOUND, port=int(port or 0))

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    try:
        yield checked, rebound
    finally:
        checked.close()
        rebound.close()


def _reached(listeners: tuple[Listener, Listener]) -> list[str]:
    checked, rebound = listeners
    checked.contacted.wait(timeout=5)
    return [
        name
        for name, listener in (("checked", checked), ("rebound", rebound))
        if listener.contacted.is_set()
    ]


def test_postgres_connects_to_the_checked_address(rebinding: tuple[Listener, Listener]) -> None:
    config = {"host": HOST, "port": rebinding[0].port, "database": "d", "user": "u"}
    config["query"] = "SELECT 1"
    with pytest.raises(Exception):  # noqa: B017,PT011 - the listener hangs up; any error will do
        connectors.postgres_test(config, {})
    assert _reached(rebinding) == ["checked"]


def test_https_connects_to_the_checked_address(rebinding: tuple[Listener, Listener]) -> None:
    url = f"https://{HOST}:{rebinding[0].port}/data.csv"
    with pytest.raises(Exception):  # noqa: B017,PT011 - the listener hangs up; any error will do
        connectors.https_test({"url": url}, {})
    assert _reached(rebinding) == ["checked"]
