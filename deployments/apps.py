from __future__ import annotations

from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "deployments"
    verbose_name = "Deployments"

    def ready(self) -> None:
        from background import leases
        from compute import consumers
        from deployments import (  # noqa: F401  (the tasks register)
            drift_tasks,
            gate,  # noqa: F401  (registers the "deployment" approval kind)
            serving,
            serving_tasks,
        )

        consumers.register("deployments.deployment", serving.deployment_holdings)
        leases.register(serving.START_WORK)
        leases.register(serving.STOP_WORK)
        from deployments import batch, batch_tasks  # noqa: F401  (the tasks register)

        leases.register(batch.BATCH_WORK)
