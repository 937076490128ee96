"""Property-based fuzzing of the whole API from its own OpenAPI schema.

Schemathesis generates requests for every operation of ``/api/schema/``, valid
ones and ones that break the schema, and sends them through the WSGI app as
each role (lead, data scientist, analyst, outsider, platform admin); whatever
it sends, no answer may be a server error (5xx), and every error answer is
JSON. Half of the cases use the ids of real rows (a project with its charter,
sources, a snapshot with its profile, a split, an ingestion, a rule, a
workspace, an approval and a compute size), so that requests get past the
404s; deletions run last, so that they do not take the rows from the others.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode

from accounts.services import token_create
from charter.services import charter_draft_save, charter_submit
from compute.models import ComputeSize
from datasets import services as data_services
from datasets import tasks as data_tasks
from datasets.models import Snapshot, SplitStatus
from deployments.gate import deployment_request_create
from experiments import jobs as experiment_jobs
from experiments import sweeps
from experiments.services import model_version_create, registered_model_create
from portal.wsgi import application
from tests.charter.test_charter import GOOD
from tests.workspaces.conftest import seed_migration
from workspaces import services as workspace_services

# Examples per operation and role, across the four kinds of case (valid or not,
# random or real path ids); writes get more, since what they send reaches the
# database. The five roles take about three minutes in all.
EXAMPLES = {"GET": 1, "DELETE": 1, "POST": 5, "PATCH": 5, "PUT": 5}
ROWS = b"customer_id,age,plan,churned\n" + b"".join(
    f"{i},{20 + i % 50},{['basic', 'plus'][i % 2]},{i % 3 == 0}\n".encode() for i in range(1, 201)
)


def serving_world(project: Any, size: Any, version: Any) -> Any:
    """An endpoint of ``version``'s model with a running deployment (rows only:
    no process behind it). It takes the model's name, so the one ``name`` path
    parameter finds both the model and the endpoint."""
    from deployments.serving_models import Deployment, Endpoint

    model = version.registered_model
    endpoint = Endpoint.objects.create(
        project=project,
        registered_model=model,
        name=model.name,
        provider="local",
        provider_name="sg-ep-fuzz",
        key_sha256="0" * 64,
        traffic={"blue": 100},
    )
    Deployment.objects.create(
        endpoint=endpoint, name="blue", model_version=version, size=size, state="running"
    )
    return endpoint


@pytest.fixture
def world(
    project: Any, alice: Any, bob: Any, charlie: Any, admin_user: Any, settings: Any, tmp_path: Path
) -> dict[str, Any]:
    """The rows the generated requests may find, one of each kind a path names.

    Their background work runs here, in this process; what the fuzzed
    requests queue is never sent (the test's transaction never commits)."""
    from django.apps import apps as django_apps

    settings.ALLOWED_HOSTS = ["*"]
    settings.STAGEGATE_STORAGE_URL = f"file://{tmp_path / 'storage'}"
    upload = data_services.source_create(
        actor=alice, project=project, name="Customers", kind="upload", location="on_prem"
    )
    ingestion = data_services.snapshot_upload(
        actor=alice,
        source=upload,
        upload=SimpleUploadedFile("customers.csv", ROWS, content_type="text/csv"),
    )
    data_tasks.ingestion_run.apply(kwargs={"ingestion_id": ingestion.pk})
    snapshot = Snapshot.objects.get(source=upload)
    data_tasks.profile_run.apply(kwargs={"snapshot_id": snapshot.pk})
    split = data_services.split_create(actor=alice, snapshot=snapshot, test_fraction=0.25, seed=7)
    data_tasks.split_run.apply(kwargs={"split_id": split.pk})
    split.refresh_from_db()
    assert split.status == SplitStatus.READY, split.error
    charter_draft_save(actor=alice, project=project, values=GOOD)
    approval = charter_submit(actor=alice, project=project)
    seed_migration.seed(django_apps, None)
    size = ComputeSize.objects.get(name="Standard_D2s_v3")
    workspace = workspace_services.workspace_request(
        actor=bob, project=project, name="fuzz", size=size
    )
    data_services.source_create(
        actor=alice,
        project=project,
        name="Warehouse",
        kind="postgres",
        config={"host": "db.example.com", "database": "dw", "user": "u", "query": "SELECT 1"},
    )
    rule = data_services.rule_create(actor=alice, source=upload, kind="not_null", column="age")
    job = experiment_jobs.job_create(actor=bob, project=project, split=split, size=size)
    sweep = sweeps.sweep_create(
        actor=bob,
        project=project,
        split=split,
        size=size,
        space={"learning_rate": {"type": "uniform", "low": 0.01, "high": 0.3}},
    )
    model = registered_model_create(actor=bob, project=project, name="churn")
    model_version = model_version_create(
        actor=bob, model=model, source=f"runs:/{job.run.uuid}/model" if job.run else ""
    )
    deployment = deployment_request_create(
        actor=bob,
        version=model_version,
        target="realtime",
        reason="The fuzzed requests find a real deployment request.",
    )
    assert model_version.version == snapshot.version  # both paths name {version}
    from deployments.batch import batch_scoring_create
    from deployments.gate_models import DeploymentRequest

    DeploymentRequest.objects.create(
        project=project,
        version=model_version,
        requested_by=bob,
        target="batch",
        rollout="all_at_once",
        reason="The fuzzed requests find a real batch scoring.",
        state="approved",
    )
    scoring = batch_scoring_create(actor=bob, version=model_version, output_table="fuzz_scores")
    endpoint = serving_world(project, size, model_version)
    assert endpoint.name == model.name  # both paths name {name}
    return {
        "slug": project.slug,
        "source_id": upload.pk,
        "rule_id": rule.pk,
        "username": "bob",
        "version": snapshot.version,
        "number": 1,
        "ingestion_id": ingestion.pk,
        "split_id": split.pk,
        "workspace_id": workspace.pk,
        "approval_id": approval.pk,
        "size_id": size.pk,
        "job_id": job.pk,
        "sweep_id": sweep.pk,
        "name": model.name,
        "deployment_id": deployment.pk,
        "scoring_id": scoring.pk,
        # "name": the endpoint's too (serving_world).
        "deployment": "blue",  # the endpoint's running deployment
    }


def assert_json_error(response: Any) -> None:
    """An error answer (4xx) says why in JSON, never in an HTML page."""
    if response.status_code < 400:
        return
    content_type = " ".join(response.headers.get("content-type", []))
    assert "json" in content_type, (
        f"{response.status_code} answered with {content_type!r}: {response.text[:200]!r}"
    )


@pytest.fixture
def wsgi() -> Iterator[Any]:
    """The WSGI app, without closing the test's database connection (inside the
    test's transaction) at each request's start and end, as Django's test client does."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield application
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.mark.parametrize("role", ["outsider", "analyst", "data_scientist", "lead", "admin"])
def test_no_request_makes_the_api_fail(
    role: str,
    world: dict[str, Any],
    wsgi: Any,
    alice: Any,
    bob: Any,
    carol: Any,
    charlie: Any,
    admin_user: Any,
) -> None:
    user = {
        "outsider": charlie,
        "analyst": carol,
        "data_scientist": bob,
        "lead": alice,
        "admin": admin_user,
    }[role]
    _, token = token_create(user=user, name="fuzz")
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi, headers=headers)
    results = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), "the schema has invalid parts"
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) > 30, "the schema lost its operations"
    named = {p.name for operation in operations for p in operation.path_parameters}
    assert named <= set(world), f"no real row for {sorted(named - set(world))}"
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")
    for operation in operations:
        names = {p.name for p in operation.path_parameters}
        real = {name: value for name, value in world.items() if name in names}
        overrides: list[dict[str, Any]] = [{}, {"path_parameters": real}] if real else [{}]
        strategies = [
            operation.as_strategy(generation_mode=mode, **extra)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            for extra in overrides
        ]

        @given(case=st.one_of(strategies))
        @settings(
            max_examples=EXAMPLES.get(operation.method.upper(), 2),
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call(app=wsgi, headers=headers)
            case.validate_response(response, checks=[not_a_server_error], headers=headers)
            assert_json_error(response)

        run()
