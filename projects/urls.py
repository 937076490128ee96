from __future__ import annotations

from django.urls import path

from projects import views

# Mounted under /projects/ in the "projects" namespace (portal/urls.py), with
# the project page and each stage's project-level pages.
urlpatterns = [
    path("", views.project_list, name="list"),
    path("new/", views.project_new, name="new"),
    path("<slug:slug>/members/", views.member_add, name="member_add"),
    path("<slug:slug>/members/<str:username>/remove/", views.member_remove, name="member_remove"),
]
