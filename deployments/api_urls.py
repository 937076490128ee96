"""The deployment stage's API, under ``/api/``."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

from deployments import api_urls_batch, api_urls_gate, api_urls_monitoring, api_urls_serving

urlpatterns: list[URLPattern | URLResolver] = [
    *api_urls_gate.urlpatterns,
    *api_urls_serving.urlpatterns,
    *api_urls_batch.urlpatterns,
    *api_urls_monitoring.urlpatterns,
]
