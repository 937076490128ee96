"""The portal's URLs with the training job pages and API included, as
portal/urls.py and experiments/page_urls.py include them (see
docs/experiments.md, "Training jobs")."""

from __future__ import annotations

from types import ModuleType
from typing import Any, cast

from django.urls import URLPattern, URLResolver, include, path

from experiments import page_urls, urls_jobs
from portal import urls as portal_urls


def _is_experiment_pages(pattern: Any) -> bool:
    conf = getattr(pattern, "urlconf_name", None)
    return isinstance(conf, ModuleType) and conf is page_urls


pages: list[URLPattern | URLResolver] = [*page_urls.urlpatterns, *urls_jobs.urlpatterns]
urlpatterns: list[URLPattern | URLResolver] = [
    path("api/", include("experiments.jobs_api_urls")),
    path("", include((pages, "experiments"))),
    *[cast(URLResolver, p) for p in portal_urls.urlpatterns if not _is_experiment_pages(p)],
]
