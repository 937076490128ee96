from __future__ import annotations

from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        # Each app's audit_links module registers how its objects are named and linked.
        autodiscover_modules("audit_links")
