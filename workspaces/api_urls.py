from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from workspaces import api

app_name = "workspaces_api"
urlpatterns: list[URLPattern | URLResolver] = [
    path("compute-sizes/", api.ComputeSizeListApi.as_view(), name="sizes"),
    path("compute-sizes/<int:size_id>/", api.ComputeSizeDetailApi.as_view(), name="size"),
    path("projects/<slug:slug>/workspaces/", api.WorkspaceListApi.as_view(), name="workspaces"),
    path(
        "projects/<slug:slug>/workspaces/<int:workspace_id>/",
        api.WorkspaceDetailApi.as_view(),
        name="workspace",
    ),
    path(
        "projects/<slug:slug>/workspaces/<int:workspace_id>/start/",
        api.WorkspaceStartApi.as_view(),
        name="workspace_start",
    ),
    path(
        "projects/<slug:slug>/workspaces/<int:workspace_id>/stop/",
        api.WorkspaceStopApi.as_view(),
        name="workspace_stop",
    ),
    path(
        "projects/<slug:slug>/workspaces/<int:workspace_id>/resize/",
        api.WorkspaceResizeApi.as_view(),
        name="workspace_resize",
    ),
    path(
        "projects/<slug:slug>/workspaces/<int:workspace_id>/allowed-ips/",
        api.WorkspaceAllowedIpsApi.as_view(),
        name="workspace_allowed_ips",
    ),
    path("quotas/", api.QuotaListApi.as_view(), name="quotas"),
    path("quotas/projects/<slug:slug>/", api.ProjectQuotaApi.as_view(), name="project_quota"),
    path("quotas/users/<str:username>/", api.UserQuotaApi.as_view(), name="user_quota"),
    path("costs/", api.CostsApi.as_view(), name="costs"),
]
