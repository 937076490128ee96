from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from deployments import views_serving

urlpatterns: list[URLPattern | URLResolver] = [
    path("projects/<slug:slug>/endpoints/", views_serving.endpoint_list, name="endpoints"),
    path(
        "projects/<slug:slug>/endpoints/<slug:name>/",
        views_serving.endpoint_detail,
        name="endpoint",
    ),
    path(
        "projects/<slug:slug>/endpoints/<slug:name>/<str:action>/",
        views_serving.endpoint_action,
        name="endpoint_action",
    ),
]
