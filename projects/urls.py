from __future__ import annotations

from django.urls import path

from projects import views

app_name = "projects"
urlpatterns = [
    path("", views.project_list, name="list"),
    path("new/", views.project_new, name="new"),
    path("<slug:slug>/", views.project_detail, name="detail"),
    path("<slug:slug>/charter/", views.charter_detail, name="charter"),
    path("<slug:slug>/charter/submit/", views.charter_submit_view, name="charter_submit"),
    path("<slug:slug>/charter/versions/", views.charter_version_list, name="charter_versions"),
    path("<slug:slug>/charter/compare/", views.charter_compare, name="charter_compare"),
    path("<slug:slug>/members/", views.member_add, name="member_add"),
    path("<slug:slug>/members/<str:username>/remove/", views.member_remove, name="member_remove"),
]
