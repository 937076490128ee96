from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from datasets import api

S = "projects/<slug:slug>/sources/<int:source_id>/"
V = f"{S}snapshots/<int:version>/"

urlpatterns: list[URLPattern | URLResolver] = [
    path("projects/<slug:slug>/sources/", api.SourceListApi.as_view(), name="data_sources"),
    path(S, api.SourceDetailApi.as_view(), name="data_source"),
    path(f"{S}test/", api.SourceTestApi.as_view(), name="data_source_test"),
    path(f"{S}pull/", api.SourcePullApi.as_view(), name="data_source_pull"),
    path(f"{S}ingestions/", api.IngestionListApi.as_view(), name="data_ingestions"),
    path(
        f"{S}ingestions/<int:ingestion_id>/",
        api.IngestionDetailApi.as_view(),
        name="data_ingestion",
    ),
    path(f"{S}rules/", api.RuleListApi.as_view(), name="data_rules"),
    path(f"{S}rules/<int:rule_id>/", api.RuleDetailApi.as_view(), name="data_rule"),
    path(f"{S}snapshots/", api.SnapshotListApi.as_view(), name="data_snapshots"),
    path(V, api.SnapshotDetailApi.as_view(), name="data_snapshot"),
    path(f"{V}profile/", api.ProfileApi.as_view(), name="data_profile"),
    path(f"{V}validate/", api.SnapshotValidateApi.as_view(), name="data_snapshot_validate"),
    path(f"{V}download/", api.SnapshotDownloadApi.as_view(), name="data_download"),
    path(f"{V}splits/", api.SplitCreateApi.as_view(), name="data_splits"),
    path(f"{S}splits/<int:split_id>/", api.SplitDetailApi.as_view(), name="data_split"),
]
