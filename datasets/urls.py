from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from datasets import views

app_name = "datasets"
P = "projects/<slug:slug>/data/"
S = f"{P}<int:source_id>/"
V = f"{S}v<int:version>/"

urlpatterns: list[URLPattern | URLResolver] = [
    path("data/", views.data_home, name="home"),
    path(P, views.source_list, name="sources"),
    path(f"{P}new/", views.source_new, name="source_new"),
    path(f"{P}lineage/", views.lineage, name="lineage"),
    path(S, views.source_detail, name="source"),
    path(f"{S}edit/", views.source_edit, name="source_edit"),
    path(f"{S}upload/", views.source_upload, name="upload"),
    path(f"{S}pull/", views.source_pull, name="pull"),
    path(f"{S}test/", views.source_test, name="test"),
    path(f"{S}schedule/", views.source_schedule, name="schedule"),
    path(f"{S}sensitive/", views.source_sensitive, name="sensitive"),
    path(f"{S}delete/", views.source_delete, name="source_delete"),
    path(f"{S}rules/", views.rule_add, name="rule_add"),
    path(f"{S}rules/<int:rule_id>/delete/", views.rule_delete, name="rule_delete"),
    path(f"{S}ingestions/<int:ingestion_id>/", views.ingestion_progress, name="ingestion"),
    path(V, views.snapshot_detail, name="snapshot"),
    path(f"{V}splits/", views.split_new, name="split_new"),
    path(f"{V}delete/", views.snapshot_delete, name="snapshot_delete"),
    path(f"{V}validate/", views.snapshot_validate, name="snapshot_validate"),
]
