"""Pages of the deployment stage, under the ``deployments`` namespace."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

from deployments import urls_gate, urls_serving

app_name = "deployments"

urlpatterns: list[URLPattern | URLResolver] = [
    *urls_gate.urlpatterns,
    *urls_serving.urlpatterns,
]
