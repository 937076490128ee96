"""The comparison page of a project's runs (``experiments/compare_views.py``)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = []
