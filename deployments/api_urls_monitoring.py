from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from deployments import api_monitoring

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "projects/<slug:slug>/monitors/",
        api_monitoring.MonitorListApi.as_view(),
        name="monitors_api",
    ),
    path(
        "projects/<slug:slug>/monitors/<slug:name>/",
        api_monitoring.MonitorDetailApi.as_view(),
        name="monitor_api",
    ),
    path(
        "projects/<slug:slug>/monitors/<slug:name>/retrain/",
        api_monitoring.MonitorRetrainApi.as_view(),
        name="monitor_retrain_api",
    ),
]
