"""Services of real-time serving: deploy, traffic, promote, rollback, keys.

Every write is keyword-only, in one transaction with its audit event. The
traffic split is changed in the database and on the provider in the same
transaction (the provider call last: if it fails, nothing changed), so that
a rollback answers only once the router already sends the traffic back.

Who may do what: ``endpoint_deploy`` is called by the deployment gate once
a request is approved (the gate decides who may ask); changing the split,
promoting, rolling back and issuing a key are for the project's lead and ML
engineers, without approval. The health check (no actor) rolls back a
failing new deployment and promotes a canary that baked without failing.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record
from background.leases import LeasedWork, lease_waiting
from cloud import get_provider
from cloud.base import (
    DEPLOYMENT_NAMES,
    EndpointSpec,
    ProviderConfigurationError,
    ServingProvider,
    check_traffic,
    endpoint_name,
)
from compute.consumers import Holding
from compute.models import ComputeSize
from compute.selectors import sizes_offered
from compute.services import Demand, quota_decide, usage_close, usage_open
from deployments.serving_models import (
    HOLDING_STATES,
    Deployment,
    DeploymentHealth,
    DeploymentState,
    Endpoint,
    EndpointState,
    RolloutState,
)
from experiments.models import ModelVersion
from projects.models import Membership, Project, Role

OPERATOR_ROLES = frozenset({Role.LEAD, Role.ML_ENGINEER})
MAX_CANARY_PERCENT = 50
KEY_PREFIX = "sgk_"
# A new deployment failing this many health checks in a row is rolled back.
HEALTH_FAILURES_TO_ROLL_BACK = 2


class ServingRefused(Exception):
    """A request that conflicts with the endpoint's state (HTTP 409)."""


def serving_provider(name: str) -> ServingProvider:
    provider = get_provider(name)
    if not isinstance(provider, ServingProvider):
        raise ProviderConfigurationError(f"The {name} provider does not serve models")
    return provider


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _operator(actor: User | None, project: Project) -> None:
    """The lead and the ML engineers operate endpoints (None: the portal itself)."""
    if actor is None:
        return
    membership = Membership.objects.filter(project=project, user=actor).first()
    if membership is None or membership.role not in OPERATOR_ROLES:
        raise PermissionDenied("Only the project's lead and ML engineers operate endpoints.")


def _salt(provider: str) -> str:
    return str(settings.AZURE_NAME_SALT) if provider == "azure" else ""


def endpoint_slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]
    return slug or "model"


def _locked(endpoint_id: int) -> Endpoint:
    return Endpoint.objects.select_for_update().select_related("project").get(pk=endpoint_id)


def _push_traffic(endpoint: Endpoint) -> None:
    serving_provider(endpoint.provider).endpoint_set_traffic(
        endpoint.provider_name, dict(endpoint.traffic), dict(endpoint.mirror)
    )


def _default_size() -> ComputeSize:
    size = sizes_offered().order_by("vcpus", "memory_gb", "pk").first()
    if size is None:
        raise ServingRefused("The compute catalog offers no size to serve on.")
    return size


def _within_quota(*, actor: User, endpoint: Endpoint, slot: str, size: ComputeSize) -> None:
    """The new deployment's size fits the project's and the actor's quotas and
    budgets (what the slot holds now is about to be replaced: not counted)."""
    replaced = Deployment.objects.filter(endpoint=endpoint, name=slot).values_list("pk", flat=True)
    decision = quota_decide(
        project=endpoint.project,
        user=actor,
        demand=Demand(
            size=size,
            resource=("deployments.deployment", replaced[0]) if replaced else None,
        ),
    )
    if not decision.within:
        raise ServingRefused(
            "Over the compute quota: "
            + "; ".join(decision.exceeded)
            + ". A platform admin can raise the quota, or stop a deployment to free compute."
        )


def endpoint_deploy(
    *,
    actor: User | None,
    model_version: ModelVersion,
    canary_percent: int = 0,
    bake_minutes: int = 30,
    size: ComputeSize | None = None,
) -> Deployment:
    """Deploy ``model_version`` behind its model's endpoint (made on first use).

    The version goes into the deployment that has no traffic (``blue`` first,
    then ``green``, ...). Once it runs, it takes all the traffic at once
    (``canary_percent=0``), or ``canary_percent`` of it while it bakes for
    ``bake_minutes``; the health check then promotes it, or rolls it back if
    it fails. One rollout at a time per endpoint.
    """
    if not 0 <= canary_percent <= MAX_CANARY_PERCENT:
        raise ServingRefused(f"A canary takes from 0 to {MAX_CANARY_PERCENT}% of the traffic.")
    if not 0 <= bake_minutes <= 7 * 24 * 60:
        raise ServingRefused("A canary bakes for at most a week.")
    model = model_version.registered_model
    project = model.project
    size = size or _default_size()
    from deployments import serving_tasks

    with transaction.atomic():
        endpoint = (
            Endpoint.objects.select_for_update()
            .filter(project=project, registered_model=model)
            .exclude(state=EndpointState.DELETED)
            .first()
        )
        if endpoint is None:
            name = endpoint_slug(model.name)
            if Endpoint.objects.filter(project=project, name=name).exists():
                name = f"{name[:50]}-{model.pk}"
            endpoint = Endpoint.objects.create(
                project=project,
                registered_model=model,
                name=name,
                provider=settings.CLOUD_PROVIDER,
                # Nobody knows this key: callers get one from endpoint_key_issue.
                key_sha256=key_hash(secrets.token_urlsafe(32)),
                created_by=actor,
            )
            endpoint.provider_name = endpoint_name(endpoint.pk, _salt(settings.CLOUD_PROVIDER))
            endpoint.save(update_fields=["provider_name"])
            audit_record(
                action="endpoint.created",
                actor=actor,
                project=project,
                obj=endpoint,
                payload={"name": endpoint.name, "model": model.name},
            )
        if endpoint.rollout in (RolloutState.STARTING, RolloutState.BAKING):
            raise ServingRefused(
                "A rollout is under way on this endpoint: promote it or roll it back first."
            )
        live = endpoint.live
        slot = next(n for n in DEPLOYMENT_NAMES if n != live)
        if actor is not None:
            _within_quota(actor=actor, endpoint=endpoint, slot=slot, size=size)
        if endpoint.previous == slot:
            endpoint.previous = ""  # about to be replaced: no rollback to it
        deployment, _ = Deployment.objects.update_or_create(
            endpoint=endpoint,
            name=slot,
            defaults={
                "model_version": model_version,
                "size": size,
                "state": DeploymentState.PENDING,
                "health": DeploymentHealth.UNKNOWN,
                "health_failures": 0,
                "health_checked_at": None,
                "detail": "",
                "task_id": "",
                "attempts": 0,
                "requested_by": actor,
                "submitted_at": None,
                "started_at": None,
                **lease_waiting(),
            },
        )
        endpoint.rollout = RolloutState.STARTING
        endpoint.canary_percent = canary_percent if live else 0
        endpoint.bake_until = None
        endpoint.bake_minutes = bake_minutes
        endpoint.save()
        audit_record(
            action="endpoint.deploy_requested",
            actor=actor,
            project=project,
            obj=endpoint,
            payload={
                "deployment": slot,
                "model": model.name,
                "version": model_version.version,
                "canary_percent": endpoint.canary_percent,
                "bake_minutes": bake_minutes,
                "size": size.name,
            },
        )
        pk = deployment.pk
        transaction.on_commit(lambda: serving_tasks.deployment_start.delay(deployment_id=pk))
    return deployment


def deployment_mark_running(*, deployment_id: int, scoring_url: str) -> None:
    """The deployment's process runs: meter it and give it its traffic."""
    now = timezone.now()
    with transaction.atomic():
        dep = Deployment.objects.select_for_update().get(pk=deployment_id)
        endpoint = _locked(dep.endpoint_id)
        if dep.state != DeploymentState.STARTING:
            return
        dep.state = DeploymentState.RUNNING
        dep.health = DeploymentHealth.HEALTHY
        dep.started_at = now
        dep.lease_owner = ""
        dep.lease_expires_at = None
        dep.detail = ""
        dep.save()
        usage_close(resource=dep, now=now)
        usage_open(
            resource=dep,
            name=f"{endpoint.name}/{dep.name}",
            project_id=endpoint.project_id,
            user_id=dep.requested_by_id or endpoint.created_by_id or 0,
            size=dep.size,
            nodes=1,
            now=now,
        )
        live = endpoint.live
        endpoint.state = EndpointState.RUNNING
        endpoint.scoring_url = scoring_url
        other = [n for n in DEPLOYMENT_NAMES if n != dep.name]
        if not live or live == dep.name:
            endpoint.traffic = {dep.name: 100}
            endpoint.previous = ""
            endpoint.rollout = RolloutState.PROMOTED
        elif endpoint.canary_percent:
            endpoint.previous = live
            endpoint.traffic = {
                live: 100 - endpoint.canary_percent,
                dep.name: endpoint.canary_percent,
            }
            endpoint.rollout = RolloutState.BAKING
            endpoint.bake_until = now + timedelta(minutes=endpoint.bake_minutes)
        else:
            endpoint.previous = live
            endpoint.traffic = {dep.name: 100, **{n: 0 for n in other if n == live}}
            endpoint.rollout = RolloutState.PROMOTED
        endpoint.mirror = {}
        endpoint.save()
        audit_record(
            action="endpoint.deployment_running",
            actor=None,
            project=endpoint.project,
            obj=endpoint,
            payload={
                "deployment": dep.name,
                "version": dep.model_version.version,
                "traffic": endpoint.traffic,
                "rollout": endpoint.rollout,
            },
        )
        _push_traffic(endpoint)


def deployment_mark_failed(*, deployment_id: int, reason: str) -> None:
    with transaction.atomic():
        dep = Deployment.objects.select_for_update().get(pk=deployment_id)
        endpoint = _locked(dep.endpoint_id)
        if dep.state in (DeploymentState.FAILED, DeploymentState.STOPPED):
            return
        dep.state = DeploymentState.FAILED
        dep.health = DeploymentHealth.FAILING
        dep.detail = reason[:4000]
        dep.lease_owner = ""
        dep.lease_expires_at = None
        dep.save()
        usage_close(resource=dep, now=timezone.now())
        if endpoint.rollout == RolloutState.STARTING:
            endpoint.rollout = RolloutState.FAILED
            if not endpoint.live:
                endpoint.state = EndpointState.FAILED
            endpoint.save()
        audit_record(
            action="endpoint.deployment_failed",
            actor=None,
            project=endpoint.project,
            obj=endpoint,
            payload={"deployment": dep.name, "reason": reason[:500]},
        )


def _running_names(endpoint: Endpoint) -> set[str]:
    return set(
        endpoint.deployments.filter(state=DeploymentState.RUNNING).values_list("name", flat=True)
    )


def endpoint_set_traffic(
    *,
    actor: User,
    endpoint: Endpoint,
    traffic: dict[str, int],
    mirror: dict[str, int] | None = None,
) -> Endpoint:
    """Set the split (whole percentages summing to 100) and the mirrored share."""
    _operator(actor, endpoint.project)
    mirror = mirror or {}
    try:
        check_traffic(traffic, mirror)
    except ValueError as exc:
        raise ServingRefused(str(exc)) from exc
    with transaction.atomic():
        endpoint = _locked(endpoint.pk)
        running = _running_names(endpoint)
        named = {n for n, share in {**traffic, **mirror}.items() if share > 0}
        if not named <= running:
            missing = ", ".join(sorted(named - running))
            raise ServingRefused(f"Only running deployments receive traffic (not: {missing}).")
        before = {"traffic": endpoint.traffic, "mirror": endpoint.mirror}
        endpoint.traffic = {n: traffic.get(n, 0) for n in DEPLOYMENT_NAMES if n in running}
        endpoint.mirror = {n: s for n, s in mirror.items() if s > 0}
        endpoint.save()
        audit_record(
            action="endpoint.traffic_set",
            actor=actor,
            project=endpoint.project,
            obj=endpoint,
            payload={"before": before, "traffic": endpoint.traffic, "mirror": endpoint.mirror},
        )
        _push_traffic(endpoint)
    return endpoint


def endpoint_rollback(*, actor: User | None, endpoint: Endpoint, reason: str = "") -> Endpoint:
    """The andon cord: all traffic back to the previous deployment, at once."""
    _operator(actor, endpoint.project)
    with transaction.atomic():
        endpoint = _locked(endpoint.pk)
        target = endpoint.previous
        if not target:
            raise ServingRefused("There is no previous deployment to roll back to.")
        if target not in _running_names(endpoint):
            raise ServingRefused(f"The previous deployment ({target}) is not running.")
        before = dict(endpoint.traffic)
        away = [n for n in before if n != target]
        endpoint.traffic = {target: 100, **dict.fromkeys(away, 0)}
        endpoint.mirror = {}
        endpoint.previous = ""
        endpoint.rollout = RolloutState.ROLLED_BACK
        endpoint.bake_until = None
        endpoint.save()
        champion = _champion_back(endpoint, target, actor)
        audit_record(
            action="endpoint.rolled_back",
            actor=actor,
            project=endpoint.project,
            obj=endpoint,
            payload={
                "to": target,
                "before": before,
                "reason": reason[:500] or "",
                "by": "health check" if actor is None else "person",
                "champion": champion,
            },
        )
        _push_traffic(endpoint)
    return endpoint


def _champion_back(endpoint: Endpoint, target: str, actor: User | None) -> int | None:
    """The version the traffic went back to is the ``champion`` again (the
    next candidate is validated against what really serves), and ``previous``
    goes, as there is nothing left to roll back to. Moved by the person who
    pulled the cord, or for the health check by whoever deployed the target.
    Returns the champion's version number."""
    from deployments.gate import CHAMPION, PREVIOUS
    from experiments.errors import MlflowError
    from experiments.models import ModelAlias
    from experiments.services import alias_delete, alias_set

    back = Deployment.objects.select_related("model_version__registered_model", "requested_by").get(
        endpoint=endpoint, name=target
    )
    version = back.model_version
    model = version.registered_model
    mover = actor or back.requested_by
    aliases = dict(
        ModelAlias.objects.filter(registered_model=model).values_list("alias", "version_id")
    )
    if aliases.get(CHAMPION) == version.pk:
        return version.version
    if mover is None:
        return None
    try:
        with transaction.atomic():
            alias_set(actor=mover, version=version, alias=CHAMPION)
            if PREVIOUS in aliases:
                alias_delete(actor=mover, model=model, alias=PREVIOUS)
    except MlflowError:
        # The mover may no longer write in the project: the traffic goes
        # back all the same (the cord never waits for the registry).
        return None
    return version.version


def endpoint_promote(*, actor: User | None, endpoint: Endpoint) -> Endpoint:
    """End a canary: the new deployment takes all the traffic (the previous
    one keeps running, for a rollback)."""
    _operator(actor, endpoint.project)
    with transaction.atomic():
        endpoint = _locked(endpoint.pk)
        if endpoint.rollout != RolloutState.BAKING:
            raise ServingRefused("No canary is baking on this endpoint.")
        new = next(n for n in endpoint.traffic if n != endpoint.previous)
        endpoint.traffic = {new: 100, endpoint.previous: 0}
        endpoint.rollout = RolloutState.PROMOTED
        endpoint.bake_until = None
        endpoint.save()
        audit_record(
            action="endpoint.promoted",
            actor=actor,
            project=endpoint.project,
            obj=endpoint,
            payload={"deployment": new, "previous": endpoint.previous},
        )
        _push_traffic(endpoint)
    return endpoint


def deployment_stop(*, actor: User | None, deployment: Deployment) -> Deployment:
    """Stop a deployment that answers no calls (no traffic, no mirrored share),
    to free its compute; the task ``deployment_stop`` stops it on the provider.

    Stopping the deployment a rollback would go back to ends that rollback:
    the endpoint forgets ``previous``. A deployment starting in a rollout is
    not stopped (roll the rollout back or let it fail first).
    """
    _operator(actor, deployment.endpoint.project)
    from deployments import serving_tasks

    with transaction.atomic():
        endpoint = _locked(deployment.endpoint_id)
        dep = Deployment.objects.select_for_update().get(pk=deployment.pk)
        if dep.state not in (DeploymentState.RUNNING, DeploymentState.FAILED):
            raise ServingRefused(f"The {dep.name} deployment is {dep.get_state_display().lower()}.")
        if endpoint.traffic.get(dep.name, 0) > 0 or endpoint.mirror.get(dep.name, 0) > 0:
            raise ServingRefused(
                f"The {dep.name} deployment still answers calls: send its traffic elsewhere first."
            )
        ended_rollback = endpoint.previous == dep.name
        if ended_rollback:
            endpoint.previous = ""
            endpoint.save(update_fields=["previous", "updated_at"])
        dep.state = DeploymentState.STOPPING
        dep.task_id = ""
        for field, value in lease_waiting().items():
            setattr(dep, field, value)
        dep.save()
        audit_record(
            action="endpoint.deployment_stopped",
            actor=actor,
            project=endpoint.project,
            obj=endpoint,
            payload={
                "deployment": dep.name,
                "version": dep.model_version.version,
                "ended_rollback": ended_rollback,
            },
        )
        pk = dep.pk
        transaction.on_commit(lambda: serving_tasks.deployment_stop.delay(deployment_id=pk))
    return dep


def deployment_mark_stopped(*, deployment_id: int) -> None:
    """The provider stopped the deployment: no more metering."""
    with transaction.atomic():
        dep = Deployment.objects.select_for_update().get(pk=deployment_id)
        if dep.state != DeploymentState.STOPPING:
            return
        dep.state = DeploymentState.STOPPED
        dep.health = DeploymentHealth.UNKNOWN
        dep.lease_owner = ""
        dep.lease_expires_at = None
        dep.save()
        usage_close(resource=dep, now=timezone.now())


def endpoint_key_issue(*, actor: User, endpoint: Endpoint) -> str:
    """A new key for callers, returned once (the old one stops working)."""
    _operator(actor, endpoint.project)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        endpoint = _locked(endpoint.pk)
        endpoint.key_sha256 = key_hash(key)
        endpoint.key_prefix = key[:10]
        endpoint.key_issued_at = timezone.now()
        endpoint.save()
        audit_record(
            action="endpoint.key_issued",
            actor=actor,
            project=endpoint.project,
            obj=endpoint,
            payload={"key_prefix": endpoint.key_prefix},
        )
        if endpoint.state == EndpointState.RUNNING:
            serving_provider(endpoint.provider).endpoint_create(
                EndpointSpec(endpoint.provider_name, key_sha256=endpoint.key_sha256)
            )
    return key


def deployment_health_record(*, deployment_id: int, healthy: bool, detail: str = "") -> None:
    """One health check's result; a new deployment failing in a row is rolled back."""
    rollback: Endpoint | None = None
    with transaction.atomic():
        dep = Deployment.objects.select_for_update().get(pk=deployment_id)
        if dep.state != DeploymentState.RUNNING:
            return
        dep.health_checked_at = timezone.now()
        if healthy:
            dep.health = DeploymentHealth.HEALTHY
            dep.health_failures = 0
        else:
            dep.health = DeploymentHealth.FAILING
            dep.health_failures += 1
            dep.detail = detail[:4000]
        dep.save()
        endpoint = dep.endpoint
        if (
            not healthy
            and dep.health_failures >= HEALTH_FAILURES_TO_ROLL_BACK
            and endpoint.previous
            and endpoint.previous != dep.name
            and endpoint.traffic.get(dep.name, 0) > 0
        ):
            rollback = endpoint
    if rollback is not None:
        # Nothing to go back to (ServingRefused): the page shows the failing health.
        with contextlib.suppress(ServingRefused):
            endpoint_rollback(
                actor=None,
                endpoint=rollback,
                reason=f"{dep.name} failed its health check: {detail}",
            )


def endpoint_bake_check(*, endpoint_id: int) -> None:
    """Promote a canary whose baking period ended without a rollback."""
    endpoint = Endpoint.objects.get(pk=endpoint_id)
    if (
        endpoint.rollout == RolloutState.BAKING
        and endpoint.bake_until is not None
        and endpoint.bake_until <= timezone.now()
    ):
        with contextlib.suppress(ServingRefused):
            endpoint_promote(actor=None, endpoint=endpoint)


def deployment_holdings(
    *, project_id: int | None = None, user_id: int | None = None
) -> list[Holding]:
    """What deployments hold now, for compute accounting (one query)."""
    rows = Deployment.objects.filter(state__in=list(HOLDING_STATES))
    if project_id is not None:
        rows = rows.filter(endpoint__project_id=project_id)
    if user_id is not None:
        rows = rows.filter(requested_by_id=user_id)
    return [
        Holding(
            resource_type="deployments.deployment",
            resource_id=pk,
            project_id=project,
            user_id=user or 0,
            vcpus=vcpus,
            gpus=gpus,
            running=1,
        )
        for pk, project, user, vcpus, gpus in rows.values_list(
            "pk", "endpoint__project_id", "requested_by_id", "size__vcpus", "size__gpus"
        )
    ]


def _give_up(row: Any, reason: str) -> None:
    deployment_mark_failed(deployment_id=row.pk, reason=reason)


def _redispatch(row: Any) -> None:
    from deployments import serving_tasks

    serving_tasks.deployment_start.delay(deployment_id=row.pk)


START_WORK = LeasedWork(
    name="serving_deployment_start",
    model=Deployment,
    active=lambda: Deployment.objects.filter(
        state__in=[DeploymentState.PENDING, DeploymentState.STARTING]
    ),
    requeue={"state": DeploymentState.PENDING, "task_id": ""},
    redispatch=_redispatch,
    fail=_give_up,
)


def _stop_redispatch(row: Any) -> None:
    from deployments import serving_tasks

    serving_tasks.deployment_stop.delay(deployment_id=row.pk)


def _stop_given_up(row: Any, reason: str) -> None:
    with transaction.atomic():
        dep = Deployment.objects.select_for_update().get(pk=row.pk)
        if dep.state != DeploymentState.STOPPING:
            return
        # It may still run on the provider: it stays running (metered,
        # health-checked, without traffic) and the page shows why.
        dep.state = DeploymentState.RUNNING
        dep.detail = f"Could not stop: {reason}"[:4000]
        dep.lease_owner = ""
        dep.lease_expires_at = None
        dep.save()


STOP_WORK = LeasedWork(
    name="serving_deployment_stop",
    model=Deployment,
    active=lambda: Deployment.objects.filter(state=DeploymentState.STOPPING),
    requeue={"state": DeploymentState.STOPPING, "task_id": ""},
    redispatch=_stop_redispatch,
    fail=_stop_given_up,
)
