"""The egress check's refusals, word for word: what a data engineer reads when a
source may not connect, and the category it names for each kind of address."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from datasets.egress import EgressRefused, _category, egress_check


@pytest.mark.parametrize(
    ("address", "category"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local (cloud metadata)"),
        ("fe80::1", "link-local (cloud metadata)"),
        ("0.0.0.0", "reserved"),
        ("224.0.0.1", "reserved"),  # multicast, not reserved
        ("240.0.0.1", "reserved"),  # reserved, not multicast
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("100.64.0.1", "private"),  # shared address space: not global, not private
        ("fd00::1", "private"),
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
    ],
)
def test_each_address_has_its_category(address: str, category: str | None) -> None:
    assert _category(ipaddress.ip_address(address)) == category


def test_the_refusals_say_exactly_why(settings: Any) -> None:
    settings.DATA_EGRESS_ALLOWED_CIDRS = []
    settings.DATA_EGRESS_LOOPBACK_PORTS = [5432]
    cases = {
        ("", 80): "No host given.",
        ("example.org", 0): "Port 0 is not a valid port.",
        ("example.org", 65536): "Port 65536 is not a valid port.",
        ("127.0.0.1", 6379): (
            "127.0.0.1 is this machine (127.0.0.1); sources may reach it only on the "
            "ports an admin lists in DATA_EGRESS_LOOPBACK_PORTS."
        ),
        ("10.1.2.3", 443): (
            "10.1.2.3 resolves to 10.1.2.3, a private address; "
            "an admin must allow its network in DATA_EGRESS_ALLOWED_CIDRS."
        ),
        ("224.0.0.1", 443): (
            "224.0.0.1 resolves to 224.0.0.1, a reserved address; "
            "an admin must allow its network in DATA_EGRESS_ALLOWED_CIDRS."
        ),
        ("169.254.169.254", 80): (
            "169.254.169.254 resolves to 169.254.169.254, a link-local (cloud metadata) "
            "address; an admin must allow its network in DATA_EGRESS_ALLOWED_CIDRS."
        ),
    }
    for (host, port), message in cases.items():
        with pytest.raises(EgressRefused) as refused:
            egress_check(host, port)
        assert str(refused.value) == message, (host, port)


def test_listed_loopback_ports_and_allowed_networks_pass(settings: Any) -> None:
    settings.DATA_EGRESS_LOOPBACK_PORTS = [5432]
    settings.DATA_EGRESS_ALLOWED_CIDRS = ["10.1.0.0/16"]
    assert egress_check("127.0.0.1", 5432) == "127.0.0.1"
    assert egress_check("10.1.2.3", 443) == "10.1.2.3"
    assert egress_check("::ffff:10.1.2.3", 443) == "10.1.2.3"  # IPv4-mapped, checked as IPv4
    with pytest.raises(EgressRefused):
        egress_check("10.2.0.1", 443)
