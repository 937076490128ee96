from __future__ import annotations

from django.urls import path

from governance import views

app_name = "governance"
urlpatterns = [
    path("", views.approval_inbox, name="inbox"),
    path("<int:approval_id>/", views.approval_detail, name="approval"),
    path("<int:approval_id>/decide/", views.approval_decide_view, name="decide"),
    path("<int:approval_id>/withdraw/", views.approval_withdraw_view, name="withdraw"),
]
