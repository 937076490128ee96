"""The beat task of drift monitoring (queue "provisioning")."""

from __future__ import annotations

from celery import Task, shared_task

import background
from deployments import monitoring
from deployments.serving_models import Deployment, DeploymentState

BEAT_OPTIONS = background.task_options(soft_time_limit=540, time_limit=600, max_retries=0)


@shared_task(**BEAT_OPTIONS)
def drift_check_all(self: Task) -> int:
    """Check the drift of every running deployment once; the number of reports kept."""
    kept = 0
    running = Deployment.objects.filter(state=DeploymentState.RUNNING).values_list("pk", flat=True)
    for deployment_id in running:
        if monitoring.drift_check(deployment_id=deployment_id) is not None:
            kept += 1
    return kept
