from __future__ import annotations

from django.urls import path, re_path

from experiments import api

# Mounted at /mlflow/: MLFLOW_TRACKING_URI=<portal>/mlflow/<project-slug>
urlpatterns = [
    path("<slug:slug>/api/2.0/mlflow/<path:endpoint>", api.mlflow_api, name="mlflow_api"),
    path("<slug:slug>/ajax-api/2.0/mlflow/<path:endpoint>", api.mlflow_api, name="mlflow_ajax"),
    path("<slug:slug>/api/3.0/mlflow/server-info", api.server_info, name="mlflow_server_info"),
    path("<slug:slug>/ajax-api/3.0/mlflow/server-info", api.server_info),
    path(
        "<slug:slug>/api/2.0/mlflow-artifacts/artifacts",
        api.artifacts_api,
        name="mlflow_artifacts_list",
    ),
    re_path(
        r"^(?P<slug>[-a-zA-Z0-9_]+)/api/2\.0/mlflow-artifacts/artifacts/(?P<path>.*)$",
        api.artifacts_api,
        name="mlflow_artifacts",
    ),
]
