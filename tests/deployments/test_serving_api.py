"""The endpoints API and pages: who sees and does what, bad input, the key once."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from cloud.base import EndpointSpec
from compute.models import ComputeSize
from deployments import serving
from deployments.serving_models import Deployment, Endpoint
from experiments.models import ModelVersion, RegisteredModel
from projects.models import Membership


@pytest.fixture
def endpoint(project: Any, alice: Any) -> Any:
    """An endpoint on the local provider whose two deployments' rows say
    running (the router is real; the split it is given is real)."""
    size, _ = ComputeSize.objects.get_or_create(
        provider="local",
        name="Standard_DS1_v2",
        defaults={"vcpus": 1, "memory_gb": 2, "hourly_price": "0.1", "price_date": timezone.now()},
    )
    model = RegisteredModel.objects.create(
        project=project, name="Churn model", creation_time=0, last_update_time=0
    )
    endpoint = Endpoint.objects.create(
        project=project,
        registered_model=model,
        name="churn-model",
        provider="local",
        key_sha256="0" * 64,
        traffic={"blue": 90, "green": 10},
        previous="blue",
        rollout="baking",
        state="running",
    )
    endpoint.provider_name = f"sg-ep-{endpoint.pk}"
    endpoint.save()
    for number, name in ((1, "blue"), (2, "green")):
        version = ModelVersion.objects.create(
            registered_model=model,
            version=number,
            source="",
            storage_location="",
            creation_time=0,
            last_update_time=0,
        )
        Deployment.objects.create(
            endpoint=endpoint, name=name, model_version=version, size=size, state="running"
        )
    provider = serving.serving_provider("local")
    provider.endpoint_create(EndpointSpec(endpoint.provider_name, key_sha256="0" * 64))
    yield endpoint
    provider.endpoint_delete(endpoint.provider_name)


def url(endpoint: Endpoint, tail: str = "") -> str:
    return f"/api/projects/{endpoint.project.slug}/endpoints/{endpoint.name}/{tail}"


def test_outsiders_get_404_and_read_only_members_403(
    endpoint: Endpoint, api_for: Any, charlie: Any, carol: Any, bob: Any
) -> None:
    outsider = api_for(charlie)
    assert outsider.get("/api/projects/churn/endpoints/").status_code == 404
    assert outsider.get(url(endpoint)).status_code == 404
    assert outsider.post(url(endpoint, "rollback/")).status_code == 404
    analyst = api_for(carol)
    listed = analyst.get("/api/projects/churn/endpoints/")
    assert listed.status_code == 200 and listed.json()["results"][0]["name"] == "churn-model"
    assert "key_sha256" not in json.dumps(listed.json())
    assert analyst.post(url(endpoint, "rollback/")).status_code == 403
    # A data scientist writes project content, but does not operate endpoints.
    assert api_for(bob).post(url(endpoint, "rollback/")).status_code == 403
    assert api_for(bob).post(url(endpoint, "key/")).status_code == 403
    endpoint.refresh_from_db()
    assert endpoint.traffic == {"blue": 90, "green": 10}


def test_rollback_through_the_api_is_audited_and_reaches_the_router(
    endpoint: Endpoint, api_for: Any, alice: Any, bob: Any
) -> None:
    Membership.objects.filter(user=bob).update(role="ml_engineer")
    answer = api_for(bob).post(url(endpoint, "rollback/"), {"reason": "bad answers"}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["traffic"] == {"blue": 100, "green": 0}
    provider: Any = serving.serving_provider("local")
    assert provider.endpoint_traffic(endpoint.provider_name)[0] == {"blue": 100, "green": 0}
    event = AuditEvent.objects.get(action="endpoint.rolled_back")
    assert event.actor_id == bob.pk and event.payload["reason"] == "bad answers"
    again = api_for(bob).post(url(endpoint, "rollback/"))
    assert again.status_code == 409 and "no previous" in again.json()["detail"]


def test_bad_traffic_is_400_and_changes_nothing(
    endpoint: Endpoint, api_for: Any, alice: Any
) -> None:
    client = api_for(alice)
    for body in (
        {"traffic": {"blue": 50, "green": 20}},
        {"traffic": {"red": 100}},
        {"traffic": {"blue": 101}},
        {"traffic": {"blue": 100}, "mirror": {"blue": 10, "green": 10}},
        {"traffic": "all"},
    ):
        answer = client.post(url(endpoint, "traffic/"), body, format="json")
        assert answer.status_code == 400, (body, answer.content)
    endpoint.refresh_from_db()
    assert endpoint.traffic == {"blue": 90, "green": 10}
    ok = client.post(
        url(endpoint, "traffic/"),
        {"traffic": {"blue": 70, "green": 30}, "mirror": {"green": 50}},
        format="json",
    )
    assert ok.status_code == 200 and ok.json()["mirror"] == {"green": 50}


def test_the_key_is_answered_once(endpoint: Endpoint, api_for: Any, alice: Any) -> None:
    client = api_for(alice)
    answer = client.post(url(endpoint, "key/"))
    assert answer.status_code == 201
    key = answer.json()["key"]
    assert key.startswith("sgk_")
    endpoint.refresh_from_db()
    assert endpoint.key_sha256 == serving.key_hash(key)
    shown = client.get(url(endpoint)).content.decode()
    assert key not in shown and endpoint.key_prefix in shown


def test_pages(
    endpoint: Endpoint,
    client_for: Any,
    alice: Any,
    carol: Any,
    charlie: Any,
    django_assert_max_num_queries: Any,
) -> None:
    lead = client_for(alice)
    with django_assert_max_num_queries(12):
        listing = lead.get("/projects/churn/endpoints/")
    assert listing.status_code == 200 and b"churn-model" in listing.content
    with django_assert_max_num_queries(14):
        page = lead.get("/projects/churn/endpoints/churn-model/")
    html = page.content.decode()
    assert 'id="rollback"' in html and 'id="traffic-bar"' in html and "blue 90%" in html
    partial = lead.get("/projects/churn/endpoints/churn-model/", HTTP_HX_REQUEST="true")
    assert b"<html" not in partial.content and b"endpoint-state" in partial.content
    reader = client_for(carol).get("/projects/churn/endpoints/churn-model/").content.decode()
    assert 'id="rollback"' not in reader
    assert (
        client_for(carol).post("/projects/churn/endpoints/churn-model/rollback/").status_code == 403
    )
    assert client_for(charlie).get("/projects/churn/endpoints/churn-model/").status_code == 404
    lead = client_for(alice)  # one test client: sign the lead in again
    done = lead.post("/projects/churn/endpoints/churn-model/rollback/", {"reason": "x"})
    assert done.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.traffic == {"blue": 100, "green": 0}
    bad = lead.post("/projects/churn/endpoints/churn-model/traffic/", {"traffic_blue": "abc"})
    assert bad.status_code == 302
    followed = lead.get("/projects/churn/endpoints/churn-model/").content.decode()
    assert "whole percentages" in followed
    key_page = lead.post("/projects/churn/endpoints/churn-model/key/").content.decode()
    assert 'id="new-key"' in key_page and "sgk_" in key_page


def test_what_a_deployment_serves_cannot_be_deleted_from_the_registry(
    endpoint: Any, alice: Any
) -> None:
    from experiments import services as tracking
    from experiments.errors import MlflowError

    version = ModelVersion.objects.get(registered_model=endpoint.registered_model, version=1)
    with pytest.raises(MlflowError, match="served by a deployment") as refused:
        tracking.model_version_delete(actor=alice, version=version)
    assert refused.value.code == "INVALID_STATE" and refused.value.status == 400
    with pytest.raises(MlflowError, match="served by a deployment"):
        tracking.registered_model_delete(actor=alice, model=endpoint.registered_model)
    assert ModelVersion.objects.filter(registered_model=endpoint.registered_model).count() == 2
    assert not AuditEvent.objects.filter(
        action__in=["model_version.deleted", "registered_model.deleted"]
    ).exists()


def test_only_this_projects_lead_and_ml_engineers_operate_its_endpoints(
    project: Any, alice: Any, bob: Any, carol: Any, charlie: Any
) -> None:
    from django.core.exceptions import PermissionDenied

    from tests.factories import MembershipFactory, ProjectFactory, UserFactory

    refused = "Only the project's lead and ML engineers operate endpoints."
    mle: Any = UserFactory(username="mle")
    MembershipFactory(project=project, user=mle, role="ml_engineer")
    # Leading another project is no right here.
    MembershipFactory(project=ProjectFactory(), user=charlie, role="lead")
    MembershipFactory(project=ProjectFactory(), user=bob, role="lead")
    for who in (bob, carol, charlie):
        with pytest.raises(PermissionDenied) as no:
            serving._operator(who, project)
        assert str(no.value) == refused
    for who in (alice, mle, None):  # None: the portal itself (the health check)
        serving._operator(who, project)


def test_stopping_a_deployment_through_the_api_and_the_page(
    endpoint: Endpoint,
    api_for: Any,
    client_for: Any,
    alice: Any,
    bob: Any,
    carol: Any,
    charlie: Any,
) -> None:
    stop = url(endpoint, "deployments/green/stop/")
    assert api_for(charlie).post(stop).status_code == 404
    assert api_for(carol).post(stop).status_code == 403
    assert api_for(bob).post(stop).status_code == 403
    lead = api_for(alice)
    missing = lead.post(url(endpoint, "deployments/purple/stop/"))
    assert missing.status_code == 404 and "purple" in missing.json()["detail"]
    busy = lead.post(stop)  # green has 10% of the calls
    assert busy.status_code == 409 and "still answers calls" in busy.json()["detail"]
    assert Deployment.objects.get(endpoint=endpoint, name="green").state == "running"

    page = client_for(alice).get("/projects/churn/endpoints/churn-model/").content.decode()
    assert 'id="stop-green"' not in page and 'id="stop-blue"' not in page
    serving.endpoint_rollback(actor=alice, endpoint=endpoint)
    page = client_for(alice).get("/projects/churn/endpoints/churn-model/").content.decode()
    assert 'id="stop-green"' in page and 'id="stop-blue"' not in page
    assert (
        'id="stop-green"'
        not in client_for(carol).get("/projects/churn/endpoints/churn-model/").content.decode()
    )

    done = lead.post(stop)
    assert done.status_code == 202
    green = next(d for d in done.json()["deployments"] if d["name"] == "green")
    assert green["state"] == "stopping"
    assert AuditEvent.objects.get(action="endpoint.deployment_stopped").payload["deployment"] == (
        "green"
    )
    again = client_for(alice).post(
        "/projects/churn/endpoints/churn-model/stop/", {"deployment": "green"}
    )
    assert again.status_code == 302
    followed = client_for(alice).get("/projects/churn/endpoints/churn-model/").content.decode()
    assert "The green deployment is stopping." in followed


def test_a_stop_whose_worker_was_lost_is_sent_again_then_given_up(
    endpoint: Endpoint, settings: Any
) -> None:
    from datetime import timedelta

    from background.leases import lease_recover

    green = Deployment.objects.get(endpoint=endpoint, name="green")
    past = timezone.now() - timedelta(minutes=5)
    Deployment.objects.filter(pk=green.pk).update(
        state="stopping", lease_owner="gone:1", lease_expires_at=past, attempts=1
    )
    report = lease_recover(serving.STOP_WORK)
    assert report == {"redispatched": [green.pk], "failed": []}
    green.refresh_from_db()
    assert green.state == "stopping" and green.lease_owner == ""

    Deployment.objects.filter(pk=green.pk).update(
        lease_expires_at=past, attempts=settings.BACKGROUND_MAX_ATTEMPTS
    )
    report = lease_recover(serving.STOP_WORK)
    assert report == {"redispatched": [], "failed": [green.pk]}
    green.refresh_from_db()
    # It may still run: it stays running (metered, health-checked) and says why.
    assert green.state == "running" and green.detail.startswith("Could not stop: Gave up")


def test_a_deployment_over_the_compute_quota_is_refused_and_writes_nothing(
    project: Any, alice: Any
) -> None:
    from compute.models import Quota

    size, _ = ComputeSize.objects.get_or_create(
        provider="local",
        name="Standard_DS1_v2",
        defaults={
            "vcpus": 1,
            "memory_gb": 2,
            "hourly_price": Decimal("0.1"),
            "price_date": timezone.now(),
        },
    )
    model = RegisteredModel.objects.create(
        project=project, name="Churn model", creation_time=0, last_update_time=0
    )
    version = ModelVersion.objects.create(
        registered_model=model,
        version=1,
        source="",
        storage_location="",
        creation_time=0,
        last_update_time=0,
    )
    Quota.objects.create(project=project, max_vcpus=0, max_gpus=0, max_running=0)
    with pytest.raises(serving.ServingRefused, match=r"Project vCPUs: 0 in use \+ 1 requested > 0"):
        serving.endpoint_deploy(actor=alice, model_version=version, size=size)
    assert not Endpoint.objects.exists() and not Deployment.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="endpoint.").exists()

    Quota.objects.filter(project=project).update(max_vcpus=1)
    blue = serving.endpoint_deploy(actor=alice, model_version=version, size=size)
    assert blue.state == "pending"
    # The slot about to be replaced (pending: it holds its vCPU) does not
    # count against the new deployment.
    Endpoint.objects.update(rollout="failed")
    again = serving.endpoint_deploy(actor=alice, model_version=version, size=size)
    assert again.pk == blue.pk


def test_an_azure_model_is_named_by_its_project_too(endpoint: Endpoint) -> None:
    """Projects may share an Azure ML workspace: their models of one name
    must not become one Azure model."""
    from deployments.serving_tasks import azure_model_id

    version = Deployment.objects.get(endpoint=endpoint, name="green").model_version
    assert azure_model_id(version) == f"azureml:p{endpoint.project_id}-Churn model:2"
