from __future__ import annotations

from django import forms


class AuditFilterForm(forms.Form):
    project = forms.SlugField(required=False)
    actor = forms.CharField(required=False, max_length=150)
    action = forms.CharField(required=False, max_length=100)
    since = forms.DateTimeField(required=False, help_text="e.g. 2026-11-01 or 2026-11-01 08:00")
    until = forms.DateTimeField(required=False)

    def clean(self) -> dict:
        data = super().clean() or {}
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise forms.ValidationError("“since” must be before “until”.")
        return data


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    comment = forms.CharField(required=False, max_length=5000)


class ApprovalSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Search")
    sort = forms.ChoiceField(
        required=False,
        label="Sort your requests",
        choices=[
            ("newest", "Newest first"),
            ("oldest", "Oldest first"),
            ("project", "By project"),
            ("state", "By state"),
        ],
    )
