from __future__ import annotations

from django.urls import path

from charter import views

# Mounted under /projects/ in the "projects" namespace (portal/urls.py).
urlpatterns = [
    path("<slug:slug>/charter/", views.charter_detail, name="charter"),
    path("<slug:slug>/charter/submit/", views.charter_submit_view, name="charter_submit"),
    path("<slug:slug>/charter/versions/", views.charter_version_list, name="charter_versions"),
    path("<slug:slug>/charter/compare/", views.charter_compare, name="charter_compare"),
]
