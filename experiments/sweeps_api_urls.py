"""The sweeps and AutoML API; included under ``/api/`` by portal/urls.py."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from experiments import sweeps_api

app_name = "sweeps_api"
S = "projects/<slug:slug>/sweeps/"
A = "projects/<slug:slug>/automl/"
urlpatterns: list[URLPattern | URLResolver] = [
    path(S, sweeps_api.SweepListApi.as_view(), name="sweeps"),
    path(f"{S}<int:sweep_id>/", sweeps_api.SweepDetailApi.as_view(), name="sweep"),
    path(f"{S}<int:sweep_id>/cancel/", sweeps_api.SweepCancelApi.as_view(), name="sweep_cancel"),
    path(A, sweeps_api.AutoMLListApi.as_view(), name="automls"),
    path(f"{A}<int:sweep_id>/", sweeps_api.AutoMLDetailApi.as_view(), name="automl"),
    path(f"{A}<int:sweep_id>/cancel/", sweeps_api.AutoMLCancelApi.as_view(), name="automl_cancel"),
]
