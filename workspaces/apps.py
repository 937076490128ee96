from __future__ import annotations

from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    name = "workspaces"
    verbose_name = "Workspaces"

    def ready(self) -> None:
        from background import leases
        from compute import consumers
        from workspaces import services  # registers the "compute" approval kind
        from workspaces.selectors import workspace_holdings

        consumers.register("workspaces.workspace", workspace_holdings)
        leases.register(services.OPERATIONS_WORK)
