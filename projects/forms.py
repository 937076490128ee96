from __future__ import annotations

from typing import Any

from django import forms

from projects.models import Project, Role


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["name", "slug", "description", "monthly_budget"]
        help_texts = {
            "slug": "Short name used in addresses, e.g. churn-model; made from the name if blank."
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["slug"].required = False

    def validate_unique(self) -> None:
        """The service checks the slug, regardless of case."""

    def clean_monthly_budget(self):  # type: ignore[no-untyped-def]
        value = self.cleaned_data["monthly_budget"]
        if value is not None and value < 0:
            raise forms.ValidationError("A budget cannot be negative.")
        return value


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices)
