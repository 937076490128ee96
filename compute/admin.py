"""The compute catalog in the admin site: changes go through the audited service."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from accounts.models import User
from compute.models import ComputeSize, Quota
from compute.services import SIZE_FIELDS, compute_size_save


@admin.register(ComputeSize)
class ComputeSizeAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "provider",
        "vcpus",
        "memory_gb",
        "gpus",
        "hourly_price",
        "price_date",
        "enabled",
    ]
    list_filter = ["provider", "enabled", "gpus"]
    search_fields = ["name"]

    def save_model(self, request: HttpRequest, obj: ComputeSize, form: Any, change: bool) -> None:
        values = {f: getattr(obj, f) for f in SIZE_FIELDS if not change or f in form.changed_data}
        target = ComputeSize.objects.get(pk=obj.pk) if change else None
        if not isinstance(request.user, User):  # the admin site signs users in
            raise PermissionDenied
        saved = compute_size_save(actor=request.user, size=target, **values)
        obj.pk = saved.pk

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # sizes are disabled, never deleted: usage keeps pointing at them


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    """Read here; changed on the Quotas page or through the API (audited)."""

    list_display = [
        "__str__",
        "max_vcpus",
        "max_gpus",
        "max_running",
        "monthly_budget",
        "updated_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
