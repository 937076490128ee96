"""Time the comparison page of 500 runs × 20 metrics × 1,000 steps.

Usage (PostgreSQL from the test environment):

    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/experiments_compare.py --runs 5

Seeds one experiment with 500 runs, 8 params each, 20 metrics of 1,000 steps
(10,000,000 points, written by one ``INSERT ... SELECT generate_series`` in
PostgreSQL), each run's latest values, a signed-off charter on ``roc_auc``
and a champion model version. Then, in this process (Django's test client,
so the time is the server's: middleware, view, queries, template; no
network), alternately and paired:

- the page (``experiments:compare`` with ``?experiment=&filter=``, all 500
  runs) against a peer that reads the same summaries the naive way, one
  ``GROUP BY`` over the runs' points through the ORM
  (``Metric.objects.values("run", "key").annotate(Min, Max)``);
- one metric's chart (``experiments:compare_chart``: 500 series, min/max
  bucketed in SQL) against reading that metric's full history through the
  ORM (``values_list``), which is what the chart would cost without
  downsampling in the database, before any JSON.

Also printed: the queries of each request, the bytes per metric point in
the database (table, indexes, and both), and the bytes the chart sends.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only")
os.environ.setdefault("STATIC_MANIFEST", "false")
os.environ.setdefault("STAGEGATE_VAR_DIR", tempfile.mkdtemp(prefix="stagegate-bench-"))
if "FIELD_ENCRYPTION_KEYS" not in os.environ:
    from cryptography.fernet import Fernet

    os.environ["FIELD_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()

RUNS = 500
METRICS = 20
STEPS = 1000


def seed(project: Any, actor: Any) -> tuple[int, list[str]]:
    from django.db import connection, transaction

    from experiments import services
    from experiments.models import MetricKey, Param, Run

    experiment = services.experiment_create(actor=actor, project=project, name="sweep")
    now = int(time.time() * 1000)
    with transaction.atomic():
        runs = Run.objects.bulk_create(
            Run(
                experiment=experiment,
                name=f"trial-{i:03d}",
                status="FINISHED",
                start_time=now + i,
                end_time=now + i + 60_000,
                user_id_text="bench",
            )
            for i in range(RUNS)
        )
        Param.objects.bulk_create(
            Param(run=run, key=key, value=value)
            for i, run in enumerate(runs)
            for key, value in {
                "lr": f"{[0.001, 0.003, 0.01, 0.03, 0.1][i % 5]}",
                "depth": str(3 + i % 6),
                "algo": ["gbm", "rf", "lin"][i % 3],
                "n_estimators": str(100 * (1 + i % 4)),
                "seed": "42",
                "subsample": "0.8",
                "l2": f"{(i % 7) / 10}",
                "split": "v1",
            }.items()
        )
        names = ["roc_auc", "loss", "val_loss"] + [f"metric_{j:02d}" for j in range(METRICS - 3)]
        keys = [MetricKey.objects.get_or_create(name=n)[0].pk for n in names]
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # Bulk load: the secondary indexes are dropped and built again after the insert.
        cursor.execute("SET maintenance_work_mem = '512MB'")
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'experiments_metric'"
            " AND indexname <> 'experiments_metric_pkey'"
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute(
            """
            INSERT INTO experiments_metric (run_id, key_id, step, timestamp, value)
            SELECT r, k, s, %s + s * 100,
                   0.5 + 0.4 * (1 - exp(-s / (100.0 + (r %% 97) * 5)))
                       * (0.8 + 0.2 * ((r * 7 + k) %% 13) / 13.0)
                       + 0.02 * (random() - 0.5)
            FROM unnest(%s::bigint[]) r, unnest(%s::bigint[]) k, generate_series(0, %s) s
            """,
            [now, [run.pk for run in runs], keys, STEPS - 1],
        )
        for _, definition in indexes:
            cursor.execute(definition)
        cursor.execute(
            """
            INSERT INTO experiments_latestmetric
                (run_id, key_id, step, timestamp, value, low, high)
            SELECT DISTINCT ON (run_id, key_id) run_id, key_id, step, timestamp, value,
                   min(value) OVER w, max(value) OVER w
            FROM experiments_metric WHERE run_id = ANY(%s)
            WINDOW w AS (PARTITION BY run_id, key_id)
            ORDER BY run_id, key_id, step DESC, timestamp DESC, value DESC
            """,
            [[run.pk for run in runs]],
        )
        cursor.execute("VACUUM ANALYZE experiments_metric")
        cursor.execute("ANALYZE experiments_latestmetric")
    print(
        f"seeded {RUNS} runs × {METRICS} metrics × {STEPS} steps = {RUNS * METRICS * STEPS:,} "
        f"points in {time.perf_counter() - started:.1f} s (insert, then indexes built)"
    )
    model = services.registered_model_create(actor=actor, project=project, name="churn")
    version = services.model_version_create(
        actor=actor, model=model, source=f"runs:/{runs[7].uuid}/model", run=runs[7]
    )
    services.alias_set(actor=actor, version=version, alias="champion")
    return experiment.pk, [run.uuid for run in runs]


def storage() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), pg_relation_size('experiments_metric'),"
            " pg_indexes_size('experiments_metric'),"
            " pg_total_relation_size('experiments_metric') FROM experiments_metric"
        )
        count, table, indexes, total = cursor.fetchone()
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid)"
            " FROM pg_index WHERE indrelid = 'experiments_metric'::regclass ORDER BY 1"
        )
        per_index = cursor.fetchall()
    print(f"\nmetric points: {count:,}")
    print(f"table (heap): {table / count:.1f} bytes per point")
    for name, size in per_index:
        print(f"  index {name}: {size / count:.1f} bytes per point")
    print(f"indexes: {indexes / count:.1f} bytes per point")
    print(f"total: {total / count:.1f} bytes per point ({total / 2**20:.0f} MiB)")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    call_command("migrate", verbosity=0)

    from django.db import connection
    from django.db.models import Max, Min
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from accounts.models import User
    from bench.ratios import print_ratio_table
    from experiments.models import Metric, MetricKey, Run
    from projects.services import project_create
    from tests.factories import charter_signed_off

    lead, _ = User.objects.get_or_create(username="bench-lead")
    project = project_create(actor=lead, name="Bench", slug=f"bench-{int(time.time())}")
    charter_signed_off(project, by=lead, author=lead)
    experiment_id, _ = seed(project, lead)
    storage()

    client = Client()
    client.force_login(lead)
    page_url = reverse("experiments:compare", args=[project.slug]) + (
        f"?experiment={experiment_id}&filter=attributes.status+%3D+%27FINISHED%27"
    )
    chart_url = reverse("experiments:compare_chart", args=[project.slug]) + (
        f"?experiment={experiment_id}&metric=roc_auc"
    )
    run_pks = list(Run.objects.filter(experiment_id=experiment_id).values_list("pk", flat=True))
    key = MetricKey.objects.get(name="roc_auc").pk

    def timed(fn: Callable[[], None]) -> float:
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started

    def page() -> None:
        response = client.get(page_url)
        assert response.status_code == 200, response.status_code
        assert b"500 runs compared" in response.content

    def chart() -> None:
        response = client.get(chart_url)
        assert response.status_code == 200, response.status_code

    def naive_summaries() -> None:
        list(
            Metric.objects.filter(run_id__in=run_pks)
            .values("run", "key")
            .annotate(low=Min("value"), high=Max("value"))
        )

    def naive_history() -> None:
        list(
            Metric.objects.filter(run_id__in=run_pks, key_id=key).values_list(
                "run", "step", "value"
            )
        )

    # Warm up once each, untimed (plans, caches, templates).
    for warm in (page, chart, naive_summaries, naive_history):
        warm()
    for label, fn in (("page", page_url), ("chart", chart_url)):
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(fn)
        print(f"{label}: {len(ctx.captured_queries)} queries, {len(response.content):,} bytes")
    figure = client.get(chart_url).json()
    sent = sum(len(t["x"]) for t in figure["data"])
    print(
        f"chart: {len(figure['data'])} series, {figure['points_per_series']} points per series "
        f"at most, {sent:,} points sent of {RUNS * STEPS:,}"
    )

    pages, naive_pages, charts, naive_charts = [], [], [], []
    for _ in range(args.runs):
        naive_pages.append(timed(naive_summaries))
        pages.append(timed(page))
        naive_charts.append(timed(naive_history))
        charts.append(timed(chart))
    print("\n### The page (500 runs, 20 metrics: params, last/min/max, deltas, figures)\n")
    print_ratio_table(
        baseline_label="naive GROUP BY min/max through the ORM",
        measured_label="comparison page, whole request",
        baseline=naive_pages,
        measured=pages,
    )
    print("\n### One metric's chart (500 series of 1,000 steps)\n")
    print_ratio_table(
        baseline_label="full history through the ORM",
        measured_label="chart request, downsampled",
        baseline=naive_charts,
        measured=charts,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
