"""A PostgreSQL source against the real test server, on a table made here."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from audit.models import AuditEvent
from datasets import services
from datasets.models import ConnectionStatus, DataSource, IngestionStatus, Snapshot

PASSWORD = "Pg-Source-Password-42"  # noqa: S105


@pytest.fixture
def crm_table(transactional_db: Any) -> Iterator[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE crm_customers (id int PRIMARY KEY, region text, spend numeric)"
        )
        cursor.execute(
            "INSERT INTO crm_customers SELECT i, (ARRAY['north','south','east'])[i % 3 + 1], i * 1.5 "
            "FROM generate_series(1, 500) AS i"
        )
    try:
        yield "crm_customers"
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS crm_customers")


@pytest.fixture
def pg_source(crm_table: str, project: Any, alice: Any, settings: Any) -> DataSource:
    settings.DATA_EGRESS_ALLOWED_CIDRS = ["127.0.0.1/32"]
    db = connection.settings_dict
    settings.DATA_EGRESS_LOOPBACK_PORTS = [int(db["PORT"])]
    return services.source_create(
        actor=alice,
        project=project,
        name="CRM",
        kind="postgres",
        location="on_prem",
        config={
            "host": db["HOST"],
            "port": int(db["PORT"]),
            "database": db["NAME"],
            "user": db["USER"],
            "query": f"SELECT id, region, spend FROM {crm_table} ORDER BY id",
        },
        secrets={"password": PASSWORD},
    )


def test_pull_test_and_unchanged(
    pg_source: DataSource, alice: Any, eager: None, caplog: Any, api_for: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    # transactional_db: on_commit work runs at once, here in eager mode.
    source = services.source_test_request(actor=alice, source=pg_source)
    source.refresh_from_db()
    assert source.test_status == ConnectionStatus.OK, source.test_message
    assert "PostgreSQL" in source.test_message

    first = services.source_pull_request(actor=alice, source=pg_source)
    first.refresh_from_db()
    assert first.status == IngestionStatus.SUCCEEDED, first.error
    snapshot = Snapshot.objects.get(source=pg_source)
    assert (snapshot.version, snapshot.rows, snapshot.data_format) == (1, 500, "csv")
    assert [c["name"] for c in snapshot.columns] == ["id", "region", "spend"]

    again = services.source_pull_request(actor=alice, source=pg_source)
    again.refresh_from_db()
    assert again.status == IngestionStatus.UNCHANGED

    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO crm_customers VALUES (501, 'west', 1.0)")
    third = services.source_pull_request(actor=alice, source=pg_source)
    third.refresh_from_db()
    assert third.status == IngestionStatus.SUCCEEDED
    assert third.snapshot is not None
    assert (third.snapshot.version, third.snapshot.rows) == (2, 501)

    history = api_for(alice).get(f"/api/projects/churn/sources/{pg_source.pk}/ingestions/").json()
    assert [h["status"] for h in history] == ["succeeded", "unchanged", "succeeded"]
    everything = json.dumps(history) + json.dumps(
        list(AuditEvent.objects.values_list("payload", flat=True))
    )
    assert PASSWORD not in everything
    assert PASSWORD not in caplog.text


def test_the_query_runs_read_only(pg_source: DataSource, alice: Any, eager: None) -> None:
    services.source_update(
        actor=alice,
        source=pg_source,
        config={"query": "WITH gone AS (DELETE FROM crm_customers RETURNING *) SELECT * FROM gone"},
    )
    ingestion = services.source_pull_request(actor=alice, source=pg_source)
    ingestion.refresh_from_db()
    assert ingestion.status == IngestionStatus.FAILED
    assert "read-only" in ingestion.error
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM crm_customers")
        assert cursor.fetchone()[0] == 500
    assert not Snapshot.objects.exists()


def test_a_failing_query_fails_the_pull_with_the_reason(
    pg_source: DataSource, alice: Any, eager: None, storage: Any
) -> None:
    from tests.datasets.conftest import stored_files

    services.source_update(actor=alice, source=pg_source, config={"query": "SELECT * FROM nowhere"})
    ingestion = services.source_pull_request(actor=alice, source=pg_source)
    ingestion.refresh_from_db()
    assert ingestion.status == IngestionStatus.FAILED
    assert 'relation "nowhere" does not exist' in ingestion.error
    assert stored_files(storage) == []
