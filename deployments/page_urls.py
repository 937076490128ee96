"""Pages of the deployment stage, under the ``deployments`` namespace."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from deployments import home, urls_batch, urls_gate, urls_monitoring, urls_serving

app_name = "deployments"

urlpatterns: list[URLPattern | URLResolver] = [
    path("deployments/", home.deployments_home, name="home"),
    *urls_gate.urlpatterns,
    # Before serving's <name>/<action>/ catch-all.
    *urls_monitoring.urlpatterns,
    *urls_serving.urlpatterns,
    *urls_batch.urlpatterns,
]
