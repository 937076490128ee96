from __future__ import annotations

from django import forms

from accounts.models import TOKEN_DEFAULT_LIFETIME_DAYS, TOKEN_LIFETIME_CHOICES


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What will use it, e.g. “training notebook” or “mlflow client”.",
    )
    lifetime_days = forms.TypedChoiceField(
        label="Expires after",
        choices=[(d, f"{d} days") for d in TOKEN_LIFETIME_CHOICES],
        coerce=int,
        initial=TOKEN_DEFAULT_LIFETIME_DAYS,
        required=False,
    )

    def clean_lifetime_days(self) -> int:
        # Scripts that post only a name get the default.
        return int(self.cleaned_data.get("lifetime_days") or TOKEN_DEFAULT_LIFETIME_DAYS)
