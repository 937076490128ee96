"""Batch scoring's fixtures: an approved batch request of a version, and a
reporting database of its own on the test PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

import psycopg
from django.db import connection
from django.utils import timezone

from datasets import services as data_services
from datasets.models import DataSource
from deployments.gate_models import DeploymentRequest, RequestState, Target


def approved_batch(project: Any, version: Any, actor: Any) -> DeploymentRequest:
    """A batch request of ``version`` as the gate leaves it after the last approval."""
    return DeploymentRequest.objects.create(
        project=project,
        version=version,
        requested_by=actor,
        target=Target.BATCH,
        rollout="all_at_once",
        reason="Monthly churn list for the retention team.",
        state=RequestState.APPROVED,
        decided_at=timezone.now(),
    )


def _admin() -> Any:
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"], port=int(db["PORT"]), user=db["USER"], dbname=db["NAME"], autocommit=True
    )


@contextmanager
def reporting_database() -> Iterator[str]:
    """A database of its own on the test server, dropped afterwards."""
    name = f"reporting_{uuid.uuid4().hex[:10]}"
    with closing(_admin()) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with closing(_admin()) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def reporting_source(project: Any, actor: Any, database: str, settings: Any) -> DataSource:
    """A PostgreSQL source of the project pointing at ``database``."""
    db = connection.settings_dict
    settings.DATA_EGRESS_LOOPBACK_PORTS = [int(db["PORT"])]
    return data_services.source_create(
        actor=actor,
        project=project,
        name="Reporting",
        kind="postgres",
        location="on_prem",
        config={
            "host": db["HOST"],
            "port": int(db["PORT"]),
            "database": database,
            "user": db["USER"],
            "query": "SELECT 1",
        },
        secrets={"password": "Reporting-Password-42"},
    )


def reporting_rows(database: str, table: str) -> list[tuple[Any, ...]]:
    db = connection.settings_dict
    with closing(
        psycopg.connect(host=db["HOST"], port=int(db["PORT"]), user=db["USER"], dbname=database)
    ) as conn:
        return conn.execute(
            f"SELECT scoring_id, model_name, model_version, snapshot_sha256, row_number, "  # noqa: S608
            f'prediction, prediction_label FROM "{table}" ORDER BY scoring_id, row_number'
        ).fetchall()


def trained_version(project: Any, alice: Any, bob: Any, callbacks: Any) -> Any:
    """A version registered from a training job's run (it names its split);
    the job is queued, never run (its task is sent only on a real commit)."""
    from experiments import jobs
    from tests.deployments import gate_data
    from tests.experiments import jobs_data

    split = jobs_data.ready_split(project=project, actor=alice, callbacks=callbacks)
    job = jobs.job_create(actor=bob, project=project, split=split, size=jobs_data.size())
    return gate_data.version(project, bob, run=job.run)
