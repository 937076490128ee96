"""Quota and budget rules, transitions and their audit, approvals, metering."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from accounts.models import Notification
from audit.models import AuditEvent
from compute import selectors as compute_selectors
from compute import services as compute_services
from compute.models import BudgetAlert, Quota, UsageInterval
from governance.models import ApprovalRequest, ApprovalState
from governance.services import approval_decide
from workspaces import selectors, services
from workspaces.models import IdleShutdown, Workspace, WorkspaceState

S = WorkspaceState
pytestmark = pytest.mark.django_db


def request(actor: Any, project: Any, size: Any, name: str = "nb", **kw: Any) -> Workspace:
    return services.workspace_request(actor=actor, project=project, name=name, size=size, **kw)


def actions(ws: Workspace) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_type="workspaces.workspace", object_id=str(ws.pk))
        .order_by("sequence")
        .values_list("action", flat=True)
    )


def run(ws: Workspace, url: str = "http://127.0.0.1:1/lab?token=t") -> Workspace:
    """Play the provisioning task's part: claim, then record it running."""
    assert services.workspace_claim(workspace_id=ws.pk, operation="provision", task_id="t1")
    assert services.workspace_mark_running(workspace_id=ws.pk, url=url)
    ws.refresh_from_db()
    return ws


def test_request_within_quota_is_approved_at_once_and_queued(
    project: Any, bob: Any, small: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        ws = request(bob, project, small, idle_shutdown_minutes=30, allowed_ips=["203.0.113.7"])
    assert ws.state == S.APPROVED
    assert ws.allowed_ips == ["203.0.113.7/32"]
    assert ws.idle_shutdown_seconds == 1800
    assert actions(ws) == ["workspace.requested", "workspace.approved"]
    # Provisioning is queued after commit (one callback: the task dispatch).
    assert len(callbacks) == 1
    assert not ApprovalRequest.objects.exists()
    quota = Quota.objects.get(project=project)
    assert (quota.max_vcpus, quota.max_gpus, quota.max_running) == (8, 0, 2)


def test_gpu_request_goes_to_platform_admins_with_estimate_and_exceeded_quota(
    project: Any, bob: Any, admin_user: Any, gpu: Any
) -> None:
    ws = request(bob, project, gpu, name="train")
    assert ws.state == S.PENDING_APPROVAL
    approval = ApprovalRequest.objects.get()
    assert approval.kind == "compute" and approval.requires_staff
    assert approval.summary == (
        "Requested a notebook workspace “train” (4 vCPUs, 28 GB, 1 × NVIDIA T4, about $0.53/hour); "
        "exceeds the project's GPU quota (1 of 0 with this request; 0 in use); "
        "exceeds the requester's GPU quota (1 of 0 with this request; 0 in use)"
    )
    assert ws.quota_exceeded == [
        "Project GPUs: 0 in use + 1 requested > 0",
        "Your GPUs: 0 in use + 1 requested > 0",
    ]
    assert Notification.objects.filter(user=admin_user).count() == 1
    from governance.approvals import kind_for

    described = kind_for("compute").describe(request=approval)
    assert described["gpus"] == 1 and described["monthly_estimate_always_on"] == "383.98"
    assert described["quota_exceeded"] == "; ".join(ws.quota_exceeded)


def test_admin_approval_queues_provisioning_and_four_eyes_hold(
    project: Any, bob: Any, admin_user: Any, gpu: Any, django_capture_on_commit_callbacks: Any
) -> None:
    ws = request(bob, project, gpu)
    approval = ApprovalRequest.objects.get()
    with pytest.raises(PermissionDenied):
        approval_decide(actor=bob, approval_id=approval.pk, approve=True)
    with django_capture_on_commit_callbacks() as callbacks:
        approval_decide(actor=admin_user, approval_id=approval.pk, approve=True)
    ws.refresh_from_db()
    assert ws.state == S.APPROVED
    assert len(callbacks) >= 1  # provisioning dispatched after commit
    assert actions(ws)[-1] == "workspace.approved"
    event = AuditEvent.objects.filter(action="workspace.approved").get()
    assert event.payload["by"] == "admin" and event.actor_username == "admin"


def test_rejection_records_the_reason(project: Any, bob: Any, admin_user: Any, gpu: Any) -> None:
    ws = request(bob, project, gpu)
    approval = ApprovalRequest.objects.get()
    approval_decide(
        actor=admin_user, approval_id=approval.pk, approve=False, comment="No GPUs in Q4"
    )
    ws.refresh_from_db()
    assert ws.state == S.REJECTED
    assert ws.state_reason == "Request rejected: No GPUs in Q4"


def test_over_quota_requests_in_one_project_wait_side_by_side(
    project: Any, bob: Any, alice: Any, gpu: Any
) -> None:
    request(bob, project, gpu, name="one")
    request(alice, project, gpu, name="two")
    # Each workspace has its own request; a second one cancels nothing.
    assert Workspace.objects.count() == 2
    assert list(ApprovalRequest.objects.values_list("state", flat=True)) == [
        ApprovalState.PENDING,
        ApprovalState.PENDING,
    ]


def test_vcpu_and_running_limits_count_active_workspaces_only(
    project: Any, bob: Any, alice: Any, medium: Any, small: Any
) -> None:
    one = request(bob, project, medium, name="one")
    two = request(alice, project, medium, name="two")
    assert (one.state, two.state) == (S.APPROVED, S.APPROVED)
    third = request(bob, project, small, name="three")  # 4 + 4 + 2 > 8, and 3 > 2 running
    assert third.state == S.PENDING_APPROVAL
    assert third.quota_exceeded == [
        "Project vCPUs: 8 in use + 2 requested > 8",
        "Project running workspaces: 2 + 1 > 2",
    ]
    services.workspace_delete(actor=bob, workspace=third)
    run(one)
    services.workspace_stop(actor=bob, workspace=one)
    services.workspace_mark_stopped(workspace_id=one.pk)
    # A stopped workspace holds nothing: room for another.
    assert request(bob, project, small, name="four").state == S.APPROVED


def test_user_quota_applies_across_projects(
    project: Any, bob: Any, small: Any, admin_user: Any
) -> None:
    compute_services.quota_set(actor=admin_user, user=bob, max_vcpus=2, max_gpus=0, max_running=1)
    assert request(bob, project, small, name="one").state == S.APPROVED
    second = request(bob, project, small, name="two")
    assert second.state == S.PENDING_APPROVAL
    assert "Your vCPUs: 2 in use + 2 requested > 2" in second.quota_exceeded


def test_budget_at_100_percent_needs_an_admin_and_80_percent_tells_the_lead(
    project: Any, alice: Any, bob: Any, small: Any
) -> None:
    project.monthly_budget = Decimal("100.00")
    project.save()
    ws = run(request(bob, project, small))
    now = datetime.now(UTC)
    # 85 of 100 spent this month: one closed interval worth 85.
    UsageInterval.objects.create(
        resource_type="workspaces.workspace",
        resource_id=ws.pk,
        resource_name=ws.name,
        project=project,
        user=bob,
        size=small,
        size_name=small.name,
        hourly_price=Decimal(85),
        started_at=now,
        ended_at=now,
        day=now.date(),
        cost=Decimal(85),
    )
    assert compute_services.budget_alerts_check(project=project) == [80]
    assert compute_services.budget_alerts_check(project=project) == []  # once a month
    note = Notification.objects.get(user=alice)
    assert "80% of the monthly compute budget" in note.text
    assert not Notification.objects.filter(user=bob).exists()
    assert request(bob, project, small, name="two").state == S.APPROVED
    UsageInterval.objects.filter(cost=85).update(cost=Decimal(100))
    assert compute_services.budget_alerts_check(project=project) == [100]
    third = request(bob, project, small, name="three")
    assert third.state == S.PENDING_APPROVAL
    assert third.quota_exceeded[-1].startswith("Project budget: 100")
    assert BudgetAlert.objects.count() == 2


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("allowed_ips", {"allowed_ips": ["10.0.0.0/33"]}),
        ("allowed_ips", {"allowed_ips": ["10.0.0.1/8"]}),  # host bits set
        ("allowed_ips", {"allowed_ips": ["example.com"]}),
        ("idle_shutdown_minutes", {"idle_shutdown_minutes": 5}),
        ("idle_shutdown_minutes", {"idle_shutdown_minutes": 100000}),
        ("max_nodes", {"kind": "cluster", "min_nodes": 3, "max_nodes": 2}),
        ("max_nodes", {"kind": "cluster", "min_nodes": 0, "max_nodes": 1000}),
        ("name", {"name": ""}),
    ],
)
def test_bad_requests_change_nothing(
    project: Any, bob: Any, small: Any, field: str, kwargs: dict[str, Any]
) -> None:
    kwargs = {"name": "nb", **kwargs}
    with pytest.raises(ValidationError) as err:
        services.workspace_request(actor=bob, project=project, size=small, **kwargs)
    assert field in err.value.message_dict
    assert (
        not Workspace.objects.exists()
        and not AuditEvent.objects.filter(action__startswith="workspace.").exists()
    )


def test_disabled_size_and_read_only_members_are_refused(
    project: Any, carol: Any, bob: Any, small: Any
) -> None:
    with pytest.raises(PermissionDenied):
        request(carol, project, small)
    small.enabled = False
    small.save()
    with pytest.raises(ValidationError):
        request(bob, project, small)


def test_lifecycle_transitions_are_audited_and_metered(
    project: Any, bob: Any, small: Any, medium: Any
) -> None:
    ws = run(request(bob, project, small))
    assert ws.state == S.RUNNING and ws.provisioned
    assert (
        UsageInterval.objects.get(resource_type="workspaces.workspace", resource_id=ws.pk).ended_at
        is None
    )
    with pytest.raises(services.WorkspaceConflict) as err:
        services.workspace_start(actor=bob, workspace=ws)
    assert err.value.state == S.RUNNING
    with pytest.raises(ValidationError):
        services.workspace_resize(actor=bob, workspace=ws, size=small)
    services.workspace_resize(actor=bob, workspace=ws, size=medium)
    ws.refresh_from_db()
    assert ws.state == S.RESIZING and ws.requested_size == medium
    assert services.workspace_claim(workspace_id=ws.pk, operation="resize", task_id="t2")
    assert services.workspace_mark_running(workspace_id=ws.pk, working=S.RESIZING)
    ws.refresh_from_db()
    assert ws.size == medium and ws.requested_size is None
    intervals = list(
        UsageInterval.objects.filter(
            resource_type="workspaces.workspace", resource_id=ws.pk
        ).order_by("started_at")
    )
    assert [i.size_name for i in intervals] == [small.name, medium.name]
    assert intervals[0].ended_at is not None and intervals[1].hourly_price == medium.hourly_price
    services.workspace_stop(actor=bob, workspace=ws)
    services.workspace_mark_stopped(workspace_id=ws.pk)
    services.workspace_delete(actor=bob, workspace=ws)
    assert services.workspace_claim(workspace_id=ws.pk, operation="delete", task_id="t3")
    assert services.workspace_mark_deleted(workspace_id=ws.pk)
    ws.refresh_from_db()
    assert ws.state == S.DELETED
    assert actions(ws) == [
        "workspace.requested",
        "workspace.approved",
        "workspace.provision_attempt",
        "workspace.running",
        "workspace.resizing",
        "workspace.resize_attempt",
        "workspace.running",
        "workspace.stopping",
        "workspace.stopped",
        "workspace.deleting",
        "workspace.delete_attempt",
        "workspace.deleted",
    ]
    assert not UsageInterval.objects.filter(ended_at__isnull=True).exists()


def test_claims_are_conditional(project: Any, bob: Any, small: Any) -> None:
    ws = request(bob, project, small)
    assert services.workspace_claim(workspace_id=ws.pk, operation="provision", task_id="a")
    # Another task finds nothing; the same task (a retry or redelivery) claims again.
    assert services.workspace_claim(workspace_id=ws.pk, operation="provision", task_id="b") is None
    again = services.workspace_claim(workspace_id=ws.pk, operation="provision", task_id="a")
    assert again is not None and again.attempts == 2
    assert services.workspace_claim(workspace_id=ws.pk, operation="stop", task_id="a") is None
    assert services.workspace_mark_stopped(workspace_id=ws.pk) is False
    assert services.workspace_mark_failed(
        workspace_id=ws.pk, reason="quota at Azure", working=S.PROVISIONING
    )
    ws.refresh_from_db()
    assert ws.state == S.FAILED and ws.state_reason == "quota at Azure"
    assert Notification.objects.get(user=bob).text == "Churn: workspace “nb” failed: quota at Azure"


def test_only_owner_and_lead_manage_a_workspace(
    project: Any, alice: Any, bob: Any, carol: Any, dave: Any, admin_user: Any, small: Any
) -> None:
    ws = run(request(bob, project, small))
    for outsider in (carol, dave, admin_user):
        with pytest.raises(PermissionDenied):
            services.workspace_resize(actor=outsider, workspace=ws, size=small)
    # The lead may stop it, and so may a platform admin (cost control).
    services.workspace_stop(actor=admin_user, workspace=ws)
    services.workspace_mark_stopped(workspace_id=ws.pk)
    services.workspace_start(actor=alice, workspace=ws)
    ws.refresh_from_db()
    assert ws.state == S.APPROVED


def test_allowlist_changes_are_validated_and_audited(project: Any, bob: Any, small: Any) -> None:
    ws = request(bob, project, small)
    with pytest.raises(ValidationError):
        services.workspace_allowed_ips_set(actor=bob, workspace=ws, cidrs=["300.1.1.1"])
    services.workspace_allowed_ips_set(
        actor=bob, workspace=ws, cidrs=["198.51.100.0/24", "2001:db8::/32"]
    )
    event = AuditEvent.objects.get(action="workspace.allowed_ips_changed")
    assert event.payload == {"before": [], "after": ["198.51.100.0/24", "2001:db8::/32"]}


def test_idle_stop_records_why_and_the_avoided_cost(project: Any, bob: Any, small: Any) -> None:
    ws = run(request(bob, project, small))
    services.workspace_stop(actor=None, workspace=ws, idle_seconds=3725)
    ws.refresh_from_db()
    assert ws.state == S.STOPPING
    assert ws.state_reason == "Stopped after 62 idle minutes (idle shutdown after 60)."
    note = Notification.objects.get(user=bob)
    assert note.text == f"Churn: workspace “nb” stopped: {ws.state_reason}"
    assert note.url == f"/projects/churn/workspaces/{ws.pk}/"
    shutdown = IdleShutdown.objects.get()
    later = shutdown.stopped_at + timedelta(hours=10)
    avoided = selectors.idle_cost_avoided(month=later.date(), now=later)
    assert avoided == (small.hourly_price * 10).quantize(Decimal("0.01"))


def test_usage_is_split_by_day_and_priced_at_the_time(project: Any, bob: Any, small: Any) -> None:
    ws = run(request(bob, project, small))
    interval = UsageInterval.objects.get(resource_type="workspaces.workspace", resource_id=ws.pk)
    start = datetime(2026, 3, 30, 22, 0, tzinfo=UTC)
    interval.started_at, interval.day = start, start.date()
    interval.save()
    compute_services.usage_interval_close(interval=interval, end=start + timedelta(hours=28))
    rows = list(
        UsageInterval.objects.filter(resource_type="workspaces.workspace", resource_id=ws.pk)
        .order_by("day")
        .values_list("day", "cost")
    )
    assert [d.isoformat() for d, _ in rows] == ["2026-03-30", "2026-03-31", "2026-04-01"]
    price = small.hourly_price
    assert [c for _, c in rows] == [price * 2, price * 24, price * 2]
    march = selectors.costs_for_month(month=start.date())
    assert march["total"] == (price * 26).quantize(Decimal("0.01"))
    assert march["by_user"] == [{"name": "bob", "cost": (price * 26).quantize(Decimal("0.01"))}]
    # A price change later does not reprice what was used.
    small.hourly_price = Decimal(9)
    small.save()
    assert selectors.costs_for_month(month=start.date())["total"] == march["total"]


def test_roll_over_keeps_open_intervals_within_a_day(project: Any, bob: Any, small: Any) -> None:
    ws = run(request(bob, project, small))
    interval = UsageInterval.objects.get(resource_type="workspaces.workspace", resource_id=ws.pk)
    interval.started_at = interval.started_at - timedelta(days=2)
    interval.day = interval.started_at.date()
    interval.save()
    assert compute_services.usage_roll_over() == 1
    assert (
        UsageInterval.objects.filter(
            resource_type="workspaces.workspace", resource_id=ws.pk, ended_at__isnull=False
        ).count()
        == 2
    )
    assert (
        UsageInterval.objects.get(
            resource_type="workspaces.workspace", resource_id=ws.pk, ended_at__isnull=True
        ).day
        == datetime.now(UTC).date()
    )


def test_quota_set_is_admin_only_validated_and_audited(
    project: Any, alice: Any, admin_user: Any
) -> None:
    with pytest.raises(PermissionDenied):
        compute_services.quota_set(actor=alice, project=project, max_gpus=4)
    with pytest.raises(ValidationError):
        compute_services.quota_set(actor=admin_user, project=project, max_vcpus=-1)
    compute_services.quota_set(
        actor=admin_user, project=project, max_gpus=2, monthly_budget=Decimal(500)
    )
    event = AuditEvent.objects.get(action="quota.changed")
    assert event.payload["before"] == {"max_gpus": 0, "monthly_budget": None}
    assert compute_selectors.project_budget(project=project) == Decimal(500)


def test_operations_whose_lease_ran_out_are_dispatched_again(
    project: Any,
    bob: Any,
    alice: Any,
    small: Any,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from django.utils import timezone

    from background.leases import lease_recover

    lost = request(bob, project, small, name="lost")  # approved, its task never ran
    slow = request(alice, project, small, name="slow")
    lost.refresh_from_db()
    assert lost.lease_owner == "" and lost.lease_expires_at is not None
    services.workspace_claim(
        workspace_id=slow.pk, operation="provision", task_id="alive", owner="w1:alive"
    )
    slow.refresh_from_db()
    assert slow.lease_owner == "w1:alive" and slow.attempts == 1
    work = services.OPERATIONS_WORK
    # Within its lease (the claimed one) or its grace (the waiting one): nothing to do.
    soon = timezone.now() + timedelta(seconds=settings.BACKGROUND_LEASE_SECONDS / 2)
    with django_capture_on_commit_callbacks() as callbacks:
        assert lease_recover(work, now=soon) == {"redispatched": [], "failed": []}
    assert callbacks == []
    later = timezone.now() + timedelta(seconds=settings.BACKGROUND_DISPATCH_GRACE_SECONDS + 1)
    with django_capture_on_commit_callbacks() as callbacks:
        report = lease_recover(work, now=later)
    assert sorted(report["redispatched"]) == sorted([lost.pk, slow.pk])
    assert len(callbacks) == 2
    slow.refresh_from_db()
    assert slow.task_id == "" and slow.lease_owner == "" and slow.state == S.PROVISIONING
    # The next task (a new id) claims it; the lost one's late delivery does not.
    assert services.workspace_claim(workspace_id=slow.pk, operation="provision", task_id="new")
    assert (
        services.workspace_claim(workspace_id=slow.pk, operation="provision", task_id="alive")
        is None
    )


def test_an_operation_that_keeps_losing_its_task_fails_with_the_reason(
    project: Any, bob: Any, small: Any, settings: Any
) -> None:
    from django.utils import timezone

    from background.leases import lease_recover

    settings.BACKGROUND_MAX_ATTEMPTS = 2
    ws = request(bob, project, small)
    now = timezone.now()
    for _ in range(2):
        now += timedelta(days=1)
        assert lease_recover(services.OPERATIONS_WORK, now=now)["redispatched"] == [ws.pk]
    now += timedelta(days=1)
    assert lease_recover(services.OPERATIONS_WORK, now=now)["failed"] == [ws.pk]
    ws.refresh_from_db()
    assert ws.state == S.FAILED
    assert ws.state_reason.startswith("Gave up after 2 attempts")
    assert not services.OPERATIONS_WORK.active().filter(pk=ws.pk).exists()


def test_the_newest_snapshot_of_each_source_is_given_to_the_workspace(
    project: Any, alice: Any, bob: Any, small: Any, settings: Any, tmp_path: Any
) -> None:
    from datasets import services as data_services
    from datasets.models import Snapshot
    from datasets.storage import default_store, object_key
    from workspaces.tasks import data_paths

    settings.STAGEGATE_STORAGE_URL = f"file://{tmp_path / 'storage'}"
    source = data_services.source_create(
        actor=alice, project=project, name="Customers", kind="upload", location="on_prem"
    )
    store = default_store()
    paths = []
    for version, digest in ((1, "a" * 64), (2, "b" * 64)):
        key = object_key(digest)
        path = store.local_path(key)
        assert path is not None
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("x,y\n1,2\n")
        paths.append(path)
        Snapshot.objects.create(
            source=source,
            version=version,
            sha256=digest,
            size=8,
            data_format="csv",
            rows=1,
            storage_key=key,
        )
    ws = request(bob, project, small)
    assert data_paths(ws) == (paths[1],)


def test_over_quota_resize_waits_for_an_admin_and_keeps_the_workspace_running(
    project: Any, bob: Any, admin_user: Any, small: Any, gpu: Any
) -> None:
    ws = run(request(bob, project, small))
    services.workspace_resize(actor=bob, workspace=ws, size=gpu)
    ws.refresh_from_db()
    assert ws.state == S.RUNNING and ws.requested_size == gpu and ws.approval is not None
    with pytest.raises(services.WorkspaceConflict):
        services.workspace_resize(actor=bob, workspace=ws, size=gpu)
    assert ws.approval is not None
    approval_decide(actor=admin_user, approval_id=ws.approval.pk, approve=True)
    ws.refresh_from_db()
    assert ws.state == S.RESIZING
    assert services.workspace_claim(workspace_id=ws.pk, operation="resize", task_id="r")
    services.workspace_mark_running(workspace_id=ws.pk, working=S.RESIZING)
    ws.refresh_from_db()
    assert ws.size == gpu and ws.requested_size is None and ws.approval is None


def test_rejected_resize_keeps_the_old_size(
    project: Any, bob: Any, admin_user: Any, small: Any, gpu: Any
) -> None:
    ws = run(request(bob, project, small))
    services.workspace_resize(actor=bob, workspace=ws, size=gpu)
    ws.refresh_from_db()
    assert ws.approval is not None
    approval_decide(
        actor=admin_user, approval_id=ws.approval.pk, approve=False, comment="Use a T4 next month"
    )
    ws.refresh_from_db()
    assert ws.state == S.RUNNING and ws.size == small and ws.requested_size is None
    assert AuditEvent.objects.filter(action="workspace.resize_rejected").exists()


def test_deleting_a_pending_request_withdraws_it(project: Any, bob: Any, gpu: Any) -> None:
    ws = request(bob, project, gpu)
    services.workspace_delete(actor=bob, workspace=ws)
    ws.refresh_from_db()
    assert ws.state == S.DELETED
    assert ApprovalRequest.objects.get().state == ApprovalState.WITHDRAWN


@pytest.fixture
def no_sandbox(tmp_path: Any) -> Any:
    """A local provider on a machine without bubblewrap."""
    import cloud
    from cloud.local import LocalProvider

    cloud.reset_providers()
    cloud._providers["local"] = LocalProvider(tmp_path, bwrap="/nonexistent/bwrap")
    yield
    cloud.reset_providers()


def test_without_a_sandbox_only_platform_admins_get_a_local_notebook(
    project: Any, bob: Any, admin_user: Any, small: Any, no_sandbox: Any
) -> None:
    with pytest.raises(ValidationError, match="only platform admins") as refused:
        request(bob, project, small)
    assert "bubblewrap is not installed" in str(refused.value)
    assert not Workspace.objects.exists()
    # A platform admin may, and the task will start it without a sandbox.
    from projects.models import Membership

    Membership.objects.create(project=project, user=admin_user, role="data_scientist")
    ws = request(admin_user, project, small)
    assert ws.state == WorkspaceState.APPROVED
    from workspaces.tasks import _workspace_spec

    assert _workspace_spec(ws).allow_unsandboxed


def test_with_a_sandbox_nobody_asks_to_run_unsandboxed(project: Any, bob: Any, small: Any) -> None:
    from workspaces.tasks import _workspace_spec

    assert services.local_isolation_status()[0], services.local_isolation_status()[1]
    assert not _workspace_spec(request(bob, project, small)).allow_unsandboxed


def test_the_workspaces_page_says_why_without_a_sandbox(
    client_for: Any, project: Any, bob: Any, small: Any, no_sandbox: Any
) -> None:
    page = client_for(bob).get("/projects/churn/workspaces/").content.decode()
    assert "only platform admins may start one here" in page
    assert "bubblewrap is not installed" in page
