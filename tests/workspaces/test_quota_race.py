"""Starts and resizes decided at the same moment near the quota, on PostgreSQL:
the quota row lock makes them take turns, so no more fit than the quota allows."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from django.db import connection

from compute import services as compute_services
from workspaces import services
from workspaces.models import Workspace, WorkspaceState

S = WorkspaceState
THREADS = 12


def _quotas(admin: Any, project: Any, users: list[Any], project_vcpus: int) -> None:
    compute_services.quota_set(
        actor=admin, project=project, max_vcpus=project_vcpus, max_gpus=0, max_running=100
    )
    for user in users:
        compute_services.quota_set(
            actor=admin, user=user, max_vcpus=1000, max_gpus=0, max_running=100
        )


def _running(ws: Workspace) -> Workspace:
    assert services.workspace_claim(workspace_id=ws.pk, operation="provision", task_id="t")
    assert services.workspace_mark_running(workspace_id=ws.pk, url="http://127.0.0.1:1/lab")
    ws.refresh_from_db()
    return ws


def _all_at_once(calls: list[Callable[[], Any]]) -> list[BaseException]:
    """Run the calls in threads released together; return what they raised."""
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []
    lock = threading.Lock()

    def one(call: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            call()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def _owners(alice: Any, bob: Any) -> list[Any]:
    return [alice if i % 2 else bob for i in range(THREADS)]


@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_never_exceed_the_quota(
    project: Any, alice: Any, bob: Any, admin_user: Any, small: Any
) -> None:
    _quotas(admin_user, project, [alice, bob], project_vcpus=1000)
    owners = _owners(alice, bob)
    stopped = [
        services.workspace_request(actor=owner, project=project, name=f"nb{i}", size=small)
        for i, owner in enumerate(owners)
    ]
    Workspace.objects.filter(pk__in=[w.pk for w in stopped]).update(state=S.STOPPED)
    # Room for three 2-vCPU notebooks.
    _quotas(admin_user, project, [alice, bob], project_vcpus=6)

    errors = _all_at_once(
        [
            partial(services.workspace_start, actor=owner, workspace=ws)
            for ws, owner in zip(stopped, owners, strict=True)
        ]
    )
    assert errors == []
    states = sorted(Workspace.objects.values_list("state", flat=True))
    assert states.count(S.APPROVED) == 3
    assert states.count(S.PENDING_APPROVAL) == THREADS - 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_resizes_never_exceed_the_quota(
    project: Any, alice: Any, bob: Any, admin_user: Any, small: Any, medium: Any
) -> None:
    _quotas(admin_user, project, [alice, bob], project_vcpus=1000)
    owners = _owners(alice, bob)
    running = [
        _running(
            services.workspace_request(actor=owner, project=project, name=f"nb{i}", size=small)
        )
        for i, owner in enumerate(owners)
    ]
    # 24 vCPUs in use; room for two of them to grow from 2 to 4 vCPUs.
    _quotas(admin_user, project, [alice, bob], project_vcpus=2 * THREADS + 4)

    errors = _all_at_once(
        [
            partial(services.workspace_resize, actor=owner, workspace=ws, size=medium)
            for ws, owner in zip(running, owners, strict=True)
        ]
    )
    assert errors == []
    resizing = Workspace.objects.filter(state=S.RESIZING)
    waiting = Workspace.objects.filter(state=S.RUNNING, approval__isnull=False)
    assert resizing.count() == 2
    assert waiting.count() == THREADS - 2


@pytest.mark.django_db
def test_an_approved_resize_counts_at_its_new_size_before_it_finishes(
    project: Any, bob: Any, admin_user: Any, small: Any, medium: Any
) -> None:
    _quotas(admin_user, project, [bob], project_vcpus=1000)
    first, second = (
        _running(services.workspace_request(actor=bob, project=project, name=n, size=small))
        for n in ("a", "b")
    )
    _quotas(admin_user, project, [bob], project_vcpus=6)
    assert services.workspace_resize(actor=bob, workspace=first, size=medium).state == S.RESIZING
    second = services.workspace_resize(actor=bob, workspace=second, size=medium)
    assert second.state == S.RUNNING and second.approval is not None
