"""Sweep and AutoML pages, in the ``experiments`` namespace (experiments/page_urls.py)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from experiments import sweep_views

P = "projects/<slug:slug>/"
urlpatterns: list[URLPattern | URLResolver] = [
    path(f"{P}sweeps/", sweep_views.sweep_list, name="sweeps"),
    path(f"{P}sweeps/new/", sweep_views.sweep_new, name="sweep_new"),
    path(f"{P}sweeps/<int:sweep_id>/", sweep_views.sweep_detail, name="sweep"),
    path(f"{P}automl/new/", sweep_views.automl_new, name="automl_new"),
    path(f"{P}automl/<int:sweep_id>/", sweep_views.automl_detail, name="automl"),
]
