"""A compute request over quota, as its approver and its requester read it:
words, not field names, states or raw data."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import Notification
from governance.models import ApprovalRequest
from governance.services import approval_decide
from workspaces import services

pytestmark = pytest.mark.django_db

RAW = ("pending_approval", "Vcpus", "Hourly estimate", "{'", "quota_exceeded", "Gpus")


def test_the_approval_page_describes_the_request_in_words(
    project: Any, bob: Any, admin_user: Any, gpu: Any, client_for: Any
) -> None:
    services.workspace_request(actor=bob, project=project, name="train", size=gpu)
    approval = ApprovalRequest.objects.get()
    response = client_for(admin_user).get(f"/approvals/{approval.pk}/")
    assert response.status_code == 200
    rows = dict(response.context["subject_rows"])
    assert rows["Request"] == "Notebook workspace “train” for bob"
    assert rows["Size"] == "Standard_NC4as_T4_v3 (4 vCPUs, 28 GB memory, 1 × NVIDIA T4)"
    assert rows["Price"] == ("about $0.53 an hour; about $383.98 a month if it runs all the time")
    assert rows["State"] == "Pending approval"
    assert rows["Why an admin decides"] == (
        "Exceeds the project's GPU quota (1 of 0 with this request; 0 in use); "
        "exceeds the requester's GPU quota (1 of 0 with this request; 0 in use)"
    )
    body = response.content.decode()
    assert "Compute over quota" in body
    # The workspace's own page is one click away.
    assert f'href="/projects/churn/workspaces/{approval.subject_id}/"' in body
    for raw in RAW:
        assert raw not in body, raw


def test_vcpu_limits_read_as_a_sentence(
    project: Any, bob: Any, admin_user: Any, small: Any, medium: Any, client_for: Any
) -> None:
    for name in ("one", "two"):
        services.workspace_request(actor=bob, project=project, name=name, size=medium)
    services.workspace_request(actor=bob, project=project, name="three", size=small)
    approval = ApprovalRequest.objects.get()
    assert approval.summary.startswith(
        "Requested a notebook workspace “three” (2 vCPUs, 8 GB, about $0.10/hour); "
        "exceeds the project's vCPU quota (10 of 8 with this request; 8 in use)"
    )
    rows = dict(client_for(admin_user).get(f"/approvals/{approval.pk}/").context["subject_rows"])
    why = rows["Why an admin decides"]
    assert why.startswith("Exceeds the project's vCPU quota (10 of 8 with this request; 8 in use)")
    assert "limit on running workspaces (3 of 2 with this request; 2 in use)" in why
    assert rows["Size"] == "Standard_D2s_v3 (2 vCPUs, 8 GB memory, no GPU)"


def test_a_rejection_carries_its_comment_to_the_requester(
    project: Any, bob: Any, admin_user: Any, gpu: Any, client_for: Any
) -> None:
    services.workspace_request(actor=bob, project=project, name="train", size=gpu)
    approval = ApprovalRequest.objects.get()
    approval_decide(
        actor=admin_user, approval_id=approval.pk, approve=False, comment="No GPUs in Q4"
    )
    note = Notification.objects.get(user=bob)
    assert note.text.startswith("Churn: admin rejected your request “Requested a notebook")
    assert note.text.endswith(": “No GPUs in Q4”")
    assert note.url == f"/approvals/{approval.pk}/"

    client = client_for(bob)
    body = client.get("/notifications/").content.decode()
    assert f'href="/approvals/{approval.pk}/"' in body and "No GPUs in Q4" in body
    page = client.get(f"/approvals/{approval.pk}/").content.decode()
    assert 'class="callout rejected"' in page and "No GPUs in Q4" in page
    inbox = client.get("/approvals/").content.decode()
    assert "No GPUs in Q4" in inbox
