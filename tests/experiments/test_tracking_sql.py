"""The tracking API's statements in PostgreSQL against the same rules in
Python: the JSON of searched runs against ``run_json``, each run's latest
metric against MLflow's ordering, and the write check of the services."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from experiments import selectors, services
from experiments.errors import MlflowError
from experiments.models import LatestMetric, Metric, Run, RunStatus

FLOATS = [
    0.1,
    1 / 3,
    -2.5,
    0.0,
    -0.0,
    1.0,
    1e-300,
    5e-324,
    1.7976931348623157e308,
    123456789.12345679,
    2.0**53 + 2,
    math.inf,
    -math.inf,
    math.nan,
]


def _differs(a: Any, b: Any, path: str = "") -> str | None:
    """Where two JSON values differ: numbers as JSON has them (1 is 1.0), NaN
    equal to NaN, -0.0 told from 0.0."""
    if isinstance(a, int | float) and isinstance(b, int | float) and float in (type(a), type(b)):
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            return None if math.isnan(a) and math.isnan(b) else f"{path}: {a!r} != {b!r}"
        same = a == b and math.copysign(1, a) == math.copysign(1, b)
        return None if same else f"{path}: {a!r} != {b!r}"
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return f"{path}: keys {sorted(a)} != {sorted(b)}"
        return next((d for k in a if (d := _differs(a[k], b[k], f"{path}.{k}"))), None)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items != {len(b)}"
        pairs = enumerate(zip(a, b, strict=True))
        return next((d for i, (x, y) in pairs if (d := _differs(x, y, f"{path}[{i}]"))), None)
    return None if type(a) is type(b) and a == b else f"{path}: {a!r} != {b!r}"


def _by_key(run: dict[str, Any]) -> dict[str, Any]:
    data = run["data"]
    for part in ("metrics", "params", "tags"):
        data[part] = sorted(data[part], key=lambda item: item["key"])
    return run


@pytest.mark.django_db
def test_search_json_from_postgresql_is_run_json(project: Any, bob: Any) -> None:
    experiment = services.experiment_create(actor=bob, project=project, name="json")
    made = []
    for i, value in enumerate(FLOATS):
        run = services.run_create(
            actor=bob, experiment=experiment, run_name=f'r{i} «ü» "q" \\', start_time=1000 + i
        )
        services.run_log_batch(
            actor=bob,
            run=run,
            metrics=[
                services.MetricPoint("v", value, 2**40 + i, i),
                services.MetricPoint("ключ/ü", -value, 7, 3),
            ],
            params={"p": f"line\nbreak {i}", "ü": "\u2603"} if i % 2 else {},
            tags={"t": 'quote " and \\ slash'} if i % 3 else {},
        )
        if i % 4 == 0:
            services.run_update(actor=bob, run=run, status=RunStatus.FINISHED, end_time=5000 + i)
        if i % 5 == 0:
            services.run_log_inputs(
                actor=bob,
                run=run,
                datasets=[
                    {
                        "name": "train",
                        "digest": "d" * 64,
                        "source_type": "local",
                        "source": '{"uri": "x"}',
                        "schema": "",
                        "profile": "",
                        "context": "train" if i else "",
                    }
                ],
            )
        made.append(run)
    ids = [r.pk for r in reversed(made)]
    from_sql = json.loads(selectors.runs_json_text(ids))
    runs = {r.pk: r for r in selectors.runs_with_data(Run.objects.filter(pk__in=ids))}
    from_python = json.loads(json.dumps([selectors.run_json(runs[pk]) for pk in ids]))
    assert [r["info"]["run_id"] for r in from_sql] == [r.uuid for r in reversed(made)]
    assert "end_time" not in from_sql[0]["info"] and from_sql[-1]["info"]["end_time"] == 5000
    assert len(from_sql) == len(from_python) == len(FLOATS)
    for sql_run, python_run in zip(from_sql, from_python, strict=True):
        assert _differs(_by_key(sql_run), _by_key(python_run)) is None
    assert selectors.runs_json_text([]) == "[]"


def _order(point: services.MetricPoint) -> tuple[int, int, float]:
    value = -math.inf if math.isnan(point.value) else point.value
    return (point.step, point.timestamp, value)


@pytest.mark.django_db
def test_latest_metric_follows_mlflow_order_across_batches(project: Any, bob: Any) -> None:
    """Highest step, then timestamp, then value (NaN lowest); the first of
    equals within a batch, a later batch's equal point over an earlier one."""
    experiment = services.experiment_create(actor=bob, project=project, name="latest")
    run = services.run_create(actor=bob, experiment=experiment)
    rng = random.Random(5)
    values = [0.5, 1.0, -1.0, math.nan, -math.inf, math.inf]
    expected: dict[str, services.MetricPoint] = {}
    finite: dict[str, list[float]] = {}
    logged = 0
    for _ in range(25):
        batch = [
            services.MetricPoint(
                rng.choice(["a", "b", "c"]),
                rng.choice(values),
                rng.randint(0, 2),
                rng.randint(0, 2),
            )
            for _ in range(rng.randint(1, 30))
        ]
        services.run_log_batch(actor=bob, run=run, metrics=batch, params={}, tags={})
        logged += len(batch)
        for point in batch:
            seen = finite.setdefault(point.key, [])
            seen += [] if math.isnan(point.value) else [point.value]
        newest: dict[str, services.MetricPoint] = {}
        for point in batch:
            if point.key not in newest or _order(point) > _order(newest[point.key]):
                newest[point.key] = point
        for key, point in newest.items():
            if key not in expected or _order(point) >= _order(expected[key]):
                expected[key] = point
    stored = {lm.key.name: lm for lm in LatestMetric.objects.filter(run=run).select_related("key")}
    assert stored.keys() == expected.keys()
    for key, point in expected.items():
        got = stored[key]
        assert (got.step, got.timestamp) == (point.step, point.timestamp), key
        assert repr(got.value) == repr(point.value), key
        # The bounds the comparison page shows, without NaN.
        assert (got.low, got.high) == (
            (min(finite[key]), max(finite[key])) if finite[key] else (None, None)
        ), key
    assert Metric.objects.filter(run=run).count() == logged


@pytest.mark.django_db
def test_services_check_the_writer_again(project: Any, bob: Any, carol: Any, charlie: Any) -> None:
    experiment = services.experiment_create(actor=bob, project=project, name="guarded")
    run = services.run_create(actor=bob, experiment=experiment)
    point = [services.MetricPoint("m", 1.0, 1, 0)]
    with pytest.raises(MlflowError) as read_only:
        services.run_log_batch(actor=carol, run=run, metrics=point, params={}, tags={})
    assert read_only.value.code == "PERMISSION_DENIED"
    with pytest.raises(MlflowError) as outsider:
        services.run_log_batch(actor=charlie, run=run, metrics=point, params={}, tags={})
    assert outsider.value.code == "RESOURCE_DOES_NOT_EXIST"
    services.run_delete(actor=bob, run=run)
    run.refresh_from_db()
    with pytest.raises(MlflowError) as deleted:
        services.run_log_batch(actor=bob, run=run, metrics=point, params={}, tags={})
    assert deleted.value.code == "INVALID_STATE"
    assert not Metric.objects.filter(run=run).exists()
    assert not LatestMetric.objects.filter(run=run).exists()


@pytest.mark.django_db(transaction=True)
def test_the_bounds_of_metrics_logged_before_them_are_filled_in(project: Any, bob: Any) -> None:
    """Migration 0006 fills each run's lowest and highest value per key from
    the points already there, NaN left out."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    experiment = services.experiment_create(actor=bob, project=project, name="old")
    run = services.run_create(actor=bob, experiment=experiment)
    points = [(0.5, 0), (math.nan, 1), (-2.0, 2), (3.0, 3)]
    services.run_log_batch(
        actor=bob,
        run=run,
        metrics=[services.MetricPoint("m", v, 1, s) for v, s in points]
        + [services.MetricPoint("nan", math.nan, 1, 0)],
        params={},
        tags={},
    )
    LatestMetric.objects.filter(run=run).update(low=None, high=None)  # as before the migration
    executor = MigrationExecutor(connection)
    executor.migrate([("experiments", "0005_sweeps")])
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes("experiments"))
    stored = {lm.key.name: lm for lm in LatestMetric.objects.filter(run=run).select_related("key")}
    assert (stored["m"].low, stored["m"].high, stored["m"].value) == (-2.0, 3.0, 3.0)
    assert (stored["nan"].low, stored["nan"].high) == (None, None)
