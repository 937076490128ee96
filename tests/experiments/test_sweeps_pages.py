"""The sweep and AutoML pages: the forms' mistakes shown beside their
fields, a new sweep's page with its trials and the best so far (and its live
part for htmx), the AutoML leaderboard best first, access (404 for
outsiders, 403 for read-only members), and a list whose queries do not grow."""

from __future__ import annotations

import json
from typing import Any

import pytest

from experiments.sweep_models import Sweep
from experiments.sweeps import automl_create, sweep_create
from tests.experiments import jobs_data
from tests.experiments.jobs_data import ready_split
from tests.experiments.test_sweeps_api import SPACE, _trial


@pytest.fixture
def small(db: Any) -> Any:
    return jobs_data.size()


@pytest.fixture
def split(project: Any, alice: Any, django_capture_on_commit_callbacks: Any) -> Any:
    return ready_split(project=project, actor=alice, callbacks=django_capture_on_commit_callbacks)


def form_data(split: Any, small: Any, **change: Any) -> dict[str, Any]:
    return {
        "split": split.pk,
        "size": small.pk,
        "family": "gbm",
        "wall_clock_minutes": 60,
        "space": json.dumps(SPACE),
        "sampler": "tpe",
        "max_trials": 8,
        "parallel": 2,
        "early_termination": "median",
        "time_budget_minutes": 10,
        "metric": "",
        "direction": "",
        "seed": 0,
        **change,
    }


def test_a_new_sweep_from_the_form_and_its_page(
    client_for: Any,
    project: Any,
    bob: Any,
    carol: Any,
    charlie: Any,
    split: Any,
    small: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    browser = client_for(bob)
    new = f"/projects/{project.slug}/sweeps/new/"
    form = browser.get(new)
    assert form.status_code == 200 and b"Hyperparameter sweep of the baseline" in form.content
    not_json = browser.post(new, form_data(split, small, space="{learning_rate"))
    assert b"The search space is not JSON" in not_json.content
    bad = browser.post(
        new,
        form_data(split, small, space=json.dumps({"depth": {"type": "int", "low": 1, "high": 2}})),
    )
    assert bad.status_code == 200
    assert "depth: the gbm model has no such parameter" in bad.content.decode()
    too_wide = browser.post(new, form_data(split, small, parallel=4))
    assert "the Standard_D2s_v3 size has 2 vCPUs" in too_wide.content.decode()
    assert not Sweep.objects.exists()
    assert client_for(carol).post(new, form_data(split, small)).status_code == 403
    assert client_for(charlie).get(new).status_code == 404
    browser = client_for(bob)
    with django_capture_on_commit_callbacks(execute=False):
        made = browser.post(new, form_data(split, small))
    sweep = Sweep.objects.select_related("job__run__experiment").get()
    assert made.status_code == 302
    assert made["Location"] == f"/projects/{project.slug}/sweeps/{sweep.pk}/"
    page = browser.get(made["Location"]).content.decode()
    assert "0 of 8 trials done" in page and "No trial has finished yet." in page
    _trial(bob, sweep.job, 0, 0.81)
    _trial(bob, sweep.job, 1, 0.5, pruned=True)
    page = browser.get(made["Location"]).content.decode()
    assert "2 of 8 trials done, 1 stopped early" in page
    assert "Trial 0: roc_auc = <strong>0.8100</strong>" in page
    assert "Stopped early" in page and "pruned at step 1" in page
    ids = ",".join(r.uuid for r in _children(sweep))
    assert f"/projects/{project.slug}/experiments/compare/?runs={ids}" in page
    live = browser.get(made["Location"], HTTP_HX_REQUEST="true").content.decode()
    assert 'id="sweep-live"' in live and "<h1>" not in live
    assert client_for(charlie).get(made["Location"]).status_code == 404
    assert client_for(carol).get(made["Location"]).status_code == 200
    listing = client_for(bob).get(f"/projects/{project.slug}/sweeps/").content.decode()
    assert f"#{sweep.pk} sweep (gbm)" in listing


def _children(sweep: Sweep) -> list[Any]:
    from experiments.models import Run

    assert sweep.job.run is not None
    return list(
        Run.objects.filter(tags__key="mlflow.parentRunId", tags__value=sweep.job.run.uuid).order_by(
            "start_time", "pk"
        )
    )


def test_the_automl_page_shows_the_leaderboard_best_first(
    client_for: Any,
    project: Any,
    bob: Any,
    split: Any,
    small: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from experiments.services import MetricPoint, run_create, run_log_batch

    browser = client_for(bob)
    bad = browser.post(
        f"/projects/{project.slug}/automl/new/",
        {
            "split": split.pk,
            "size": small.pk,
            "wall_clock_minutes": 60,
            "time_budget_seconds": 300,
            "families": ["enet"],
        },
    )
    assert "is not a model family for classification" in bad.content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        automl = automl_create(actor=bob, project=project, split=split, size=small)
    run = automl.job.run
    assert run is not None
    for number, (family, loss) in enumerate([("rf", 0.2), ("lgbm", 0.05), ("lrl2", 0.1)]):
        child = run_create(
            actor=bob,
            experiment=run.experiment,
            tags={"mlflow.parentRunId": run.uuid, "stagegate.automl.trial": str(number)},
        )
        run_log_batch(
            actor=bob,
            run=child,
            metrics=[
                MetricPoint("validation_loss", loss, 1, 0),
                MetricPoint("validation_roc_auc", 1 - loss, 1, 0),
            ],
            params={"family": family},
            tags={},
        )
    page = browser.get(f"/projects/{project.slug}/automl/{automl.pk}/").content.decode()
    board = page[page.index('id="leaderboard"') :]
    assert (
        board.index("LightGBM")
        < board.index("Logistic regression (L2)")
        < board.index("Random forest")
    )
    assert "0.9500" in board
    assert browser.get(f"/projects/{project.slug}/sweeps/{automl.pk}/").status_code == 404


def test_the_list_does_not_grow_its_queries_with_its_rows(
    client_for: Any,
    project: Any,
    bob: Any,
    split: Any,
    small: Any,
    django_capture_on_commit_callbacks: Any,
    django_assert_max_num_queries: Any,
) -> None:
    browser = client_for(bob)
    url = f"/projects/{project.slug}/sweeps/"

    def make() -> None:
        with django_capture_on_commit_callbacks(execute=False):
            sweep_create(
                actor=bob, project=project, split=split, size=small, space=SPACE, parallel=1
            )

    make()
    with django_assert_max_num_queries(40) as few:
        assert browser.get(url).status_code == 200
    for _ in range(4):
        make()
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = browser.get(url)
    assert page.content.decode().count("sweep (gbm)") == 5
