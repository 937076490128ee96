"""Outbound connections are checked before any connection is made."""

from __future__ import annotations

import contextlib
import os
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
        ("127.0.0.1", "this machine"),
        ("localhost", "this machine"),
        ("10.0.0.8", "private"),
        ("192.168.1.20", "private"),
        ("172.16.5.4", "private"),
        ("0.0.0.0", "this machine"),  # noqa: S104
        ("::1", "this machine"),
        ("::ffff:169.254.169.254", "link-local"),
        ("fd00::1", "private"),
    ],
)
def test_internal_addresses_are_refused(settings: Any, host: str, category: str) -> None:
    settings.DATA_EGRESS_ALLOWED_CIDRS = []
    settings.DATA_EGRESS_LOOPBACK_PORTS = []
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
    settings.DATA_EGRESS_LOOPBACK_PORTS = []
    with pytest.raises(EgressRefused):
        connectors.postgres_test(postgres_config("127.0.0.1", port), {"password": "x"})
    with pytest.raises(EgressRefused):
        list(connectors.postgres_chunks(postgres_config("127.0.0.1", port), {}))
    assert not was_contacted(listener)

    # Allowing the network opens no port of this machine.
    settings.DATA_EGRESS_ALLOWED_CIDRS = ["127.0.0.0/8", "0.0.0.0/0"]
    with pytest.raises(EgressRefused, match="DATA_EGRESS_LOOPBACK_PORTS"):
        connectors.postgres_test(postgres_config("127.0.0.1", port), {"password": "x"})
    assert not was_contacted(listener)

    # The port, allowed by the admin: now a connection is attempted.
    settings.DATA_EGRESS_LOOPBACK_PORTS = [port]
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
    with pytest.raises(EgressRefused, match="this machine"):
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


# --- This machine: only the listed ports, and one answer for every failure ---


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "::1", "localhost", "2130706433", "0x7f.1", "127.1", "0.0.0.0", "::ffff:7f00:1"],
)
def test_this_machine_is_reachable_only_on_listed_ports_under_any_name(
    settings: Any, host: str
) -> None:
    settings.DATA_EGRESS_ALLOWED_CIDRS = ["0.0.0.0/0", "::/0"]  # even with every network allowed
    settings.DATA_EGRESS_LOOPBACK_PORTS = [5432]
    with pytest.raises(EgressRefused, match="this machine"):
        egress_check(host, 6379)
    with pytest.raises(EgressRefused, match="this machine"):
        connectors.postgres_test(postgres_config(host, 8000), {})
    assert egress_check(host, 5432) in {"127.0.0.1", "::1", "0.0.0.0"}  # noqa: S104


def test_the_embedded_default_allows_postgresql_only(settings: Any) -> None:
    """What `make run` gets (SQLite): this machine's port 5432, nothing else."""
    import subprocess
    import sys

    code = (
        "from django.conf import settings; "
        "print(settings.DATA_EGRESS_LOOPBACK_PORTS, settings.DATA_EGRESS_ALLOWED_CIDRS)"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_DEBUG"}}
    out = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        env={**env, "DJANGO_SETTINGS_MODULE": "portal.settings"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "[5432] []"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word (a hung server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


@pytest.fixture
def hang_up_port() -> Iterator[int]:
    """A port with something behind it that is not the expected server: it hangs up."""
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        server.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _failure(kind: str, port: int) -> str:
    config = (
        postgres_config("127.0.0.1", port)
        if kind == "postgres"
        else {"url": f"https://127.0.0.1:{port}/data.csv"}
    )
    with pytest.raises(connectors.ConnectFailed) as caught:
        connectors.TESTERS[kind](config, {"password": "x"})
    return str(caught.value).replace(str(port), "PORT")


@pytest.mark.parametrize("kind", ["postgres", "https"])
def test_open_and_closed_ports_fail_with_the_same_words(
    settings: Any, kind: str, hang_up_port: int
) -> None:
    closed = closed_port()
    settings.DATA_EGRESS_LOOPBACK_PORTS = [hang_up_port, closed]
    open_answer, closed_answer = _failure(kind, hang_up_port), _failure(kind, closed)
    assert open_answer == closed_answer == "Could not connect to 127.0.0.1:PORT."


@pytest.mark.parametrize("kind", ["postgres", "https"])
def test_a_hung_server_gives_the_worker_back_after_the_connect_timeout(
    settings: Any, kind: str, silent_port: int
) -> None:
    import time

    settings.DATA_EGRESS_LOOPBACK_PORTS = [silent_port]
    started = time.monotonic()
    assert _failure(kind, silent_port) == "Could not connect to 127.0.0.1:PORT."
    assert time.monotonic() - started < connectors.CONNECT_TIMEOUT * 2 + 2


def test_the_stored_test_result_does_not_tell_open_from_closed(
    project: Any, alice: Any, settings: Any, hang_up_port: int
) -> None:
    closed = closed_port()
    settings.DATA_EGRESS_LOOPBACK_PORTS = [hang_up_port, closed]
    messages = []
    for port in (hang_up_port, closed):
        source = services.source_create(
            actor=alice,
            project=project,
            name=f"Probe {port}",
            kind="postgres",
            config=postgres_config("127.0.0.1", port),
        )
        services.source_test_execute(source_id=source.pk)
        source.refresh_from_db()
        assert source.test_status == ConnectionStatus.FAILED
        messages.append(source.test_message.replace(str(port), "PORT"))
    assert messages[0] == messages[1]
