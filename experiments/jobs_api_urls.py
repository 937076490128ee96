"""The training jobs API; included under ``/api/`` by portal/urls.py."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from experiments import jobs_api

app_name = "jobs_api"
J = "projects/<slug:slug>/jobs/<int:job_id>/"
urlpatterns: list[URLPattern | URLResolver] = [
    path("projects/<slug:slug>/jobs/", jobs_api.JobListApi.as_view(), name="jobs"),
    path(J, jobs_api.JobDetailApi.as_view(), name="job"),
    path(f"{J}cancel/", jobs_api.JobCancelApi.as_view(), name="job_cancel"),
    path(f"{J}rerun/", jobs_api.JobRerunApi.as_view(), name="job_rerun"),
    path(f"{J}logs/", jobs_api.JobLogsApi.as_view(), name="job_logs"),
]
