from __future__ import annotations

from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "datasets"
    verbose_name = "Datasets"

    def ready(self) -> None:
        from background import leases
        from datasets.services import LEASED_WORK

        for work in LEASED_WORK:
            leases.register(work)
