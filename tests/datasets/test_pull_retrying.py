"""A pull that cannot connect says so within seconds, while it retries."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from datasets import services
from datasets.models import Ingestion, IngestionStatus
from tests.conftest import start_worker, stop_worker


@pytest.fixture
def closed_port(settings: Any) -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    settings.DATA_EGRESS_LOOPBACK_PORTS = [port]
    return port


def test_the_reason_is_kept_while_the_ingestion_waits(
    project: Any, alice: Any, closed_port: int
) -> None:
    source = services.source_create(
        actor=alice,
        project=project,
        name="Down",
        kind="https",
        config={"url": f"https://127.0.0.1:{closed_port}/x.csv"},
    )
    ingestion = Ingestion.objects.create(
        source=source, trigger="manual", status=IngestionStatus.RUNNING
    )
    with pytest.raises(services.TransientSourceError) as caught:
        services.ingestion_execute(ingestion_id=ingestion.pk)
    assert str(caught.value) == f"Could not connect to 127.0.0.1:{closed_port}."
    services.ingestion_release(ingestion_id=ingestion.pk, delay=10, reason="Retrying: x")
    ingestion.refresh_from_db()
    assert (ingestion.status, ingestion.error) == (IngestionStatus.PENDING, "Retrying: x")


@pytest.fixture
def worker_reaching_the_port(
    transactional_db: Any, closed_port: int, monkeypatch: Any
) -> Iterator[subprocess.Popen[bytes]]:
    """A real worker allowed to reach the closed port (as the test process is)."""
    monkeypatch.setenv("DATA_EGRESS_LOOPBACK_PORTS", str(closed_port))
    proc = start_worker("pytest-retry-worker", queues="data")
    try:
        yield proc
    finally:
        stop_worker(proc)


@pytest.mark.worker
def test_a_pull_that_cannot_connect_shows_retrying_with_the_reason_within_seconds(
    worker_reaching_the_port: Any,
    project: Any,
    alice: Any,
    closed_port: int,
    client_for: Any,
    api_for: Any,
) -> None:
    source = services.source_create(
        actor=alice,
        project=project,
        name="Down",
        kind="https",
        config={"url": f"https://127.0.0.1:{closed_port}/x.csv"},
    )
    started = time.monotonic()
    ingestion = services.source_pull_request(actor=alice, source=source)
    page = ""
    while time.monotonic() - started < 15:
        page = (
            client_for(alice)
            .get(f"/projects/churn/data/{source.pk}/ingestions/{ingestion.pk}/")
            .content.decode()
        )
        if "Retrying in" in page:
            break
        time.sleep(0.2)
    assert "Retrying in" in page, page
    assert f"Could not connect to 127.0.0.1:{closed_port}." in page
    assert "attempt 1 of 5 failed" in page
    ingestion.refresh_from_db()
    assert not ingestion.is_done
    body = api_for(alice).get(f"/api/projects/churn/sources/{source.pk}/ingestions/{ingestion.pk}/")
    assert "Retrying in" in body.json()["error"]
