"""The filter grammar (with OR and parentheses) and ordering, on the database,
and search_runs through the real client with pagination."""

from __future__ import annotations

from typing import Any

import pytest

from experiments import services
from experiments.errors import MlflowError
from experiments.models import Run
from experiments.search import apply_order, filter_to_q, like_to_regex


@pytest.fixture
def runs(project: Any, bob: Any) -> dict[str, Run]:
    experiment = services.experiment_create(actor=bob, project=project, name="grid")
    made = {}
    rows = [
        ("a", {"lr": "0.1", "algo": "gbm"}, {"acc": 0.7, "f1 score": 0.5}, {"team": "x"}),
        ("b", {"lr": "0.01", "algo": "gbm"}, {"acc": 0.9}, {"team": "y"}),
        ("c", {"lr": "0.1", "algo": "lin"}, {"acc": 0.8, "f1 score": 0.9}, {"team": "X"}),
        ("d", {"lr": "1", "algo": "rf"}, {}, {"team": "it's"}),
    ]
    for i, (name, params, metrics, tags) in enumerate(rows):
        run = services.run_create(
            actor=bob, experiment=experiment, run_name=name, start_time=1000 + i
        )
        services.run_log_batch(
            actor=bob,
            run=run,
            metrics=[services.MetricPoint(k, v, 1, 0) for k, v in metrics.items()],
            params=params,
            tags=tags,
        )
        made[name] = run
    return made


def names(text: str) -> list[str]:
    return sorted(Run.objects.filter(filter_to_q(text)).values_list("name", flat=True))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["a", "b", "c", "d"]),
        ("metrics.acc > 0.75", ["b", "c"]),
        ("metrics.acc >= 0.8", ["b", "c"]),
        ("metrics.acc < 0.8", ["a"]),
        ("metrics.acc <= 0.8", ["a", "c"]),
        ("metrics.acc = 0.9", ["b"]),
        ("metrics.acc != 0.9", ["a", "c"]),
        ("metrics.`f1 score` > 0.6", ["c"]),
        ('metrics."f1 score" < 0.6', ["a"]),
        ("params.lr = '0.1'", ["a", "c"]),
        ("params.lr != '0.1'", ["b", "d"]),
        ("param.algo LIKE 'g%'", ["a", "b"]),
        ("params.algo LIKE 'G%'", []),
        ("params.algo ILIKE 'G%'", ["a", "b"]),
        ("params.algo LIKE '_in'", ["c"]),
        ("params.algo IN ('rf', 'lin')", ["c", "d"]),
        ("params.algo NOT IN ('rf', 'lin')", ["a", "b"]),
        ("tags.team = 'x'", ["a"]),
        ("tags.team ILIKE 'x'", ["a", "c"]),
        ("tags.team = 'it\\'s'", ["d"]),
        ("attributes.run_name = 'b'", ["b"]),
        ("run_name IN ('a', 'd')", ["a", "d"]),
        ("attributes.status = 'RUNNING'", ["a", "b", "c", "d"]),
        ("attributes.start_time >= 1002", ["c", "d"]),
        ("metrics.acc > 0.85 OR params.algo = 'rf'", ["b", "d"]),
        ("metrics.acc > 0.85 or params.algo = 'rf'", ["b", "d"]),
        ("params.lr = '0.1' AND (metrics.acc > 0.75 OR tags.team = 'x')", ["a", "c"]),
        ("(params.algo = 'gbm' OR params.algo = 'lin') AND metrics.acc < 0.85", ["a", "c"]),
        ("params.algo = 'gbm' OR params.algo = 'lin' AND metrics.acc < 0.85", ["a", "b", "c"]),
        ("((metrics.acc > 0.85))", ["b"]),
        # Injection attempts are values like any other.
        ("params.algo = 'gbm\\' OR \\'1\\'=\\'1'", []),
        ('tags.team = "x\\" OR 1=1 --"', []),
        ("tags.`team; DROP TABLE experiments_run` = 'x'", []),
    ],
)
def test_filter(runs: dict[str, Run], text: str, expected: list[str]) -> None:
    assert names(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "metrics.acc > '0.5'",
        "params.lr > '0.1'",
        "params.lr = 0.1",
        "metrics.acc LIKE 'x'",
        "metrics.acc IN (1, 2)",
        "foo.bar = 'x'",
        "attributes.nope = 'x'",
        "metrics.acc >",
        "(metrics.acc > 1",
        "metrics.acc > 1)",
        "metrics.acc > 1 AND",
        "OR metrics.acc > 1",
        "params.lr = '0.1'; DROP TABLE experiments_run",
        "params.lr = '0.1' -- comment",
        "params.lr = '0.1'' OR ''1''=''1'",
        "params.algo = 'x'' OR 1=1 --'",
        "params.algo LIKE '%'' OR ''1''=''1'",
        "params.lr = '0.1' /* x */",
        "1 = 1",
        "params.x = 'a' OR",
        "x" * 6000,
    ],
)
def test_bad_filters_are_invalid_parameter_values(runs: dict[str, Run], text: str) -> None:
    with pytest.raises(MlflowError) as caught:
        names(text)
    assert caught.value.code == "INVALID_PARAMETER_VALUE"


def test_like_patterns_escape_regex_characters() -> None:
    assert like_to_regex("a.b%") == "^a\\.b.*$"
    assert like_to_regex("(x)_") == "^\\(x\\).$"


def test_order_by_metric_param_attribute(runs: dict[str, Run]) -> None:
    def order(*clauses: str) -> list[str]:
        return [r.name for r in apply_order(Run.objects.all(), list(clauses))]

    assert order("metrics.acc DESC") == ["b", "c", "a", "d"]  # missing last
    assert order("metrics.acc ASC") == ["a", "c", "b", "d"]
    # Ties (a and c share lr) fall back to the newest first.
    assert order("params.lr") == ["b", "c", "a", "d"]
    assert order("attributes.run_name DESC") == ["d", "c", "b", "a"]
    assert order("start_time") == ["a", "b", "c", "d"]
    assert order() == ["d", "c", "b", "a"]
    with pytest.raises(MlflowError):
        order("metrics.acc SIDEWAYS")
