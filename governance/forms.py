from __future__ import annotations

from typing import Any

from django import forms


class AuditApiFilterForm(forms.Form):
    """The API's filters: an action prefix and moments in time."""

    project = forms.SlugField(required=False)
    actor = forms.CharField(required=False, max_length=150)
    action = forms.CharField(required=False, max_length=100)
    since = forms.DateTimeField(required=False, help_text="e.g. 2026-11-01 or 2026-11-01 08:00")
    until = forms.DateTimeField(required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise forms.ValidationError("“since” must be before “until”.")
        return data


class DateInput(forms.DateInput):
    input_type = "date"


AUDIT_SORTS = [("newest", "Newest first"), ("oldest", "Oldest first")]


class AuditFilterForm(forms.Form):
    """Filters of the audit trail: choices of what this user may see, and dates
    picked in the browser (``until`` counts the whole day)."""

    q = forms.CharField(required=False, max_length=100, label="Search")
    project = forms.ChoiceField(required=False, label="Project")
    actor = forms.ChoiceField(required=False, label="Who")
    action = forms.ChoiceField(required=False, label="Action")
    since = forms.DateField(required=False, label="From", widget=DateInput)
    until = forms.DateField(required=False, label="To", widget=DateInput)
    sort = forms.ChoiceField(required=False, label="Order", choices=AUDIT_SORTS)

    def __init__(
        self,
        *args: Any,
        projects: list[tuple[str, str]] = (),  # type: ignore[assignment]
        actors: list[str] = (),  # type: ignore[assignment]
        actions: list[str] = (),  # type: ignore[assignment]
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].choices = [("", "All projects"), *projects]  # type: ignore[attr-defined]
        self.fields["actor"].choices = [("", "Anyone"), *((a, a) for a in actors)]  # type: ignore[attr-defined]
        self.fields["action"].choices = [  # type: ignore[attr-defined]
            ("", "Any action"),
            *((a, action_in_words(a)) for a in actions),
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("“From” must not be after “To”.")
        return data


def action_in_words(action: str) -> str:
    """ "workspace.request_rejected" as "Workspace: request rejected"."""
    thing, _, what = action.partition(".")
    thing = thing.replace("_", " ").capitalize()
    return f"{thing}: {what.replace('_', ' ').replace('.', ' ')}" if what else thing


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
