"""The experiments and registry pages of a project (``experiments/views.py``)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from experiments import views

P = "projects/<slug:slug>/"
E = f"{P}experiments/<int:experiment_id>/"
M = f"{P}models/<str:name>/"

urlpatterns: list[URLPattern | URLResolver] = [
    path("experiments/", views.experiments_home, name="home"),
    path(f"{P}experiments/", views.experiment_list, name="list"),
    path(E, views.experiment_runs, name="runs"),
    path(f"{E}selected/", views.compare_selected, name="compare_selected"),
    path(f"{P}runs/<str:run_uuid>/", views.run_detail, name="run"),
    path(f"{P}runs/<str:run_uuid>/artifact/", views.run_artifact, name="artifact"),
    path(f"{P}models/", views.model_list, name="models"),
    path(M, views.model_detail, name="model"),
    path(f"{M}v<int:version>/", views.model_version_detail, name="model_version"),
    path(
        f"{P}data/<int:source_id>/v<int:version>/runs/",
        views.snapshot_runs,
        name="snapshot_runs",
    ),
]
