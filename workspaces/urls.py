from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from workspaces import views

app_name = "workspaces"
urlpatterns: list[URLPattern | URLResolver] = [
    path("workspaces/", views.my_workspaces, name="mine"),
    path("projects/<slug:slug>/workspaces/", views.workspace_list, name="list"),
    path(
        "projects/<slug:slug>/workspaces/<int:workspace_id>/",
        views.workspace_detail,
        name="detail",
    ),
    path(
        "projects/<slug:slug>/workspaces/<int:workspace_id>/<str:action>/",
        views.workspace_action,
        name="action",
    ),
    path("projects/<slug:slug>/costs/", views.project_costs, name="project_costs"),
    path("costs/", views.admin_costs, name="costs"),
    path("quotas/", views.quota_list, name="quotas"),
]
