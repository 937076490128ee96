from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from deployments import api_serving

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "projects/<slug:slug>/endpoints/",
        api_serving.EndpointListApi.as_view(),
        name="endpoints_api",
    ),
    path(
        "projects/<slug:slug>/endpoints/<slug:name>/",
        api_serving.EndpointDetailApi.as_view(),
        name="endpoint_api",
    ),
    path(
        "projects/<slug:slug>/endpoints/<slug:name>/traffic/",
        api_serving.EndpointTrafficApi.as_view(),
        name="endpoint_traffic_api",
    ),
    path(
        "projects/<slug:slug>/endpoints/<slug:name>/rollback/",
        api_serving.EndpointRollbackApi.as_view(),
        name="endpoint_rollback_api",
    ),
    path(
        "projects/<slug:slug>/endpoints/<slug:name>/promote/",
        api_serving.EndpointPromoteApi.as_view(),
        name="endpoint_promote_api",
    ),
    path(
        "projects/<slug:slug>/endpoints/<slug:name>/deployments/<slug:deployment>/stop/",
        api_serving.DeploymentStopApi.as_view(),
        name="deployment_stop_api",
    ),
    path(
        "projects/<slug:slug>/endpoints/<slug:name>/key/",
        api_serving.EndpointKeyApi.as_view(),
        name="endpoint_key_api",
    ),
]
