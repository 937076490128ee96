"""Outbound connections are checked before any connection is made."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from datasets import connectors, services
from datasets.egress import EgressRefused, egress_check
from datasets.models import ConnectionStatus, DataSource, IngestionStatus


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A local port that records whether anyone connected to it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.setblocking(False)
    try:
        yield server
    finally:
        server.close()


def was_contacted(server: socket.socket) -> bool:
    try:
        connection, _ = server.accept()
    except BlockingIOError:
        return False
    connection.close()
    return True


def postgres_config(host: str, port: int = 5432) -> dict[str, Any]:
    return {"host": host, "port": port, "database": "d", "user": "u", "query": "SELECT 1"}


@pytest.mark.parametrize(
    ("host", "category"),
    [
        ("169.254.169.254", "link-local"),
        ("127.0.0.1", "loopback"),
        ("localhost", "loopback"),
        ("10.0.0.8", "private"),
        ("192.168.1.20", "private"),
        ("172.16.5.4", "private"),
        ("0.0.0.0", "reserved"),  # noqa: S104
        ("::1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("fd00::1", "private"),
    ],
)
def test_internal_addresses_are_refused(settings: Any, host: str, category: str) -> None:
    settings.DATA_EGRESS_ALLOWED_CIDRS = []
    with pytest.raises(EgressRefused, match=category):
        egress_check(host, 5432)


def test_a_name_resolving_to_a_private_address_is_refused(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.DATA_EGRESS_ALLOWED_CIDRS = []
    real = socket.getaddrinfo

    def resolve(host: str, *args: Any, **kwargs: Any) -> Any:
        # What a DNS server says for an internal name; everything else resolves for real.
        if host == "crm-db.corp.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.20.30.40", 5432))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(EgressRefused, match=r"crm-db.corp.example resolves to 10.20.30.40"):
        connectors.postgres_test(postgres_config("crm-db.corp.example"), {})


def test_refused_before_connecting_and_allowed_once_allowlisted(
    settings: Any, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    settings.DATA_EGRESS_ALLOWED_CIDRS = []
    with pytest.raises(EgressRefused):
        connectors.postgres_test(postgres_config("127.0.0.1", port), {"password": "x"})
    with pytest.raises(EgressRefused):
        list(connectors.postgres_chunks(postgres_config("127.0.0.1", port), {}))
    assert not was_contacted(listener)

    # The same destination, allowlisted by the admin: now a connection is attempted.
    settings.DATA_EGRESS_ALLOWED_CIDRS = ["127.0.0.1/32"]
    config = {**postgres_config("127.0.0.1", port)}
    import threading

    thread = threading.Thread(target=lambda: _try(connectors.postgres_test, config))
    thread.start()
    contacted = False
    for _ in range(50):
        if was_contacted(listener):
            contacted = True
            break
        thread.join(0.1)
    thread.join(15)
    assert contacted


def _try(func: Any, config: dict[str, Any]) -> None:
    # The fake server hangs up; only the attempt matters.
    with contextlib.suppress(Exception):
        func(config, {})


def test_https_and_azure_sources_are_checked_too(settings: Any, listener: socket.socket) -> None:
    settings.DATA_EGRESS_ALLOWED_CIDRS = []
    port = listener.getsockname()[1]
    with pytest.raises(EgressRefused, match="link-local"):
        connectors.https_test({"url": "https://169.254.169.254/latest/meta-data/"}, {})
    with pytest.raises(EgressRefused, match="port 443"):
        connectors.https_test({"url": f"https://127.0.0.1:{port}/data.csv"}, {})
    with pytest.raises(EgressRefused, match="loopback"):
        connectors.https_test({"url": "https://localhost/data.csv"}, {})
    with pytest.raises(EgressRefused):
        connectors.azure_test(
            {
                "account": "a",
                "container": "c",
                "path": "x.csv",
                "endpoint": f"http://127.0.0.1:{port}/a",
            },
            {"account_key": "a2V5"},
        )
    assert not was_contacted(listener)


def test_refusal_is_recorded_on_the_source_and_the_pull(
    project: Any, alice: Any, settings: Any, eager: None, django_capture_on_commit_callbacks: Any
) -> None:
    settings.DATA_EGRESS_ALLOWED_CIDRS = []
    source = services.source_create(
        actor=alice,
        project=project,
        name="Metadata",
        kind="postgres",
        config=postgres_config("169.254.169.254"),
        secrets={"password": "hunter2-secret"},
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.source_test_request(actor=alice, source=source)
    source = DataSource.objects.get(pk=source.pk)
    assert source.test_status == ConnectionStatus.FAILED
    assert "link-local" in source.test_message

    with django_capture_on_commit_callbacks(execute=True):
        ingestion = services.source_pull_request(actor=alice, source=source)
    ingestion.refresh_from_db()
    assert ingestion.status == IngestionStatus.FAILED
    assert "link-local" in ingestion.error
    assert "hunter2" not in ingestion.error
