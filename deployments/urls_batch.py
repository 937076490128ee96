from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from deployments import views_batch

urlpatterns: list[URLPattern | URLResolver] = [
    path("projects/<slug:slug>/batch-scorings/", views_batch.batch_list, name="batches"),
    path("projects/<slug:slug>/batch-scorings/new/", views_batch.batch_new, name="batch_new"),
    path(
        "projects/<slug:slug>/batch-scorings/<int:scoring_id>/",
        views_batch.batch_detail,
        name="batch",
    ),
    path(
        "projects/<slug:slug>/batch-scorings/<int:scoring_id>/<str:action>/",
        views_batch.batch_action,
        name="batch_action",
    ),
]
