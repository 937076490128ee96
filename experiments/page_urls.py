"""Pages of the experiments stage, under the ``experiments`` namespace.

The tracking API (MLflow's REST protocol) is ``experiments/urls.py``, mounted
at ``/mlflow/``.
"""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

from experiments import urls_compare, urls_jobs, urls_pages, urls_sweeps

app_name = "experiments"

urlpatterns: list[URLPattern | URLResolver] = [
    *urls_pages.urlpatterns,
    *urls_compare.urlpatterns,
    *urls_jobs.urlpatterns,
    *urls_sweeps.urlpatterns,
]
