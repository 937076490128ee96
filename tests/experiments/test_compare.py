"""The comparison page of runs: access, selection, downsampling, params that
differ, baseline deltas, the charter's threshold, CSV, and flat query counts."""

from __future__ import annotations

import csv
import io
import math
import random
from typing import Any

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from experiments import comparison as cmp
from experiments import services
from experiments.models import Experiment, MetricKey, Run
from experiments.services import MetricPoint

pytestmark = pytest.mark.django_db


def _run(
    actor: Any,
    experiment: Experiment,
    name: str,
    params: dict[str, str],
    metrics: dict[str, list[float]],
) -> Run:
    run = services.run_create(actor=actor, experiment=experiment, run_name=name)
    points = [
        MetricPoint(key=key, value=value, timestamp=1_700_000_000_000 + step, step=step)
        for key, values in metrics.items()
        for step, value in enumerate(values)
    ]
    for start in range(0, max(len(points), 1), 900):
        services.run_log_batch(
            actor=actor,
            run=run,
            metrics=points[start : start + 900],
            params=params if start == 0 else {},
            tags={},
        )
    return run


@pytest.fixture
def experiment(project: Any, bob: Any) -> Experiment:
    return services.experiment_create(actor=bob, project=project, name="churn-gbm")


@pytest.fixture
def three(experiment: Experiment, bob: Any) -> list[Run]:
    return [
        _run(
            bob,
            experiment,
            "gbm-a",
            {"lr": "0.1", "depth": "3", "seed": "7"},
            {"roc_auc": [0.70, 0.78, 0.85], "loss": [0.9, 0.5, 0.4]},
        ),
        _run(
            bob,
            experiment,
            "gbm-b",
            {"lr": "0.3", "depth": "3", "seed": "7"},
            {"roc_auc": [0.60, 0.72, 0.75], "loss": [1.0, 0.8, 0.6]},
        ),
        _run(
            bob,
            experiment,
            "lin",
            {"lr": "0.3", "depth": "5", "seed": "7"},
            {"roc_auc": [0.65, 0.81, 0.80], "loss": [1.1, 0.7, 0.7]},
        ),
    ]


def _url(project: Any, runs: list[Run], **extra: str) -> str:
    query = QueryDict(mutable=True)
    query["runs"] = ",".join(r.uuid for r in runs)
    for key, value in extra.items():
        query[key] = value
    return reverse("experiments:compare", args=[project.slug]) + "?" + query.urlencode()


# --- access ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "status"),
    [("alice", 200), ("bob", 200), ("carol", 200), ("charlie", 404), ("admin_user", 200)],
)
def test_who_may_compare(
    request: Any, client_for: Any, project: Any, three: list[Run], who: str, status: int
) -> None:
    client = client_for(request.getfixturevalue(who))
    page = client.get(_url(project, three))
    assert page.status_code == status
    csv_url = reverse("experiments:compare_csv", args=[project.slug]) + f"?runs={three[0].uuid}"
    assert client.get(csv_url).status_code == status
    chart = reverse("experiments:compare_chart", args=[project.slug])
    answer = client.get(f"{chart}?runs={three[0].uuid}&metric=roc_auc")
    assert answer.status_code == status
    if status == 200:
        assert "gbm-a" in page.content.decode()


def test_read_only_member_sees_no_write_controls(
    client_for: Any, project: Any, three: list[Run], carol: Any
) -> None:
    # The page only reads: there is no form that posts.
    page = client_for(carol).get(_url(project, three)).content.decode()
    assert 'method="post"' not in page.split("<main>")[1]


def test_anonymous_is_sent_to_login(client: Any, project: Any, three: list[Run]) -> None:
    response = client.get(_url(project, three))
    assert response.status_code == 302 and "login" in response["Location"]


def test_runs_of_another_project_are_not_shown(
    client_for: Any, project: Any, three: list[Run], charlie: Any
) -> None:
    from tests.factories import MembershipFactory, ProjectFactory

    other = ProjectFactory(name="Other", slug="other", created_by=charlie)
    MembershipFactory(project=other, user=charlie, role="lead")
    page = client_for(charlie).get(_url(other, three))
    assert page.status_code == 200
    body = page.content.decode()
    assert "gbm-a" not in body
    assert "3 chosen runs are not in this project" in body


# --- selection and bad input ------------------------------------------------------


def test_filter_selects_matching_runs(
    client_for: Any, project: Any, experiment: Experiment, three: list[Run], bob: Any
) -> None:
    url = reverse("experiments:compare", args=[project.slug])
    page = client_for(bob).get(url, {"experiment": experiment.pk, "filter": "params.lr = '0.3'"})
    body = page.content.decode()
    assert page.status_code == 200
    assert "2 runs compared" in body
    assert "gbm-b" in body and "lin" in body and "gbm-a" not in body


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"experiment": "1", "filter": "params.lr = "}, "Error on parsing filter"),
        ({"experiment": "1", "filter": "metrics.auc > 'x'"}, ""),
        ({"experiment": "abc"}, "is not an experiment id"),
        ({"experiment": "999999"}, "No such experiment in this project."),
        ({"runs": "not-a-run"}, "is not a run id"),
        ({"filter": "params.a = '1'"}, "Choose an experiment for the filter."),
    ],
)
def test_bad_selection_is_a_message_not_a_500(
    client_for: Any,
    project: Any,
    experiment: Experiment,
    three: list[Run],
    bob: Any,
    query: dict[str, str],
    message: str,
) -> None:
    query = {k: (str(experiment.pk) if v == "1" else v) for k, v in query.items()}
    client = client_for(bob)
    page = client.get(reverse("experiments:compare", args=[project.slug]), query)
    assert page.status_code == 400
    body = page.content.decode()
    assert 'role="alert"' in body
    assert message in body
    csv_answer = client.get(reverse("experiments:compare_csv", args=[project.slug]), query)
    assert csv_answer.status_code == 400 and csv_answer.content
    chart = client.get(
        reverse("experiments:compare_chart", args=[project.slug]), {**query, "metric": "loss"}
    )
    assert chart.status_code == 400 and chart.json()["error"]


def test_too_many_runs_chosen_is_refused(client_for: Any, project: Any, bob: Any) -> None:
    ids = ",".join(f"{i:032x}" for i in range(cmp.MAX_RUNS + 1))
    page = client_for(bob).get(reverse("experiments:compare", args=[project.slug]), {"runs": ids})
    assert page.status_code == 400
    assert f"At most {cmp.MAX_RUNS} runs can be compared; {cmp.MAX_RUNS + 1} were chosen." in (
        page.content.decode()
    )


def test_matches_beyond_the_cap_are_said(
    client_for: Any,
    project: Any,
    experiment: Experiment,
    three: list[Run],
    bob: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cmp, "MAX_RUNS", 2)
    page = client_for(bob).get(
        reverse("experiments:compare", args=[project.slug]), {"experiment": experiment.pk}
    )
    body = page.content.decode()
    assert "2 runs compared" in body
    assert "only the newest 2 are compared" in body


def test_chart_of_unknown_metric_and_bad_numbers(
    client_for: Any, project: Any, three: list[Run], bob: Any
) -> None:
    client = client_for(bob)
    chart = reverse("experiments:compare_chart", args=[project.slug])
    base = {"runs": three[0].uuid}
    assert client.get(chart, {**base, "metric": "nope"}).json()["error"] == (
        "No run here has a metric “nope”."
    )
    answer = client.get(chart, {**base, "metric": "loss", "smoothing": "2"})
    assert answer.status_code == 400
    assert answer.json()["error"] == "Smoothing must be a number from 0 to 0.99."
    answer = client.get(chart, {**base, "metric": "loss", "points": "-5"})
    assert answer.status_code == 400


# --- what the page shows ---------------------------------------------------------


def test_only_what_differs_by_default(
    client_for: Any, project: Any, three: list[Run], bob: Any
) -> None:
    client = client_for(bob)
    body = client.get(_url(project, three)).content.decode()
    params = body.split('class="compare-params"')[1].split("</table>")[0]
    assert "<th>lr</th>" in params and "<th>depth</th>" in params
    assert "<th>seed</th>" not in params
    assert "1 the same in every run hidden" in body
    everything = client.get(_url(project, three, params="all")).content.decode()
    params = everything.split('class="compare-params"')[1].split("</table>")[0]
    assert "<th>seed</th>" in params


def test_params_differing_counts_a_missing_param() -> None:
    a = cmp.RunRow(pk=1, uuid="a", name="a", status="FINISHED", experiment="e", params={"x": "1"})
    b = cmp.RunRow(pk=2, uuid="b", name="b", status="FINISHED", experiment="e", params={})
    c = cmp.RunRow(
        pk=3, uuid="c", name="c", status="FINISHED", experiment="e", params={"x": "1", "y": "2"}
    )
    assert cmp.params_differing([a, c], ["x", "y"]) == ["y"]
    assert cmp.params_differing([a, b], ["x"]) == ["x"]
    assert cmp.params_differing([a], ["x"]) == []


def test_summary_columns_last_min_max(
    client_for: Any, project: Any, three: list[Run], bob: Any
) -> None:
    body = client_for(bob).get(_url(project, three)).content.decode()
    row = body.split(f'data-run="{three[1].uuid}"')[1].split("</tr>")[0]
    # loss of gbm-b: last 0.6, min 0.6, max 1; roc_auc: last 0.75, min 0.6, max 0.75
    assert "<td>0.6</td><td>1</td>" in row
    assert "0.75 ✗</td><td>0.6</td><td>0.75</td>" in row


def test_charter_threshold_marks_each_run(
    client_for: Any, project: Any, three: list[Run], bob: Any
) -> None:
    # The project's signed-off charter: roc_auc >= 0.8, higher is better.
    body = client_for(bob).get(_url(project, three)).content.decode()
    assert "Success metric <code>roc_auc</code> ≥ 0.8" in body
    assert "2 runs meet it, 1 does not." in body
    assert f'data-run="{three[0].uuid}"' in body
    first = body.split(f'data-run="{three[0].uuid}"')[1].split("</tr>")[0]
    assert 'class="meets"' in first and "0.85 ✓" in first
    second = body.split(f'data-run="{three[1].uuid}"')[1].split("</tr>")[0]
    assert 'class="misses"' in second and "0.75 ✗" in second


def test_charter_direction_lower(project: Any) -> None:
    assert cmp.meets_threshold(0.2, 0.3, "lower") is True
    assert cmp.meets_threshold(0.4, 0.3, "lower") is False
    assert cmp.meets_threshold(0.3, 0.3, "lower") is True
    assert cmp.meets_threshold(0.3, 0.3, "higher") is True
    assert cmp.meets_threshold(0.29, 0.3, "higher") is False
    assert cmp.meets_threshold(math.nan, 0.3, "higher") is None
    assert cmp.meets_threshold(None, 0.3, "higher") is None


def test_charter_threshold_drawn_on_its_chart(
    client_for: Any, project: Any, three: list[Run], bob: Any
) -> None:
    chart = reverse("experiments:compare_chart", args=[project.slug])
    ids = ",".join(r.uuid for r in three)
    figure = client_for(bob).get(chart, {"runs": ids, "metric": "roc_auc"}).json()
    assert figure["layout"]["shapes"][0]["y0"] == 0.8
    assert figure["layout"]["annotations"][0]["text"] == "Charter: roc_auc ≥ 0.8"
    assert {t["name"] for t in figure["data"]} == {"gbm-a", "gbm-b", "lin"}
    other = client_for(bob).get(chart, {"runs": ids, "metric": "loss"}).json()
    assert "shapes" not in other["layout"]


def test_baseline_chosen_gives_deltas(
    client_for: Any, project: Any, three: list[Run], bob: Any
) -> None:
    body = client_for(bob).get(_url(project, three, baseline=three[1].uuid)).content.decode()
    assert "<th>Δ</th>" in body
    first = body.split(f'data-run="{three[0].uuid}"')[1].split("</tr>")[0]
    # loss 0.4 - 0.6 = -0.2; roc_auc 0.85 - 0.75 = +0.1
    assert "<td>-0.2</td>" in first and "<td>+0.1</td>" in first
    base = body.split(f'data-run="{three[1].uuid}"')[1].split("</tr>")[0]
    assert "baseline" in base


def test_champion_is_the_default_baseline(
    client_for: Any, project: Any, three: list[Run], bob: Any
) -> None:
    model = services.registered_model_create(actor=bob, project=project, name="churn")
    version = services.model_version_create(
        actor=bob, model=model, source=f"runs:/{three[2].uuid}/model", run=three[2]
    )
    services.alias_set(actor=bob, version=version, alias="champion")
    # The champion's run is the baseline even when it is not among the chosen runs.
    body = client_for(bob).get(_url(project, three[:2])).content.decode()
    assert "(the run of the champion model)" in body
    first = body.split(f'data-run="{three[0].uuid}"')[1].split("</tr>")[0]
    # loss 0.4 - 0.7 = -0.3; roc_auc 0.85 - 0.80 = +0.05
    assert "<td>-0.3</td>" in first and "<td>+0.05</td>" in first
    chart = reverse("experiments:compare_chart", args=[project.slug])
    ids = ",".join(r.uuid for r in three[:2])
    figure = client_for(bob).get(chart, {"runs": ids, "metric": "loss"}).json()
    dashed = [t for t in figure["data"] if t.get("line", {}).get("dash") == "dash"]
    assert [t["name"] for t in dashed] == ["lin (baseline)"]


def test_baseline_of_another_project_is_refused(
    client_for: Any, project: Any, three: list[Run], bob: Any
) -> None:
    page = client_for(bob).get(_url(project, three, baseline="f" * 32))
    assert page.status_code == 400
    assert "The baseline run is not in this project." in page.content.decode()


def test_csv_has_runs_params_and_summaries(
    client_for: Any, project: Any, three: list[Run], bob: Any
) -> None:
    url = reverse("experiments:compare_csv", args=[project.slug])
    answer = client_for(bob).get(url, {"runs": ",".join(r.uuid for r in three)})
    assert answer["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(answer.content.decode())))
    assert rows[0] == [
        "run", "name", "experiment", "status", "params.depth", "params.lr", "params.seed",
        "metrics.loss.last", "metrics.loss.min", "metrics.loss.max",
        "metrics.roc_auc.last", "metrics.roc_auc.min", "metrics.roc_auc.max",
    ]  # fmt: skip
    by_name = {row[1]: row for row in rows[1:]}
    assert by_name["gbm-b"] == [
        three[1].uuid, "gbm-b", "churn-gbm", "RUNNING", "3", "0.3", "7",
        "0.6", "0.6", "1", "0.75", "0.6", "0.75",
    ]  # fmt: skip
    assert len(rows) == 4


def test_csv_cells_are_not_formulas(
    client_for: Any, project: Any, experiment: Experiment, bob: Any
) -> None:
    run = _run(bob, experiment, "=HYPERLINK(1)", {"note": "-2+3"}, {"m": [-1.5]})
    url = reverse("experiments:compare_csv", args=[project.slug])
    rows = list(csv.reader(io.StringIO(client_for(bob).get(url, {"runs": run.uuid}).text)))
    assert rows[1][1] == "'=HYPERLINK(1)"
    assert rows[1][4] == "'-2+3"
    assert rows[1][5:8] == ["-1.5", "-1.5", "-1.5"]


# --- downsampling and smoothing ----------------------------------------------------


def test_minmax_reference_on_a_known_series() -> None:
    steps = list(range(10))
    values = [5.0, 1.0, 3.0, 9.0, 2.0, 2.0, 8.0, 0.0, 4.0, 6.0]
    # 4 points: 2 buckets of steps 0-4 and 5-9, each its lowest and highest
    assert cmp.downsample_minmax(steps, values, 4) == [(1, 1.0), (3, 9.0), (6, 8.0), (7, 0.0)]
    assert cmp.downsample_minmax(steps, values, 10) == list(zip(steps, values, strict=True))


def test_sql_downsampling_matches_the_reference_and_its_bounds(
    project: Any, experiment: Experiment, bob: Any
) -> None:
    rng = random.Random(3)
    long = [rng.gauss(0, 1) for _ in range(3000)]
    long[1234] = 50.0  # a spike must survive downsampling
    long[2345] = -50.0
    long[10] = math.nan
    short = [float(i) for i in range(30)]
    a = _run(bob, experiment, "long", {}, {"x": long})
    b = _run(bob, experiment, "short", {}, {"x": short})
    key = MetricKey.objects.get(name="x").pk
    for points in (100, 1000):
        series = cmp.metric_series(key_id=key, run_pks=[a.pk, b.pk], points=points)
        assert len(series[a.pk]) <= points
        reference = cmp.downsample_minmax(list(range(3000)), long, points)
        assert [s for s, _ in series[a.pk]] == [s for s, _ in reference]
        assert (1234, 50.0) in series[a.pk] and (2345, -50.0) in series[a.pk]
        assert series[b.pk] == list(enumerate(short))


def test_chart_never_ships_more_than_the_cap(
    client_for: Any, project: Any, experiment: Experiment, bob: Any
) -> None:
    run = _run(bob, experiment, "long", {}, {"x": [math.sin(i / 50) for i in range(5000)]})
    chart = reverse("experiments:compare_chart", args=[project.slug])
    figure = client_for(bob).get(chart, {"runs": run.uuid, "metric": "x"}).json()
    assert figure["points_per_series"] == cmp.MAX_POINTS
    assert 900 <= len(figure["data"][0]["x"]) <= cmp.MAX_POINTS
    figure = client_for(bob).get(chart, {"runs": run.uuid, "metric": "x", "points": "200"}).json()
    assert len(figure["data"][0]["x"]) <= 200


def test_points_per_series_shrinks_with_many_runs() -> None:
    assert cmp.points_per_series(1) == cmp.MAX_POINTS
    assert cmp.points_per_series(500) == cmp.CHART_POINT_BUDGET // 500
    assert cmp.points_per_series(100_000) == cmp.MIN_POINTS
    assert cmp.points_per_series(1, 120) == 120


def test_ema() -> None:
    assert cmp.ema([1.0, 2.0, 3.0], 0.0) == [1.0, 2.0, 3.0]
    smoothed = cmp.ema([0.0, 10.0, 10.0], 0.5)
    assert smoothed[0] == 0.0
    assert smoothed[1] == pytest.approx((0.5 * 0 * 0.5 + 0.5 * 10) / (1 - 0.25))
    assert cmp.ema([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])
    assert math.isnan(cmp.ema([1.0, math.nan, 1.0], 0.5)[1])


def test_smoothing_applies_to_the_chart(
    client_for: Any, project: Any, three: list[Run], bob: Any
) -> None:
    chart = reverse("experiments:compare_chart", args=[project.slug])
    raw = client_for(bob).get(chart, {"runs": three[0].uuid, "metric": "loss"}).json()
    smooth = (
        client_for(bob)
        .get(chart, {"runs": three[0].uuid, "metric": "loss", "smoothing": "0.5"})
        .json()
    )
    assert raw["data"][0]["y"] == [0.9, 0.5, 0.4]
    assert smooth["data"][0]["y"] == pytest.approx(cmp.ema([0.9, 0.5, 0.4], 0.5))


def test_grouping_gives_mean_and_std_bands(
    client_for: Any, project: Any, three: list[Run], bob: Any
) -> None:
    chart = reverse("experiments:compare_chart", args=[project.slug])
    ids = ",".join(r.uuid for r in three)
    figure = client_for(bob).get(chart, {"runs": ids, "metric": "loss", "group": "lr"}).json()
    means = {t["name"]: t for t in figure["data"] if "name" in t}
    assert set(means) == {"lr=0.1 (1 runs)", "lr=0.3 (2 runs)"}
    pair = means["lr=0.3 (2 runs)"]
    assert pair["x"] == [0, 1, 2]
    assert pair["y"] == pytest.approx([1.05, 0.75, 0.65])
    bands = [t for t in figure["data"] if t.get("fill") == "tonexty"]
    assert len(bands) == 2
    upper = figure["data"][[t.get("name") for t in figure["data"]].index(pair["name"]) - 2]
    assert upper["y"] == pytest.approx([1.1, 0.8, 0.7])


def test_parallel_and_scatter_figures(
    client_for: Any, project: Any, three: list[Run], bob: Any
) -> None:
    found = cmp.comparison_load(
        project=project, selection=cmp.Selection(run_ids=tuple(r.uuid for r in three))
    )
    parallel = cmp.parallel_figure(found, ["params.lr", "params.depth", "metrics.roc_auc"])
    assert parallel is not None
    dims = parallel["data"][0]["dimensions"]
    assert [d["label"] for d in dims] == ["lr", "depth", "roc_auc"]
    order = [r.name for r in found.runs]
    assert dims[0]["values"] == [{"gbm-a": 0.1, "gbm-b": 0.3, "lin": 0.3}[n] for n in order]
    scatter = cmp.scatter_figure(found, "lr", "roc_auc", cmp.charter_target(found))
    assert scatter is not None
    assert sorted(scatter["data"][0]["x"]) == [0.1, 0.3, 0.3]
    assert scatter["layout"]["shapes"][0]["y0"] == 0.8


# --- queries do not grow with runs --------------------------------------------------


def _count(client: Any, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_query_counts_do_not_grow_with_runs(
    client_for: Any, project: Any, experiment: Experiment, bob: Any, django_assert_num_queries: Any
) -> None:
    client = client_for(bob)
    metrics = {f"m{i}": [float(s) for s in range(5)] for i in range(4)}
    runs = [_run(bob, experiment, f"r{i}", {"lr": str(i)}, metrics) for i in range(3)]
    urls = [
        lambda rs: _url(project, rs, baseline=rs[0].uuid),
        lambda rs: (
            reverse("experiments:compare", args=[project.slug])
            + f"?experiment={experiment.pk}&filter=params.lr+LIKE+'%25'"
        ),
        lambda rs: (
            reverse("experiments:compare_csv", args=[project.slug])
            + "?runs="
            + ",".join(r.uuid for r in rs)
        ),
        lambda rs: (
            reverse("experiments:compare_chart", args=[project.slug])
            + "?metric=m1&group=lr&runs="
            + ",".join(r.uuid for r in rs)
        ),
    ]
    few = [_count(client, make(runs)) for make in urls]
    runs += [_run(bob, experiment, f"r{i}", {"lr": str(i)}, metrics) for i in range(3, 60)]
    for make, expected in zip(urls, few, strict=True):
        with django_assert_num_queries(expected):
            assert client.get(make(runs)).status_code == 200


def test_without_a_selection_the_page_offers_the_experiments(
    client_for: Any, project: Any, experiment: Experiment, three: list[Run], bob: Any
) -> None:
    page = client_for(bob).get(reverse("experiments:compare", args=[project.slug]))
    assert page.status_code == 200
    body = page.content.decode()
    assert f'<option value="{experiment.pk}">churn-gbm</option>' in body
    assert "No runs match." in body
