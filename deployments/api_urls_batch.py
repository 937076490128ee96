from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from deployments import api_batch

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "projects/<slug:slug>/batch-scorings/",
        api_batch.BatchScoringListApi.as_view(),
        name="batch_scorings_api",
    ),
    path(
        "projects/<slug:slug>/batch-scorings/<int:scoring_id>/",
        api_batch.BatchScoringDetailApi.as_view(),
        name="batch_scoring_api",
    ),
    path(
        "projects/<slug:slug>/batch-scorings/<int:scoring_id>/rerun/",
        api_batch.BatchScoringRerunApi.as_view(),
        name="batch_scoring_rerun_api",
    ),
    path(
        "projects/<slug:slug>/batch-scorings/<int:scoring_id>/cancel/",
        api_batch.BatchScoringCancelApi.as_view(),
        name="batch_scoring_cancel_api",
    ),
]
