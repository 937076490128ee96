"""The comparison page of a project's runs (``experiments/compare_views.py``)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from experiments import compare_views

urlpatterns: list[URLPattern | URLResolver] = [
    path("projects/<slug:slug>/experiments/compare/", compare_views.compare, name="compare"),
    path(
        "projects/<slug:slug>/experiments/compare.csv",
        compare_views.compare_csv,
        name="compare_csv",
    ),
    path(
        "projects/<slug:slug>/experiments/compare/chart/",
        compare_views.compare_chart,
        name="compare_chart",
    ),
]
