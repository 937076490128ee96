"""The sweeps and AutoML API: a sweep or an AutoML run is one training job
with its checked configuration; bad search spaces are 400 with the reasons
and write nothing; outsiders get 404, read-only members 403; the detail's
trials come from the child runs in queries that do not grow with them."""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest

from audit.models import AuditEvent
from experiments.job_models import Job
from experiments.job_templates.baseline import HYPERPARAMETERS as BASELINE_HYPERPARAMETERS
from experiments.services import MetricPoint, run_create, run_log_batch, run_update
from experiments.sweep_models import Sweep
from experiments.sweeps import HYPERPARAMETERS
from tests.experiments import jobs_data
from tests.experiments.jobs_data import ready_split


@pytest.fixture
def small(db: Any) -> Any:
    return jobs_data.size()  # 2 vCPUs


@pytest.fixture
def split(project: Any, alice: Any, django_capture_on_commit_callbacks: Any) -> Any:
    return ready_split(project=project, actor=alice, callbacks=django_capture_on_commit_callbacks)


SPACE = {
    "learning_rate": {"type": "loguniform", "low": 0.01, "high": 0.3},
    "min_samples_leaf": {"type": "int", "low": 5, "high": 200},
    "max_depth": {"type": "choice", "values": [2, 3, 4]},
}


def url(project: Any, kind: str = "sweeps", rest: str = "") -> str:
    return f"/api/projects/{project.slug}/{kind}/{rest}"


def test_the_services_tunable_names_are_the_baselines() -> None:
    assert {f: set(names) for f, names in HYPERPARAMETERS.items()} == {
        f: set(names) for f, names in BASELINE_HYPERPARAMETERS.items()
    }


def test_a_sweep_is_one_job_with_its_checked_configuration(
    api_for: Any, project: Any, bob: Any, split: Any, small: Any
) -> None:
    api = api_for(bob)
    created = api.post(
        url(project),
        {
            "split": split.pk,
            "size": small.name,
            "space": SPACE,
            "sampler": "random",
            "max_trials": 8,
            "parallel": 2,
            "early_termination": "halving",
            "time_budget_minutes": 10,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["kind"] == "sweep" and body["state"] == "queued"
    # The objective defaults to the charter's metric and direction.
    assert body["config"]["objective"] == {"metric": "roc_auc", "direction": "maximize"}
    assert body["config"]["early_termination"] == {"policy": "halving"}
    assert body["config"]["time_budget_seconds"] == 600
    assert body["progress"]["trials"] == [] and body["progress"]["planned"] == 8
    job = Job.objects.get(pk=body["job"])
    assert job.template == "sweep" and job.run is not None and body["run_id"] == job.run.uuid
    words = shlex.split(job.command)
    assert words[:2] == ["python", "sweep_runner.py"]
    config = json.loads(words[-1].removeprefix("--config="))
    assert config == body["config"] == job.parameters["config"]
    assert AuditEvent.objects.filter(action="sweep.created", object_id=str(body["id"])).exists()
    listed = api.get(url(project)).json()
    assert [s["id"] for s in listed["results"]] == [body["id"]]
    assert api.get(url(project, "automl")).json()["results"] == []
    assert api.get(url(project, rest=f"{body['id']}/")).json()["id"] == body["id"]
    assert api.get(url(project, "automl", f"{body['id']}/")).status_code == 404
    cancelled = api.post(url(project, rest=f"{body['id']}/cancel/"))
    assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"
    again = api.post(url(project, rest=f"{body['id']}/cancel/"))
    assert again.status_code == 409 and again.json()["state"] == "cancelled"


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"space": {}}, "space", "Give at least one parameter"),
        ({"space": []}, "space", "Give at least one parameter"),
        (
            {"space": {"depth": {"type": "int", "low": 1, "high": 3}}},
            "space",
            "depth: the gbm model has no such parameter",
        ),
        (
            {"space": {"learning_rate": {"type": "normal", "low": 0, "high": 1}}},
            "space",
            "learning_rate: the type must be one of choice, uniform, loguniform, int.",
        ),
        (
            {"space": {"learning_rate": {"type": "uniform", "low": 0.3, "high": 0.1}}},
            "space",
            "learning_rate: low must be below high.",
        ),
        (
            {"space": {"learning_rate": {"type": "loguniform", "low": 0, "high": 0.1}}},
            "space",
            "learning_rate: a log-uniform distribution needs low above 0.",
        ),
        (
            {"space": {"learning_rate": {"type": "uniform", "low": "a", "high": 1}}},
            "space",
            "learning_rate: low and high must be numbers.",
        ),
        (
            {"space": {"max_depth": {"type": "uniform", "low": 1, "high": 5}}},
            "space",
            "max_depth: is an integer; use int or choice.",
        ),
        (
            {"space": {"learning_rate": {"type": "int", "low": 1, "high": 5}}},
            "space",
            "learning_rate: is not an integer; use uniform or loguniform.",
        ),
        (
            {"space": {"max_depth": {"type": "choice", "values": []}}},
            "space",
            "max_depth: a choice needs a non-empty list of values.",
        ),
        (
            {"space": {"max_depth": {"type": "choice", "values": [2.5]}}},
            "space",
            "max_depth: takes whole numbers.",
        ),
        (
            {"space": {"max_iter": {"type": "int", "low": 1, "high": 50}}},
            "space",
            "max_iter: must lie between 10 and 2000.",
        ),
        (
            {"space": {"learning_rate": {"type": "uniform", "low": 0.1, "high": 0.2, "q": 1}}},
            "space",
            "learning_rate: unknown key 'q' for a uniform distribution.",
        ),
        (
            {"sampler": "grid"},
            "space",
            "learning_rate: a grid takes choice or int distributions only.",
        ),
        ({"parallel": 3}, "parallel", "Between 1 and 2: the Standard_D2s_v3 size has 2 vCPUs."),
        ({"max_trials": 0}, "max_trials", "Between 1 and 500."),
        ({"metric": "silhouette"}, "metric", "The baseline cannot compute “silhouette”."),
        ({"sampler": "bayes"}, "sampler", None),
        ({"time_budget_minutes": 90}, "time_budget_minutes", "At most the job's wall-clock"),
        ({"space": "learning_rate"}, "space", "Give at least one parameter"),
    ],
)
def test_a_bad_sweep_is_a_400_with_the_reason_and_writes_nothing(
    api_for: Any,
    project: Any,
    bob: Any,
    split: Any,
    small: Any,
    change: dict[str, Any],
    field: str,
    reason: str | None,
) -> None:
    data = {"split": split.pk, "size": small.name, "space": SPACE, **change}
    answer = api_for(bob).post(url(project), data, format="json")
    assert answer.status_code == 400, answer.content
    messages = answer.json()[field]
    if reason is not None:
        assert any(m.startswith(reason) for m in messages), messages
    assert not Sweep.objects.exists() and not Job.objects.exists()


def test_automl_is_one_job_and_refuses_families_that_do_not_fit(
    api_for: Any, project: Any, bob: Any, split: Any, small: Any
) -> None:
    api = api_for(bob)
    bad = api.post(
        url(project, "automl"),
        {"split": split.pk, "size": small.name, "families": ["enet"]},
        format="json",
    )
    assert bad.status_code == 400
    assert bad.json()["families"][0].startswith("“enet” is not a model family for classification")
    short = api.post(
        url(project, "automl"),
        {"split": split.pk, "size": small.name, "time_budget_seconds": 5},
        format="json",
    )
    assert short.json() == {"time_budget_seconds": ["Between 30 and 604800 seconds."]}
    assert not Job.objects.exists()
    created = api.post(
        url(project, "automl"),
        {"split": split.pk, "size": small.name, "families": ["lgbm", "rf"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["kind"] == "automl"
    assert body["config"] == {
        "families": ["lgbm", "rf"],
        "time_budget_seconds": 300,
        "seed": 0,
        "metric": "roc_auc",
    }
    job = Job.objects.get(pk=body["job"])
    assert shlex.split(job.command)[:2] == ["python", "automl.py"]


def test_outsiders_get_404_and_read_only_members_403(
    api_for: Any,
    project: Any,
    bob: Any,
    carol: Any,
    charlie: Any,
    split: Any,
    small: Any,
) -> None:
    made = api_for(bob).post(
        url(project), {"split": split.pk, "size": small.name, "space": SPACE}, format="json"
    )
    sweep_id = made.json()["id"]
    outsider, reader = api_for(charlie), api_for(carol)
    data = {"split": split.pk, "size": small.name, "space": SPACE}
    for kind in ("sweeps", "automl"):
        assert outsider.get(url(project, kind)).status_code == 404
        assert outsider.post(url(project, kind), data, format="json").status_code == 404
        assert reader.post(url(project, kind), data, format="json").status_code == 403
        assert reader.get(url(project, kind)).status_code == 200
    assert outsider.get(url(project, rest=f"{sweep_id}/")).status_code == 404
    assert outsider.post(url(project, rest=f"{sweep_id}/cancel/")).status_code == 404
    assert reader.post(url(project, rest=f"{sweep_id}/cancel/")).status_code == 403
    assert reader.get(url(project, rest=f"{sweep_id}/")).status_code == 200
    assert Sweep.objects.count() == 1


def _trial(bob: Any, job: Job, number: int, value: float, pruned: bool = False) -> Any:
    assert job.run is not None
    run = run_create(
        actor=bob,
        experiment=job.run.experiment,
        run_name=f"trial {number}",
        tags={"mlflow.parentRunId": job.run.uuid, "stagegate.sweep.trial": str(number)},
    )
    run_log_batch(
        actor=bob,
        run=run,
        metrics=[MetricPoint("roc_auc", value, 1, 1)],
        params={"learning_rate": str(0.01 * (number + 1))},
        tags={"stagegate.sweep.pruned": "pruned at step 1"} if pruned else {},
    )
    run_update(actor=bob, run=run, status="KILLED" if pruned else "FINISHED", end_time=2)
    return run


def test_the_detail_shows_the_trials_and_the_best_in_queries_that_do_not_grow(
    api_for: Any,
    project: Any,
    bob: Any,
    split: Any,
    small: Any,
    django_assert_max_num_queries: Any,
) -> None:
    api = api_for(bob)
    made = api.post(
        url(project), {"split": split.pk, "size": small.name, "space": SPACE}, format="json"
    ).json()
    job = Job.objects.select_related("run__experiment").get(pk=made["job"])
    _trial(bob, job, 0, 0.8)
    _trial(bob, job, 1, 0.5, pruned=True)
    with django_assert_max_num_queries(20) as few:
        body = api.get(url(project, rest=f"{made['id']}/")).json()
    progress = body["progress"]
    assert [t["state"] for t in progress["trials"]] == ["finished", "pruned"]
    assert progress["best"]["number"] == 0 and progress["best"]["value"] == 0.8
    assert progress["counts"] == {"finished": 1, "pruned": 1} and progress["done"] == 2
    assert progress["trials"][1]["pruned"] == "pruned at step 1"
    ids = ",".join(t["run_id"] for t in progress["trials"])
    assert progress["compare_url"] == f"/projects/{project.slug}/experiments/compare/?runs={ids}"
    for number in range(2, 12):
        _trial(bob, job, number, 0.9 if number == 7 else 0.6)
    with django_assert_max_num_queries(len(few.captured_queries)):
        body = api.get(url(project, rest=f"{made['id']}/")).json()
    assert len(body["progress"]["trials"]) == 12
    assert body["progress"]["best"]["number"] == 7
