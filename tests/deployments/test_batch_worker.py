"""Batch scoring with a real worker: a model trained by the baseline template
scores the demo snapshot in the batch template's sandboxed job, and the
worker writes the predictions into a real PostgreSQL reporting database
(and into the embedded SQLite default); a re-run replaces the rows, even
when the worker watching it is killed (kill -9) and another takes over."""

from __future__ import annotations

import os
import signal
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from audit.models import AuditEvent
from deployments import batch, batch_reporting
from deployments.batch_models import BatchScoring, BatchState
from experiments import jobs
from experiments.job_models import Job, JobState
from portal.celery import leases_recover
from tests.conftest import start_worker, stop_worker
from tests.deployments import batch_data, gate_data
from tests.experiments import jobs_data
from tests.experiments.test_jobs_worker import short_leases  # noqa: F401  (a fixture)
from tests.workspaces.test_worker import wait_for

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("short_leases"),
]


def _done(pk: int) -> bool:
    return not BatchScoring.objects.get(pk=pk).active


def test_a_version_scores_the_demo_snapshot_into_postgres_and_sqlite_and_a_rerun_replaces_rows(
    project: Any, alice: Any, bob: Any, provider_jobs: Path, live_server: Any, settings: Any
) -> None:
    split = jobs_data.ready_split(project=project, actor=alice)
    snapshot = split.parent
    with batch_data.reporting_database() as database:
        source = batch_data.reporting_source(project, alice, database, settings)
        env = {
            "PORTAL_BASE_URL": live_server.url,
            "DATA_EGRESS_LOOPBACK_PORTS": str(settings.DATA_EGRESS_LOOPBACK_PORTS[0]),
            "STAGEGATE_VAR_DIR": str(django_settings.VAR_DIR),
        }
        worker = start_worker("batch-score", queues="training", env_extra=env)
        survivor = None
        try:
            trained = jobs.job_create(
                actor=bob, project=project, split=split, size=jobs_data.size()
            )
            wait_for(lambda: Job.objects.get(pk=trained.pk).finished, 180, "the training job")
            trained = Job.objects.select_related("run").get(pk=trained.pk)
            assert trained.state == JobState.SUCCEEDED, trained.log_tail
            version = gate_data.version(project, bob, run=trained.run)
            batch_data.approved_batch(project, version, bob)

            into_pg = batch.batch_scoring_create(
                actor=bob, version=version, output_table="churn_scores", reporting_source=source
            )
            into_sqlite = batch.batch_scoring_create(
                actor=bob, version=version, output_table="churn_scores"
            )
            wait_for(lambda: _done(into_pg.pk), 240, "the PostgreSQL scoring")
            wait_for(lambda: _done(into_sqlite.pk), 240, "the SQLite scoring")
            first = batch_data.reporting_rows(database, "churn_scores")

            into_pg = BatchScoring.objects.get(pk=into_pg.pk)
            assert into_pg.state == BatchState.SUCCEEDED, into_pg.error
            batch.batch_scoring_rerun(actor=bob, scoring=into_pg)
            wait_for(
                lambda: BatchScoring.objects.get(pk=into_pg.pk).state != BatchState.QUEUED,
                120,
                "the re-run's job to run",
            )
            killed_in = BatchScoring.objects.get(pk=into_pg.pk).state
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
            survivor = start_worker("batch-survivor", queues="training", env_extra=env)

            def ended() -> bool:
                leases_recover.apply()
                return _done(into_pg.pk)

            wait_for(ended, 240, "the re-run after its worker was lost")
        finally:
            stop_worker(worker)
            if survivor is not None:
                stop_worker(survivor)
        rows = batch_data.reporting_rows(database, "churn_scores")

    # Killed while it watched the job (or wrote): another worker finished it.
    assert killed_in in (BatchState.RUNNING, BatchState.WRITING)
    into_pg = BatchScoring.objects.select_related("job").get(pk=into_pg.pk)
    assert into_pg.state == BatchState.SUCCEEDED, into_pg.error
    assert into_pg.job is not None
    assert into_pg.runs == 2 and into_pg.rows_written == snapshot.rows
    assert into_pg.snapshot == snapshot and into_pg.snapshot_digest == snapshot.sha256
    assert into_pg.job.template == "batch_score" and into_pg.job.snapshot == snapshot
    # Every row of the snapshot once, after two runs: the re-run replaced them.
    assert len(first) == len(rows) == snapshot.rows
    assert [r[4] for r in rows] == list(range(snapshot.rows))
    assert {r[:4] for r in rows} == {(into_pg.pk, "churn", version.version, snapshot.sha256)}
    # The classifier answers the charter's labels: they land as labels, not numbers.
    assert {r[5] for r in rows} == {None} and {r[6] for r in rows} == {"yes", "no"}
    actions = list(
        AuditEvent.objects.filter(
            object_type="deployments.batchscoring", object_id=str(into_pg.pk)
        ).values_list("action", flat=True)
    )
    assert sorted(actions) == [
        "batch.created",
        "batch.rerun",
        "batch.succeeded",
        "batch.succeeded",
    ]

    into_sqlite = BatchScoring.objects.select_related("job").get(pk=into_sqlite.pk)
    assert into_sqlite.state == BatchState.SUCCEEDED, (into_sqlite.error,)
    path = batch_reporting.sqlite_path(project.slug)
    with closing(sqlite3.connect(path)) as db:
        stored = db.execute(
            "SELECT scoring_id, model_name, model_version, snapshot_sha256, count(*), "
            "count(DISTINCT row_number) FROM churn_scores WHERE scoring_id = ? "
            "GROUP BY 1, 2, 3, 4",
            (into_sqlite.pk,),
        ).fetchall()
    assert stored == [
        (into_sqlite.pk, "churn", version.version, snapshot.sha256, snapshot.rows, snapshot.rows)
    ]
