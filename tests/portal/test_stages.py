"""The stage strip and the current stage come from what happened in each stage."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.apps import apps as django_apps

from compute.models import ComputeSize
from datasets.models import DataSource, Snapshot, ValidationStatus
from portal.stages import PROGRESS, progress_for
from tests.factories import MembershipFactory, ProjectFactory, charter_signed_off
from workspaces import services

pytestmark = pytest.mark.django_db

seed_catalog = importlib.import_module("compute.migrations.0002_seed_compute_catalog").seed


def states(project: Any) -> dict[str, str]:
    return {s.value: s.state for s in progress_for([project.pk])[project.pk].stages}


def current(project: Any) -> str:
    return progress_for([project.pk])[project.pk].current.value


def snapshot(project: Any, *, valid: bool, name: str = "crm") -> Snapshot:
    source = DataSource.objects.create(project=project, name=name, kind="upload")
    return Snapshot.objects.create(
        source=source,
        version=1,
        sha256="0" * 64,
        size=10,
        data_format="csv",
        rows=1,
        storage_key="k",
        validation_status=ValidationStatus.VALID if valid else ValidationStatus.INVALID,
    )


def ran_a_notebook(project: Any, user: Any, name: str = "explore") -> None:
    seed_catalog(django_apps, None)
    size = ComputeSize.objects.get(name="Standard_D2s_v3")
    ws = services.workspace_request(actor=user, project=project, name=name, size=size)
    services.workspace_claim(workspace_id=ws.pk, operation="provision", task_id="t")
    services.workspace_mark_running(workspace_id=ws.pk, url="http://127.0.0.1:9/lab")


def test_a_new_project_is_at_the_charter(project_unsigned: Any) -> None:
    assert current(project_unsigned) == "charter"
    assert states(project_unsigned) == {
        "charter": "current",
        "data": "todo",
        "workspaces": "todo",
        "experiments": "todo",
        "deployment": "todo",
    }


def test_a_signed_charter_moves_it_to_data(project: Any) -> None:
    assert current(project) == "data"
    assert states(project)["charter"] == "done"


def test_only_a_valid_snapshot_reaches_the_data_stage(project: Any) -> None:
    snapshot(project, valid=False)
    assert current(project) == "data"
    data = progress_for([project.pk])[project.pk].stage("data").progress
    assert data is not None and data.counts == {
        "sources": 1,
        "snapshots": 1,
    }
    snapshot(project, valid=True, name="billing")
    assert current(project) == "workspaces"


def test_notebooks_that_ran_are_never_behind_reality(project: Any, bob: Any) -> None:
    # No data registered, two notebooks ran: the project is past the workspaces stage.
    ran_a_notebook(project, bob, "one")
    ran_a_notebook(project, bob, "two")
    where = progress_for([project.pk])[project.pk]
    assert where.current.value == "experiments"
    assert states(project) == {
        "charter": "done",
        "data": "skipped",
        "workspaces": "done",
        "experiments": "current",
        "deployment": "todo",
    }
    ran = where.stage("workspaces").progress
    assert ran is not None and ran.counts == {"workspaces": 2, "running": 2}


def test_a_requested_workspace_that_never_ran_does_not_count(project: Any, bob: Any) -> None:
    seed_catalog(django_apps, None)
    size = ComputeSize.objects.get(name="Standard_D2s_v3")
    services.workspace_request(actor=bob, project=project, name="x", size=size)
    assert current(project) == "data"


def test_a_later_stage_plugs_in_with_one_function(project: Any, monkeypatch: Any) -> None:
    from portal.stages import Progress

    monkeypatch.setitem(
        PROGRESS, "deployment", lambda ids: {pid: Progress(reached=True) for pid in ids}
    )
    assert current(project) == "deployment"
    assert states(project)["deployment"] == "done"


def test_query_count_does_not_grow_with_projects(
    alice: Any, django_assert_max_num_queries: Any
) -> None:
    projects = []
    for i in range(12):
        p: Any = ProjectFactory()
        MembershipFactory(project=p, user=alice, role="lead")
        if i % 2:
            charter_signed_off(p)
            snapshot(p, valid=True)
        projects.append(p)
    # At most two queries per stage, whatever the number of projects.
    with django_assert_max_num_queries(2 * len(PROGRESS)):
        found = progress_for([p.pk for p in projects])
    assert [found[p.pk].current.value for p in projects[:2]] == ["charter", "workspaces"]


def test_runs_alone_do_not_reach_experiments_a_registered_version_does(
    project: Any, bob: Any
) -> None:
    from experiments import services as tracking

    experiment = tracking.experiment_create(actor=bob, project=project, name="baseline")
    run = tracking.run_create(actor=bob, experiment=experiment, run_name="first")
    assert states(project)["experiments"] == "todo"
    found = progress_for([project.pk])[project.pk].stage("experiments").progress
    assert found is not None and found.counts == {"runs": 1, "model_versions": 0}
    model = tracking.registered_model_create(actor=bob, project=project, name="churn")
    tracking.model_version_create(actor=bob, model=model, source=f"runs:/{run.uuid}/model", run=run)
    assert states(project)["experiments"] == "done"
    assert current(project) == "deployment"
