"""Training job pages, in the ``experiments`` namespace (experiments/page_urls.py)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from experiments import job_views

J = "projects/<slug:slug>/jobs/"
urlpatterns: list[URLPattern | URLResolver] = [
    path(J, job_views.job_list, name="jobs"),
    path(f"{J}new/", job_views.job_new, name="job_new"),
    path(f"{J}<int:job_id>/", job_views.job_detail, name="job"),
    path(
        f"{J}<int:job_id>/<str:action>/",
        job_views.job_action,
        name="job_action",
    ),
]
