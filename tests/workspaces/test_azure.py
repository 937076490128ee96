"""Workspaces on Azure ML, end to end through the portal's own services and
tasks: the real ``AzureProvider`` and the SDK's real ``MLClient``, whose HTTP
transport is the test double of ``tests/cloud/azure_transport.py``.

Nothing of the portal is stubbed. The tasks run eagerly (Celery's retries,
i.e. the polls, run at once in this process); the double's long-running
operations settle on their second read, as this module's ``SettlingAzureML``
arranges.
"""

from __future__ import annotations

import importlib
import io
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

import cloud
from accounts.models import Notification
from audit.models import AuditEvent
from cloud.azure import AzureProvider
from tests.cloud.azure_transport import (
    RESOURCE_GROUP,
    SUBSCRIPTION,
    WORKSPACE,
    FakeAzureML,
    Recorded,
)
from tests.cloud.test_azure import OBJECT_ID, TENANT, FakeCredential
from workspaces import services, tasks
from workspaces.models import NO_INSTANCE_ALLOWLIST, Workspace, WorkspaceState

S = WorkspaceState
SALT = "k7q"
pytestmark = pytest.mark.django_db


class SettlingAzureML(FakeAzureML):
    """The Azure double, with long-running operations that settle on their
    second read: as ``outcome``, after ``on_settle`` changed what Azure holds
    (the compute's state, as the operation would have)."""

    def __init__(self) -> None:
        super().__init__()
        self.outcome: dict[str, Any] = {"status": "Succeeded"}
        self.on_settle: Callable[[], None] = lambda: None
        self.reads: Counter[str] = Counter()

    def _arm(self, r: Recorded) -> tuple[int, dict[str, str], Any]:
        if m := re.fullmatch(r".*/computeOperationsStatus/([\w-]+)", r.path):
            op = m.group(1)
            self.reads[op] += 1
            if self.reads[op] == 2 and op in self.operations:
                self.operations[op] = dict(self.outcome)
                self.on_settle()
        return super()._arm(r)


@pytest.fixture
def azure() -> SettlingAzureML:
    return SettlingAzureML()


@pytest.fixture
def on_azure(settings: Any, azure: SettlingAzureML) -> Iterator[AzureProvider]:
    """The portal configured for Azure ML, its provider talking to the double."""
    settings.CLOUD_PROVIDER = "azure"
    settings.AZURE_SUBSCRIPTION_ID = SUBSCRIPTION
    settings.AZURE_RESOURCE_GROUP = RESOURCE_GROUP
    settings.AZURE_ML_WORKSPACE = WORKSPACE
    settings.AZURE_TENANT_ID = TENANT
    settings.AZURE_NAME_SALT = SALT
    settings.AZURE_WORKSPACE_ALLOWED_IPS = ["20.61.0.0/16", "52.1.2.3"]
    settings.WORKSPACES_POLL_SECONDS = 0
    settings.WORKSPACES_MAX_POLLS = 5
    provider = AzureProvider(
        subscription_id=SUBSCRIPTION,
        resource_group=RESOURCE_GROUP,
        workspace=WORKSPACE,
        name_salt=SALT,
        tenant_id=TENANT,
        workspace_allowed_ips=settings.AZURE_WORKSPACE_ALLOWED_IPS,
        credential=FakeCredential(),
        transport=azure,
        sleep=lambda seconds: None,
        rng=random.Random(7),
    )
    cloud._providers["azure"] = provider
    yield provider
    cloud._providers.pop("azure", None)


@pytest.fixture
def bob_in_entra(bob: Any) -> Any:
    bob.entra_object_id = OBJECT_ID
    bob.save(update_fields=["entra_object_id"])
    return bob


def provision(ws: Workspace) -> Any:
    return tasks.workspace_provision.apply(kwargs={"workspace_id": ws.pk}).get()


def compute_body(azure: FakeAzureML, ws: Workspace) -> dict[str, Any]:
    return azure.computes[ws.provider_name.lower()]


# --- names ------------------------------------------------------------------------------


def test_an_azure_workspace_keeps_the_salted_name_it_was_given(
    on_azure: AzureProvider,
    azure: SettlingAzureML,
    bob_in_entra: Any,
    project: Any,
    small: Any,
    settings: Any,
) -> None:
    ws = services.workspace_request(actor=bob_in_entra, project=project, name="nb", size=small)
    assert ws.provider_name == f"sg-{SALT}-ws{ws.pk}"
    cluster = services.workspace_request(
        actor=bob_in_entra, project=project, name="cl", size=small, kind="cluster", max_nodes=2
    )
    assert cluster.provider_name == f"{SALT}-cl{cluster.pk}"
    requested = AuditEvent.objects.get(action="workspace.requested", object_id=str(ws.pk))
    assert requested.payload["provider_name"] == ws.provider_name

    # A later change of the salt does not rename what exists: the delete goes
    # to the instance the row was created as.
    settings.AZURE_NAME_SALT = "zz9"
    azure.add_compute(ws.provider_name)
    azure.on_settle = lambda: azure.computes.clear()
    services.workspace_delete(actor=bob_in_entra, workspace=ws)
    assert tasks.workspace_delete_task.apply(kwargs={"workspace_id": ws.pk}).get() == "deleted"
    (delete,) = azure.calls("DELETE")
    assert delete.path.endswith(f"/computes/sg-{SALT}-ws{ws.pk}")


def test_local_workspaces_keep_their_historical_names(
    bob: Any, project: Any, small: Any, settings: Any
) -> None:
    settings.AZURE_NAME_SALT = SALT  # an Azure salt is no business of the local provider
    ws = services.workspace_request(actor=bob, project=project, name="nb", size=small)
    assert ws.provider == "local" and ws.provider_name == f"sg-ws-{ws.pk}"


def test_an_invalid_salt_refuses_the_request_before_anything_is_kept(
    on_azure: AzureProvider, settings: Any, bob_in_entra: Any, project: Any, small: Any
) -> None:
    for salt in ("Not-A-Salt", ""):
        settings.AZURE_NAME_SALT = salt
        with pytest.raises(ValidationError, match="AZURE_NAME_SALT"):
            services.workspace_request(actor=bob_in_entra, project=project, name="nb", size=small)
    assert not Workspace.objects.exists()


def test_the_migration_names_existing_rows_as_they_were_named(
    settings: Any, bob: Any, project: Any, small: Any
) -> None:
    migration = importlib.import_module("workspaces.migrations.0002_provider_name_operation_url")
    common = {"project": project, "owner": bob, "size": small}
    local = Workspace.objects.create(name="a", provider="local", **common)
    cluster = Workspace.objects.create(name="b", provider="local", kind="cluster", **common)
    azure_ws = Workspace.objects.create(name="c", provider="azure", **common)
    settings.AZURE_NAME_SALT = ""
    migration.name_existing(django_apps, None)
    names = dict(Workspace.objects.values_list("pk", "provider_name"))
    assert names == {
        local.pk: f"sg-ws-{local.pk}",
        cluster.pk: f"sg-cl-{cluster.pk}",
        azure_ws.pk: "",
    }
    settings.AZURE_NAME_SALT = SALT
    migration.name_existing(django_apps, None)
    assert Workspace.objects.get(pk=azure_ws.pk).provider_name == f"sg-{SALT}-ws{azure_ws.pk}"
    # A row left unnamed is named on first use.
    Workspace.objects.filter(pk=local.pk).update(provider_name="")
    local.refresh_from_db()
    assert local.ensure_provider_name() == f"sg-ws-{local.pk}"


# --- provisioning, the owner's object id, the operation URL --------------------------------


def test_a_notebook_is_created_for_its_owner_and_runs(
    on_azure: AzureProvider, azure: SettlingAzureML, bob_in_entra: Any, project: Any, small: Any
) -> None:
    ws = services.workspace_request(actor=bob_in_entra, project=project, name="nb", size=small)
    kept: list[str] = []

    def running() -> None:
        # While the operation runs, the row holds its URL (the polls read it from there).
        kept.append(Workspace.objects.get(pk=ws.pk).operation_url)
        azure.set_state(ws.provider_name, "Running")
        compute_body(azure, ws)["properties"]["provisioningState"] = "Succeeded"
        compute_body(azure, ws)["properties"]["properties"]["applications"] = [
            {"displayName": "Jupyter Lab", "endpointUri": "https://nb.westeurope.instances/lab"}
        ]

    azure.on_settle = running
    assert provision(ws) == "running"

    (put,) = azure.calls("PUT")
    assert put.path.endswith(f"/computes/sg-{SALT}-ws{ws.pk}")
    assert put.body["properties"]["properties"]["personalComputeInstanceSettings"] == {
        "assignedUser": {"objectId": OBJECT_ID, "tenantId": TENANT}
    }
    reads = azure.calls("GET", "computeOperationsStatus")
    assert len(reads) == 2  # each poll read it
    assert kept == [reads[0].url] and "computeOperationsStatus" in kept[0]
    ws.refresh_from_db()
    assert ws.state == S.RUNNING
    assert ws.url == "https://nb.westeurope.instances/lab"
    assert ws.operation_url == ""  # settled, forgotten


def test_a_failed_create_operation_fails_the_workspace_with_azures_message(
    on_azure: AzureProvider, azure: SettlingAzureML, bob_in_entra: Any, project: Any, small: Any
) -> None:
    message = (
        "Operation could not be completed as it results in exceeding approved "
        "standardDSv2Family Cores quota."
    )
    azure.outcome = {"status": "Failed", "error": {"code": "QuotaExceeded", "message": message}}
    ws = services.workspace_request(actor=bob_in_entra, project=project, name="nb", size=small)
    # The instance itself still says "Creating": only the operation knows.
    assert provision(ws) == "failed"
    ws.refresh_from_db()
    assert ws.state == S.FAILED
    assert ws.state_reason == f"provision failed: {message}"
    assert ws.operation_url == ""
    assert compute_body(azure, ws)["properties"]["properties"]["state"] == "Creating"
    failed = AuditEvent.objects.get(action="workspace.failed", object_id=str(ws.pk))
    assert failed.payload["reason"] == ws.state_reason
    assert Notification.objects.filter(user=bob_in_entra, text__contains=message).exists()


def test_a_notebook_for_a_user_without_object_id_is_refused_before_any_request(
    on_azure: AzureProvider,
    azure: SettlingAzureML,
    bob: Any,
    project: Any,
    small: Any,
    api_for: Any,
    client_for: Any,
) -> None:
    with pytest.raises(ValidationError, match="Entra ID"):
        services.workspace_request(actor=bob, project=project, name="nb", size=small)

    answer = api_for(bob).post(
        "/api/projects/churn/workspaces/", {"name": "nb", "size": small.name}, format="json"
    )
    assert answer.status_code == 400
    assert "Entra ID" in str(answer.json())

    page = client_for(bob).post(
        "/projects/churn/workspaces/",
        {"name": "nb", "kind": "notebook", "size": small.pk, "idle_shutdown_minutes": 60},
    )
    assert page.status_code == 200
    assert "Entra ID object id" in page.content.decode()

    assert not Workspace.objects.exists()
    assert azure.requests == []

    # A cluster belongs to no one person: it needs no object id.
    cluster = services.workspace_request(
        actor=bob, project=project, name="cl", size=small, kind="cluster", max_nodes=1
    )
    assert cluster.state == S.APPROVED


def test_the_local_provider_needs_no_object_id(bob: Any, project: Any, small: Any) -> None:
    assert services.workspace_request(actor=bob, project=project, name="nb", size=small).pk


# --- the per-workspace allowlist ----------------------------------------------------------


def test_an_allowlist_is_refused_on_azure_and_hidden_on_its_pages(
    on_azure: AzureProvider,
    azure: SettlingAzureML,
    bob_in_entra: Any,
    project: Any,
    small: Any,
    api_for: Any,
    client_for: Any,
) -> None:
    with pytest.raises(ValidationError) as refused:
        services.workspace_request(
            actor=bob_in_entra, project=project, name="nb", size=small, allowed_ips=["203.0.113.7"]
        )
    assert refused.value.message_dict == {"allowed_ips": [NO_INSTANCE_ALLOWLIST]}

    answer = api_for(bob_in_entra).post(
        "/api/projects/churn/workspaces/",
        {"name": "nb", "size": small.name, "allowed_ips": ["203.0.113.7"]},
        format="json",
    )
    assert answer.status_code == 400
    assert answer.json() == {"allowed_ips": [NO_INSTANCE_ALLOWLIST]}

    client = client_for(bob_in_entra)
    form = client.get("/projects/churn/workspaces/").content.decode()
    assert 'name="allowed_ips"' not in form
    assert NO_INSTANCE_ALLOWLIST in form
    posted = client.post(
        "/projects/churn/workspaces/",
        {
            "name": "nb",
            "kind": "notebook",
            "size": small.pk,
            "idle_shutdown_minutes": 60,
            "allowed_ips": "203.0.113.7",
        },
    )
    assert posted.status_code == 200
    assert f'<ul class="errorlist nonfield"><li>{NO_INSTANCE_ALLOWLIST}</li>' in (
        posted.content.decode()
    )
    assert not Workspace.objects.exists()
    assert azure.requests == []

    ws = services.workspace_request(actor=bob_in_entra, project=project, name="nb", size=small)
    detail = client.get(f"/projects/churn/workspaces/{ws.pk}/").content.decode()
    assert 'name="allowed_ips"' not in detail
    assert NO_INSTANCE_ALLOWLIST in detail

    put = api_for(bob_in_entra).put(
        f"/api/projects/churn/workspaces/{ws.pk}/allowed-ips/",
        {"allowed_ips": ["203.0.113.7"]},
        format="json",
    )
    assert put.status_code == 400 and put.json() == {"allowed_ips": [NO_INSTANCE_ALLOWLIST]}
    # Clearing is no rule at all: accepted.
    services.workspace_allowed_ips_set(actor=bob_in_entra, workspace=ws, cidrs=[])


def test_the_local_pages_still_offer_the_allowlist(
    bob: Any, project: Any, small: Any, client_for: Any
) -> None:
    ws = services.workspace_request(
        actor=bob, project=project, name="nb", size=small, allowed_ips=["203.0.113.7"]
    )
    assert ws.allowed_ips == ["203.0.113.7/32"]
    client = client_for(bob)
    assert 'name="allowed_ips"' in client.get("/projects/churn/workspaces/").content.decode()
    detail = client.get(f"/projects/churn/workspaces/{ws.pk}/").content.decode()
    assert 'name="allowed_ips"' in detail and NO_INSTANCE_ALLOWLIST not in detail


def test_the_portal_agrees_with_the_providers_on_instance_allowlists() -> None:
    from cloud.local import LocalProvider
    from workspaces.models import instance_allowlist_supported

    assert instance_allowlist_supported("azure") is AzureProvider.supports_instance_allowlist
    assert instance_allowlist_supported("local") is getattr(
        LocalProvider, "supports_instance_allowlist", True
    )


# --- the Azure ML workspace's network rules --------------------------------------------


def test_the_admin_command_applies_the_workspace_rules_and_audits_them(
    on_azure: AzureProvider, azure: SettlingAzureML
) -> None:
    azure.workspace["properties"]["managedNetwork"] = {"isolationMode": "AllowInternetOutbound"}
    stdout = io.StringIO()
    call_command("azure_network_apply", stdout=stdout)
    out = stdout.getvalue()
    assert "20.61.0.0/16" in out and "52.1.2.3" in out and "2 IP rules" in out
    assert azure.calls("PATCH")[-1].body == {
        "properties": {
            "networkAcls": {
                "defaultAction": "Deny",
                "ipRules": [{"value": "20.61.0.0/16"}, {"value": "52.1.2.3"}],
            }
        }
    }
    event = AuditEvent.objects.get(action="azure.network_applied")
    assert event.actor is None
    assert event.object_id == WORKSPACE
    assert event.payload == {
        "workspace": WORKSPACE,
        "rules": ["20.61.0.0/16", "52.1.2.3"],
        "default_action": "Deny",
    }


def test_the_admin_command_refuses_what_azure_would_refuse(
    on_azure: AzureProvider, azure: SettlingAzureML
) -> None:
    # No managed network and no private endpoint: Azure takes no IP rules.
    with pytest.raises(CommandError, match="managed network or a private endpoint"):
        call_command("azure_network_apply")
    assert azure.calls("PATCH") == []
    assert not AuditEvent.objects.filter(action="azure.network_applied").exists()


def test_the_admin_command_refuses_without_azure_settings(settings: Any) -> None:
    settings.AZURE_SUBSCRIPTION_ID = ""
    cloud._providers.pop("azure", None)
    with pytest.raises(CommandError, match="not configured.*AZURE_SUBSCRIPTION_ID"):
        call_command("azure_network_apply")
    assert not AuditEvent.objects.filter(action="azure.network_applied").exists()
