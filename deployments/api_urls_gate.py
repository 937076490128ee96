"""The gate's API (``deployments/api_gate.py``), under ``/api/``."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from deployments import api_gate

P = "projects/<slug:slug>/"

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        f"{P}models/<str:name>/versions/<int:version>/validation/",
        api_gate.ValidationApi.as_view(),
        name="validation_api",
    ),
    path(f"{P}deployments/", api_gate.DeploymentListApi.as_view(), name="deployments_api"),
    path(
        f"{P}deployments/<int:deployment_id>/",
        api_gate.DeploymentDetailApi.as_view(),
        name="deployment_api",
    ),
]
