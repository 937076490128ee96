from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings

from compute.selectors import sizes_offered
from compute.services import QUOTA_LIMITS
from workspaces.models import NO_INSTANCE_ALLOWLIST, WorkspaceKind, instance_allowlist_supported
from workspaces.services import IDLE_MINUTES_RANGE, MAX_NODES


def _split_cidrs(value: str) -> list[str]:
    return [v for v in re.split(r"[\s,]+", value or "") if v]


class SizeChoiceField(forms.ModelChoiceField):
    widget = forms.Select(attrs={"style": "max-width: 100%"})

    def label_from_instance(self, obj: Any) -> str:
        gpu = f", {obj.gpus}× {obj.gpu_type}" if obj.gpus else ""
        return (
            f"{obj.name} — {obj.vcpus} vCPU, {obj.memory_gb} GB{gpu} — "
            f"{obj.hourly_price:.3f} {obj.currency}/h"
        )


class WorkspaceRequestForm(forms.Form):
    name = forms.CharField(max_length=60)
    kind = forms.ChoiceField(choices=WorkspaceKind.choices, initial=WorkspaceKind.NOTEBOOK)
    size = SizeChoiceField(queryset=None)
    idle_shutdown_minutes = forms.IntegerField(
        min_value=IDLE_MINUTES_RANGE[0],
        max_value=IDLE_MINUTES_RANGE[1],
        initial=60,
        label="Idle shutdown after (minutes)",
    )
    allowed_ips = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Allowed IPs (CIDR, one per line)",
    )
    min_nodes = forms.IntegerField(min_value=0, max_value=MAX_NODES, initial=0, required=False)
    max_nodes = forms.IntegerField(min_value=1, max_value=MAX_NODES, initial=1, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["size"].queryset = sizes_offered()  # type: ignore[attr-defined]
        # Shown instead of the allowlist where the provider has none.
        self.allowlist_note = ""
        if not instance_allowlist_supported(settings.CLOUD_PROVIDER):
            del self.fields["allowed_ips"]
            self.allowlist_note = NO_INSTANCE_ALLOWLIST

    def clean_allowed_ips(self) -> list[str]:
        return _split_cidrs(self.cleaned_data.get("allowed_ips", ""))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # A hidden field is not silently ignored: an allowlist posted anyway is refused.
        if self.allowlist_note and _split_cidrs(self.data.get("allowed_ips", "")):
            raise forms.ValidationError(NO_INSTANCE_ALLOWLIST)
        return cleaned

    def service_kwargs(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["min_nodes"] = data.get("min_nodes") or 0
        data["max_nodes"] = data.get("max_nodes") or 1
        return data


class ResizeForm(forms.Form):
    size = SizeChoiceField(queryset=None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["size"].queryset = sizes_offered()  # type: ignore[attr-defined]


class AllowedIpsForm(forms.Form):
    allowed_ips = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Allowed IPs (CIDR)"
    )

    def clean_allowed_ips(self) -> list[str]:
        return _split_cidrs(self.cleaned_data.get("allowed_ips", ""))


class QuotaForm(forms.Form):
    max_vcpus = forms.IntegerField(min_value=0, max_value=QUOTA_LIMITS["max_vcpus"])
    max_gpus = forms.IntegerField(min_value=0, max_value=QUOTA_LIMITS["max_gpus"])
    max_running = forms.IntegerField(min_value=0, max_value=QUOTA_LIMITS["max_running"])
    monthly_budget = forms.DecimalField(
        min_value=Decimal(0), max_value=Decimal(10**9), decimal_places=2, required=False
    )
