"""The drift page of an endpoint (before the endpoint's action catch-all)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from deployments import views_monitoring

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "projects/<slug:slug>/endpoints/<slug:name>/drift/",
        views_monitoring.endpoint_drift,
        name="endpoint_drift",
    ),
    path(
        "projects/<slug:slug>/endpoints/<slug:name>/drift/retrain/",
        views_monitoring.endpoint_retrain,
        name="endpoint_retrain",
    ),
    path(
        "projects/<slug:slug>/endpoints/<slug:name>/drift/score/",
        views_monitoring.endpoint_score,
        name="endpoint_score",
    ),
]
