"""Pages of the gate (``deployments/views_gate.py``)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from deployments import views_gate as views

P = "projects/<slug:slug>/"
V = f"{P}models/<str:name>/v<int:version>/"

urlpatterns: list[URLPattern | URLResolver] = [
    path(f"{V}validation/", views.validation_page, name="validation"),
    path(f"{V}deploy/", views.request_new, name="request_new"),
    path(f"{P}validations/<int:pk>/", views.report_page, name="report"),
    path(f"{P}deployments/", views.request_list, name="requests"),
    path(f"{P}deployments/<int:pk>/", views.request_page, name="request"),
    path(f"{P}deployments/<int:pk>/override/", views.request_override, name="override"),
    path(f"{P}deployments/<int:pk>/withdraw/", views.request_withdraw, name="withdraw"),
]
