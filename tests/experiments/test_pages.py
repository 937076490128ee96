"""The experiments and registry pages: who sees them, the runs table's
filter, sort, columns and paging, query counts flat in the number of runs,
the artifacts browser's paths, and lineage from a run to its snapshot and
from a snapshot to its runs and models."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from datasets.models import DataSource, Snapshot, Split, SplitStatus
from experiments import services
from experiments.artifacts import ArtifactStore
from experiments.models import Experiment, Run
from experiments.page_selectors import MAX_POINTS, run_artifact_root

pytestmark = pytest.mark.django_db

DIGEST = "ab" * 32


def log_run(
    actor: Any,
    experiment: Experiment,
    name: str,
    *,
    metrics: dict[str, list[float]] | None = None,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
) -> Run:
    run = services.run_create(actor=actor, experiment=experiment, run_name=name)
    points = [
        services.MetricPoint(key, value, 1000 + step, step)
        for key, values in (metrics or {}).items()
        for step, value in enumerate(values)
    ]
    for start in range(0, max(len(points), 1), 1000):
        services.run_log_batch(
            actor=actor,
            run=run,
            metrics=points[start : start + 1000],
            params=(params or {}) if start == 0 else {},
            tags=(tags or {}) if start == 0 else {},
        )
    return run


@pytest.fixture
def experiment(project: Any, bob: Any) -> Experiment:
    return services.experiment_create(actor=bob, project=project, name="baseline")


@pytest.fixture
def snapshot(project: Any) -> Snapshot:
    source = DataSource.objects.create(project=project, name="crm", kind="upload")
    return Snapshot.objects.create(
        source=source,
        version=1,
        sha256=DIGEST,
        size=10,
        data_format="csv",
        rows=1,
        storage_key="k",
    )


@pytest.fixture
def run(bob: Any, experiment: Experiment, snapshot: Snapshot) -> Run:
    run = log_run(
        bob,
        experiment,
        "gbm",
        metrics={"auc": [0.6, 0.7, 0.8], "loss": [0.5]},
        params={"lr": "0.1"},
        tags={"team": "retention"},
    )
    services.run_log_inputs(
        actor=bob,
        run=run,
        datasets=[
            {"name": "crm", "digest": DIGEST, "source_type": "stagegate", "source": "crm"},
            {"name": "other", "digest": "cd" * 32, "source_type": "local", "source": "x.csv"},
        ],
    )
    root = run_artifact_root(run)
    assert root is not None
    store = ArtifactStore(experiment.project.pk)
    store.write(f"{root}/notes/readme.txt", io.BytesIO(b"hello <b>world</b>"), 1 << 20)
    store.write(f"{root}/model.bin", io.BytesIO(b"\x00\x01binary"), 1 << 20)
    return run


@pytest.fixture
def champion(bob: Any, project: Any, run: Run) -> Any:
    model = services.registered_model_create(actor=bob, project=project, name="churn")
    version = services.model_version_create(actor=bob, model=model, source=f"runs:/{run.uuid}/m")
    services.alias_set(actor=bob, version=version, alias="champion")
    return version


def urls(project: Any, run: Run, snapshot: Snapshot) -> list[str]:
    p = f"/projects/{project.slug}"
    return [
        "/experiments/",
        f"{p}/experiments/",
        f"{p}/experiments/{run.experiment_id}/",
        f"{p}/runs/{run.uuid}/",
        f"{p}/runs/{run.uuid}/artifact/?path=notes/readme.txt",
        f"{p}/models/",
        f"{p}/models/churn/",
        f"{p}/models/churn/v1/",
        f"{p}/data/{snapshot.source_id}/v{snapshot.version}/runs/",
    ]


def test_members_read_only_members_and_admins_see_every_page_outsiders_get_404(
    client_for: Any,
    project: Any,
    bob: Any,
    carol: Any,
    charlie: Any,
    admin_user: Any,
    run: Run,
    snapshot: Snapshot,
    champion: Any,
) -> None:
    for user, expected in [(bob, 200), (carol, 200), (admin_user, 200), (charlie, 404)]:
        client = client_for(user)
        for url in urls(project, run, snapshot)[1:]:
            assert client.get(url).status_code == expected, (user.username, url)
    # The home page lists only the user's own projects.
    assert "Churn" in client_for(bob).get("/experiments/").content.decode()
    assert "Churn" not in client_for(charlie).get("/experiments/").content.decode()


def test_anonymous_visitors_are_sent_to_sign_in(
    client: Any, project: Any, run: Run, snapshot: Snapshot, champion: Any
) -> None:
    for url in urls(project, run, snapshot):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


def test_pages_of_another_project_are_404(
    client_for: Any, project: Any, bob: Any, charlie: Any, run: Run
) -> None:
    from projects.services import project_create

    other = project_create(
        actor=charlie, name="Other", slug="other", description="", monthly_budget=1
    )
    client = client_for(charlie)
    assert client.get(f"/projects/{other.slug}/runs/{run.uuid}/").status_code == 404
    assert client.get(f"/projects/{other.slug}/experiments/{run.experiment_id}/").status_code == 404


def test_home_and_list_show_counts_tracking_uri_and_a_teaching_empty_state(
    client_for: Any, project: Any, bob: Any, run: Run, champion: Any
) -> None:
    client = client_for(bob)
    home = client.get("/experiments/").content.decode()
    assert "1 experiment, 1 registered model" in home
    assert "Open its experiments" in home
    listing = client.get(f"/projects/{project.slug}/experiments/").content.decode()
    assert "baseline" in listing
    assert "http://testserver/mlflow/churn" in listing
    assert re.search(r"<td>1</td>", listing)  # runs of the experiment
    Experiment.objects.all().delete()
    empty = client.get(f"/projects/{project.slug}/experiments/").content.decode()
    assert "No experiments yet." in empty
    assert "mlflow.set_experiment" in empty


def test_project_page_stage_card_links_to_the_experiments(
    client_for: Any, project: Any, bob: Any, run: Run
) -> None:
    page = client_for(bob).get(f"/projects/{project.slug}/").content.decode()
    assert f'href="/projects/{project.slug}/experiments/"' in page
    assert "1 run, 0 model versions" in page
    assert "Register a model version" in page


def runs_page(client: Any, experiment: Experiment, query: str = "") -> str:
    url = f"/projects/{experiment.project.slug}/experiments/{experiment.pk}/?{query}"
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return str(response.content.decode())


def columns(page: str) -> list[str]:
    """The chosen columns of the runs table, as their headers name them."""
    cells = re.findall(r'<th[^>]*class="col-(?:metrics|params)"[^>]*>(.*?)</th>', page)
    return [re.sub(r"<[^>]+>|[▲▼]", "", c).strip() for c in cells]


def run_names(page: str) -> list[str]:
    return re.findall(r'<a href="/projects/churn/runs/[0-9a-f]{32}/">([^<]+)</a>', page)


@pytest.fixture
def many(bob: Any, experiment: Experiment) -> list[Run]:
    return [
        log_run(
            bob,
            experiment,
            f"run-{i:02d}",
            metrics={"acc": [i / 100]},
            params={"lr": str(i % 3), "depth": str(i)},
        )
        for i in range(30)
    ]


def test_filter_uses_the_api_grammar_with_or_and_parentheses(
    client_for: Any, experiment: Experiment, many: list[Run]
) -> None:
    client = client_for(many[0].user)
    page = runs_page(
        client,
        experiment,
        "filter=" + "(metrics.acc >= 0.28 OR params.depth = '3') AND params.lr != '2'",
    )
    assert sorted(run_names(page)) == ["run-03", "run-28"]
    assert "No run matches" in runs_page(client, experiment, "filter=metrics.acc > 5")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("filter=metrics.acc >>> 1", "This filter cannot be used: Error on parsing filter"),
        ("filter=nonsense.acc > 1", "Invalid entity type"),
        ("filter=params.lr > 'x'", "Invalid comparator"),
        ("filter=metrics.acc > 'x'", "Expected numeric value"),
        ("sort=attributes.bogus", "This sort cannot be used: Invalid attribute key"),
    ],
)
def test_a_bad_filter_or_sort_says_why_and_never_fails(
    client_for: Any, bob: Any, experiment: Experiment, many: list[Run], query: str, message: str
) -> None:
    page = runs_page(client_for(bob), experiment, query)
    assert message in page
    assert 'role="alert"' in page


def test_sort_by_metric_and_param_columns_and_paging_keep_each_other(
    client_for: Any, bob: Any, experiment: Experiment, many: list[Run]
) -> None:
    client = client_for(bob)
    by_acc = run_names(runs_page(client, experiment, "sort=metrics.acc&dir=ASC"))
    assert by_acc[:3] == ["run-00", "run-01", "run-02"] and len(by_acc) == 25
    desc = run_names(runs_page(client, experiment, "sort=metrics.acc&dir=DESC"))
    assert desc[0] == "run-29"
    # Params sort as strings, as MLflow's do.
    by_depth = run_names(runs_page(client, experiment, "sort=params.depth&dir=DESC"))
    assert by_depth[:2] == ["run-09", "run-08"]
    # Columns chosen by the user, kept in the query string through sorting and paging.
    page = runs_page(client, experiment, "cols=set&col=params.lr&sort=metrics.acc&dir=ASC")
    assert columns(page) == ["param lr"]
    assert "page=2" in page and "col=params.lr" in page
    next_link = re.search(r'href="\?([^"]*page=2)"', page)
    assert next_link is not None
    second = runs_page(client, experiment, next_link.group(1).replace("&amp;", "&"))
    assert run_names(second) == [f"run-{i:02d}" for i in range(25, 30)]
    assert columns(second) == ["param lr"]
    # Sorting by a header keeps the chosen columns too.
    header = re.search(r'href="\?([^"]*sort=params.lr[^"]*)"', page)
    assert header is not None and "col=params.lr" in header.group(1)
    # A column the runs do not have is dropped, not shown empty.
    assert columns(runs_page(client, experiment, "cols=set&col=params.nothere")) == []
    # By default: the metrics and the first params.
    assert columns(runs_page(client, experiment)) == ["metric acc", "param depth", "param lr"]


def test_compare_selected_goes_to_the_comparison_page_with_the_runs(
    client_for: Any, bob: Any, project: Any, experiment: Experiment, many: list[Run]
) -> None:
    from django.urls import reverse

    a, b = many[0].uuid, many[1].uuid
    url = f"/projects/{project.slug}/experiments/{experiment.pk}/selected/?run={a}&run={b}"
    response = client_for(bob).get(url)
    assert response.status_code == 302
    compare = reverse("experiments:compare", kwargs={"slug": project.slug})
    assert response["Location"] == f"{compare}?runs={a}%2C{b}"
    page = runs_page(client_for(bob), experiment, "filter=metrics.acc >= 0.01")
    assert "Compare selected runs" in page
    assert f"{compare}?experiment={experiment.pk}&amp;filter=metrics.acc" in page
    # Nothing ticked: back to the table.
    nothing = client_for(bob).get(f"/projects/{project.slug}/experiments/{experiment.pk}/selected/")
    assert nothing["Location"] == f"/projects/{project.slug}/experiments/{experiment.pk}/"


def _queries(client: Any, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_query_counts_do_not_grow_with_runs_points_or_versions(
    client_for: Any, bob: Any, project: Any, experiment: Experiment, snapshot: Snapshot
) -> None:
    client = client_for(bob)
    model = services.registered_model_create(actor=bob, project=project, name="churn")

    def add(n: int, start: int) -> Run:
        last = None
        for i in range(start, start + n):
            last = log_run(
                bob,
                experiment,
                f"r{i}",
                metrics={"acc": [0.1 * j for j in range(5)], f"m{i % 4}": [1.0, 2.0]},
                params={"lr": str(i), f"p{i % 4}": "x"},
            )
            services.run_log_inputs(
                actor=bob,
                run=last,
                datasets=[{"name": "d", "digest": DIGEST, "source_type": "s", "source": "s"}],
            )
            services.model_version_create(actor=bob, model=model, source=f"runs:/{last.uuid}/m")
        assert last is not None
        return last

    last = add(2, 0)
    p = f"/projects/{project.slug}"
    pages = [
        "/experiments/",
        f"{p}/experiments/",
        f"{p}/experiments/{experiment.pk}/?sort=metrics.acc&filter=metrics.acc > 0",
        f"{p}/models/",
        f"{p}/models/churn/",
        f"{p}/data/{snapshot.source_id}/v1/runs/",
    ]
    few = {url: _queries(client, url) for url in pages}
    few_run = _queries(client, f"{p}/runs/{last.uuid}/")
    last = add(23, 2)
    services.run_log_batch(
        actor=bob,
        run=last,
        metrics=[services.MetricPoint(f"extra{k}", 1.0, 1, s) for k in range(5) for s in range(50)],
        params={},
        tags={},
    )
    many = {url: _queries(client, url) for url in pages}
    assert many == few
    assert _queries(client, f"{p}/runs/{last.uuid}/") == few_run


def test_metric_history_is_downsampled_to_at_most_a_thousand_points(
    client_for: Any, bob: Any, experiment: Experiment
) -> None:
    run = log_run(bob, experiment, "long", metrics={"loss": [1 / (i + 1) for i in range(4500)]})
    page = client_for(bob).get(f"/projects/churn/runs/{run.uuid}/").content.decode()
    data = re.search(r'<script id="metric-0-data" type="application/json">(.*?)</script>', page)
    assert data is not None
    import json

    figure = json.loads(data.group(1))
    xs = figure["data"][0]["x"]
    assert len(xs) <= MAX_POINTS and len(xs) >= MAX_POINTS * 0.8
    assert xs[0] == 0 and xs == sorted(xs)
    assert "of 4500 points shown" in page


def test_run_page_shows_status_in_words_params_tags_metrics_and_chart(
    client_for: Any, bob: Any, run: Run
) -> None:
    services.run_log_batch(
        actor=bob,
        run=run,
        metrics=[services.MetricPoint("odd", float("nan"), 1, 0)],
        params={},
        tags={},
    )
    services.run_update(
        actor=bob, run=run, status="FAILED", end_time=(run.start_time or 0) + 61_000
    )
    page = client_for(bob).get(f"/projects/churn/runs/{run.uuid}/").content.decode()
    assert "Failed" in page and "FAILED" not in page
    assert "1 min 1 s" in page
    assert ">lr<" in page and ">0.1<" in page
    assert ">team<" in page and "retention" in page
    assert "mlflow.runName" not in page
    assert 'data-figure="metric-0-data"' in page  # auc has a history
    assert "vendor/plotly/plotly.min.js" in page
    assert ">0.8<" in page  # auc's latest value


def test_artifacts_browse_view_text_and_download(
    client_for: Any, bob: Any, project: Any, run: Run
) -> None:
    client = client_for(bob)
    base = f"/projects/{project.slug}/runs/{run.uuid}/"
    page = client.get(base).content.decode()
    assert "notes/" in page and "model.bin" in page
    inside = client.get(f"{base}?path=notes").content.decode()
    assert "readme.txt" in inside
    partial = client.get(f"{base}?path=notes&part=artifacts", headers={"HX-Request": "true"})
    assert partial.status_code == 200 and "<html" not in partial.content.decode()
    assert "readme.txt" in partial.content.decode()
    text = client.get(f"{base}artifact/?path=notes/readme.txt").content.decode()
    assert "hello &lt;b&gt;world&lt;/b&gt;" in text
    binary = client.get(f"{base}artifact/?path=model.bin")
    assert binary["Content-Disposition"].startswith("attachment")
    assert b"".join(binary.streaming_content) == b"\x00\x01binary"
    download = client.get(f"{base}artifact/?path=notes/readme.txt&download=1")
    assert b"".join(download.streaming_content) == b"hello <b>world</b>"
    assert client.get(f"{base}artifact/?path=notes/missing.txt").status_code == 404


@pytest.mark.parametrize(
    "path", ["../../secret.txt", "/etc/passwd", "notes/../../x", "%2e%2e/x", "..\\x", "a:/b"]
)
def test_artifact_paths_that_could_escape_are_refused_with_a_reason(
    client_for: Any, bob: Any, project: Any, run: Run, storage: Any, path: str
) -> None:
    (storage / "secret.txt").parent.mkdir(parents=True, exist_ok=True)
    (storage / "secret.txt").write_text("secret")
    client = client_for(bob)
    base = f"/projects/{project.slug}/runs/{run.uuid}/"
    response = client.get(f"{base}artifact/", {"path": path})
    assert response.status_code == 400
    body = response.content.decode()
    assert "This path cannot be shown: Invalid artifact path" in body
    assert "secret" not in body.replace("secret.txt", "")
    listing = client.get(base, {"path": path})
    assert listing.status_code == 200
    assert "This path cannot be shown" in listing.content.decode()


def test_lineage_from_run_to_snapshot_split_and_model_and_back(
    client_for: Any, bob: Any, carol: Any, project: Any, run: Run, snapshot: Snapshot, champion: Any
) -> None:
    split = Split.objects.create(
        parent=snapshot, number=2, test_fraction=0.2, seed=1, status=SplitStatus.READY
    )
    services.run_log_batch(
        actor=bob,
        run=run,
        metrics=[],
        params={},
        tags={"stagegate.split": f"{snapshot.source_id}/v1/{split.number}"},
    )
    snap_url = f"/projects/{project.slug}/data/{snapshot.source_id}/v1/"
    page = client_for(carol).get(f"/projects/{project.slug}/runs/{run.uuid}/").content.decode()
    assert f'<a href="{snap_url}">crm v1</a>' in page
    assert "not a snapshot of this project" in page  # the other input
    assert f'href="{snap_url}#splits">split 2 of crm v1</a>' in page
    assert "churn version 1</a>" in page and "@champion" in page
    # Registry pages name the run and the snapshot.
    model = client_for(carol).get(f"/projects/{project.slug}/models/churn/").content.decode()
    assert f"/projects/{project.slug}/runs/{run.uuid}/" in model and snap_url in model
    assert "@champion" in model
    version = client_for(carol).get(f"/projects/{project.slug}/models/churn/v1/").content.decode()
    assert ">gbm</a>" in version and snap_url in version
    assert "models:/churn@champion" in version
    models = client_for(carol).get(f"/projects/{project.slug}/models/").content.decode()
    assert "@champion → v1" in models
    # And back: the snapshot page loads the runs that used it.
    snap_page = client_for(carol).get(snap_url).content.decode()
    assert f'hx-get="{snap_url}runs/"' in snap_page
    used = client_for(carol).get(f"{snap_url}runs/", headers={"HX-Request": "true"})
    body = used.content.decode()
    assert "<html" not in body and ">gbm</a>" in body and "churn version 1</a>" in body


def test_a_run_named_only_by_its_split_tag_is_in_the_snapshots_lineage(
    client_for: Any, bob: Any, project: Any, experiment: Experiment, snapshot: Snapshot
) -> None:
    Split.objects.create(parent=snapshot, number=1, test_fraction=0.2, seed=1)
    log_run(bob, experiment, "by-split", tags={"stagegate.split": f"{snapshot.source_id}/v1/1"})
    log_run(bob, experiment, "elsewhere", tags={"stagegate.split": f"{snapshot.source_id}/v1/9"})
    url = f"/projects/{project.slug}/data/{snapshot.source_id}/v1/runs/"
    body = client_for(bob).get(url).content.decode()
    assert ">by-split</a>" in body and ">elsewhere</a>" not in body
    assert "No model version was registered from these runs." in body


def test_unknown_runs_models_and_versions_are_404(
    client_for: Any, bob: Any, project: Any, run: Run, champion: Any
) -> None:
    client = client_for(bob)
    p = f"/projects/{project.slug}"
    for url in [
        f"{p}/runs/{'0' * 32}/",
        f"{p}/runs/{'0' * 32}/artifact/?path=a",
        f"{p}/experiments/999999/",
        f"{p}/models/nope/",
        f"{p}/models/churn/v9/",
        f"{p}/data/999/v1/runs/",
    ]:
        assert client.get(url).status_code == 404, url
    services.experiment_delete(actor=bob, experiment=run.experiment)
    assert client.get(f"{p}/experiments/{run.experiment_id}/").status_code == 404


def test_seed_demo_logs_runs_with_histories_and_a_champion_once(
    settings: Any, client_for: Any, storage: Any
) -> None:
    from django.core.management import call_command

    from accounts.models import User
    from experiments.demo import DEMO_EXPERIMENT, DEMO_MODEL, DEMO_RUNS, STEPS
    from experiments.models import Metric, ModelAlias
    from portal.management.commands.seed_demo import DEMO_PROJECT

    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())
    experiment = Experiment.objects.get(project__slug=DEMO_PROJECT, name=DEMO_EXPERIMENT)
    runs = list(experiment.runs.all())
    assert len(runs) == len(DEMO_RUNS) and {r.status for r in runs} == {"FINISHED"}
    assert Metric.objects.filter(run__in=runs).count() == len(DEMO_RUNS) * STEPS * 2
    alias = ModelAlias.objects.get(registered_model__name=DEMO_MODEL, alias="champion")
    best = max(DEMO_RUNS, key=lambda r: r[3])[0]
    assert alias.version.run is not None and alias.version.run.name == best
    client = client_for(User.objects.get(username="analyst"))
    page = client.get(f"/projects/{DEMO_PROJECT}/runs/{alias.version.run.uuid}/").content.decode()
    assert "report.txt" in page and 'data-figure="metric-0-data"' in page


def test_keys_with_spaces_sort_and_show_and_deleted_runs_are_left_out(
    client_for: Any, bob: Any, experiment: Experiment
) -> None:
    low = log_run(bob, experiment, "low", metrics={"f1 score": [0.2]}, params={"max depth": "3"})
    log_run(bob, experiment, "high", metrics={"f1 score": [0.9]}, params={"max depth": "5"})
    gone = log_run(bob, experiment, "gone", metrics={"f1 score": [0.5]})
    services.run_delete(actor=bob, run=gone)
    client = client_for(bob)
    page = runs_page(client, experiment, "sort=metrics.f1 score&dir=ASC")
    assert run_names(page) == ["low", "high"]
    assert columns(page)[0] == "metric f1 score"
    assert "This sort cannot be used" not in page
    filtered = runs_page(client, experiment, "filter=metrics.`f1 score` < 0.5")
    assert run_names(filtered) == ["low"]
    # A deleted run's page still answers, saying so.
    assert "Deleted" in client.get(f"/projects/churn/runs/{gone.uuid}/").content.decode()
    assert low.uuid in page
