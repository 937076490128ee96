from __future__ import annotations

from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"
    verbose_name = "Experiments"

    def ready(self) -> None:
        from background import leases
        from compute import consumers
        from experiments import jobs  # registers the "job_compute" approval kind

        consumers.register("experiments.job", jobs.job_holdings)
        leases.register(jobs.JOBS_WORK)
