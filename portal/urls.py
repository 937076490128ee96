from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts import views as accounts_views
from charter import api as charter_api
from charter import urls as charter_urls
from governance import api as governance_api
from governance import views as governance_views
from portal import views
from projects import api as projects_api
from projects import urls as projects_urls

# /projects/...: the project pages, then each stage's pages of one project.
project_patterns = [
    *projects_urls.urlpatterns,
    path("<slug:slug>/", views.project_detail, name="detail"),
    *charter_urls.urlpatterns,
]

api_patterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("audit/", governance_api.AuditEventListApi.as_view(), name="audit"),
    path("projects/", projects_api.ProjectListApi.as_view(), name="projects"),
    path("projects/<slug:slug>/", projects_api.ProjectDetailApi.as_view(), name="project"),
    path("projects/<slug:slug>/members/", projects_api.MemberListApi.as_view(), name="members"),
    path("projects/<slug:slug>/charter/", charter_api.CharterApi.as_view(), name="charter"),
    path(
        "projects/<slug:slug>/charter/versions/",
        charter_api.CharterVersionListApi.as_view(),
        name="charter_versions",
    ),
    path(
        "projects/<slug:slug>/charter/versions/<int:number>/",
        charter_api.CharterVersionDetailApi.as_view(),
        name="charter_version",
    ),
    path(
        "projects/<slug:slug>/charter/submit/",
        charter_api.CharterSubmitApi.as_view(),
        name="charter_submit",
    ),
    path("approvals/", governance_api.ApprovalListApi.as_view(), name="approvals"),
    path(
        "approvals/<int:approval_id>/", governance_api.ApprovalDetailApi.as_view(), name="approval"
    ),
    path(
        "approvals/<int:approval_id>/approve/",
        governance_api.ApprovalApproveApi.as_view(),
        name="approval_approve",
    ),
    path(
        "approvals/<int:approval_id>/reject/",
        governance_api.ApprovalRejectApi.as_view(),
        name="approval_reject",
    ),
    path(
        "approvals/<int:approval_id>/withdraw/",
        governance_api.ApprovalWithdrawApi.as_view(),
        name="approval_withdraw",
    ),
    path(
        "projects/<slug:slug>/members/<str:username>/",
        projects_api.MemberDetailApi.as_view(),
        name="member",
    ),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/profile/", accounts_views.profile, name="profile"),
    path(
        "accounts/tokens/<int:token_id>/revoke/",
        accounts_views.token_revoke_view,
        name="token_revoke",
    ),
    path("projects/", include((project_patterns, "projects"))),
    path("", include("datasets.urls")),
    path("", include("workspaces.urls")),
    path("", include("experiments.page_urls")),
    path("", include("deployments.page_urls")),
    path("audit/", governance_views.audit_list, name="audit"),
    path("approvals/", include("governance.urls")),
    path("notifications/", accounts_views.notification_list, name="notifications"),
    path("admin/", admin.site.urls),
    path("api/", include((api_patterns, "api"))),
    path("api/", include("datasets.api_urls")),
    path("api/", include("workspaces.api_urls")),
    path("api/", include("experiments.jobs_api_urls")),
    path("api/", include("experiments.sweeps_api_urls")),
    path("api/", include("deployments.api_urls")),
    path("mlflow/", include("experiments.urls")),
]

# JSON under /api/, Django's pages elsewhere.
handler400 = "web.errors.bad_request"
handler403 = "web.errors.permission_denied"
handler404 = "web.errors.page_not_found"
handler500 = "web.errors.server_error"

if settings.OIDC_ENABLED:
    urlpatterns.append(path("oidc/", include("mozilla_django_oidc.urls")))
