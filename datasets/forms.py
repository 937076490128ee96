from __future__ import annotations

import math
from typing import Any

from django import forms

from datasets.models import Location, Mode, RuleKind, SourceKind
from datasets.readers import AUTO, ENCODINGS
from datasets.services import KIND_FIELDS

# The split's random state: numpy takes seeds below 2**32.
MAX_SEED = 2**32 - 1


COMMON_FIELDS = ("name", "description", "location", "mode", "refresh_cron")
UNCHANGED_HELP = "Leave empty to keep the stored one."


class SourceForm(forms.Form):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=SourceKind.choices)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    location = forms.ChoiceField(choices=Location.choices, initial=Location.CLOUD)
    mode = forms.ChoiceField(choices=Mode.choices, initial=Mode.BATCH)
    refresh_cron = forms.CharField(
        max_length=100, required=False, label="Refresh schedule (cron)", help_text="e.g. 0 2 * * *"
    )
    host = forms.CharField(required=False)
    port = forms.IntegerField(required=False, min_value=1, max_value=65535)
    database = forms.CharField(required=False)
    user = forms.CharField(required=False)
    query = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, label="SQL")
    account = forms.CharField(required=False)
    container = forms.CharField(required=False)
    path = forms.CharField(required=False)
    endpoint = forms.CharField(required=False, help_text="Blank for Azure's public endpoint.")
    url = forms.CharField(required=False, label="URL")
    format = forms.ChoiceField(
        choices=[("", "From the file name"), ("csv", "CSV"), ("parquet", "Parquet")],
        required=False,
    )
    delimiter = forms.ChoiceField(
        choices=[
            (AUTO, "Detect"),
            (",", "Comma (,)"),
            (";", "Semicolon (;)"),
            ("tab", "Tab"),
            ("|", "Pipe (|)"),
        ],
        required=False,
        initial=AUTO,
        label="CSV delimiter",
    )
    encoding = forms.ChoiceField(
        choices=[(AUTO, "Detect"), *ENCODINGS.items()],
        required=False,
        initial=AUTO,
        label="CSV encoding",
    )
    password = forms.CharField(widget=forms.PasswordInput(render_value=False), required=False)
    account_key = forms.CharField(widget=forms.PasswordInput(render_value=False), required=False)
    sas_token = forms.CharField(
        widget=forms.PasswordInput(render_value=False), required=False, label="SAS token"
    )

    def kind_fieldsets(self) -> list[dict[str, Any]]:
        """Every kind with its connection and secret fields, each rendered with
        an id of its own (``format`` belongs to several kinds), so a template
        can show the chosen kind's fields and switch between them in place."""
        fieldsets = []
        for kind, label in SourceKind.choices:
            fields = []
            for name in (*KIND_FIELDS[kind][0], *KIND_FIELDS[kind][2]):
                bound = self[name]
                field_id = f"id_{kind}_{name}"
                fields.append(
                    {
                        "id": field_id,
                        "label": bound.label,
                        "widget": bound.as_widget(attrs={"id": field_id}),
                        "errors": bound.errors,
                        "help_text": bound.help_text,
                    }
                )
            fieldsets.append({"kind": kind, "label": label, "fields": fields})
        return fieldsets

    def common_fields(self) -> list[forms.BoundField]:
        return [self[f] for f in COMMON_FIELDS]

    def split(self) -> dict[str, Any]:
        """The service's arguments: config and secrets for the chosen kind."""
        data = self.cleaned_data
        fields, _, secret_fields = KIND_FIELDS[data["kind"]]
        return {
            "name": data["name"],
            "kind": data["kind"],
            "description": data["description"],
            "location": data["location"],
            "mode": data["mode"],
            "refresh_cron": data["refresh_cron"],
            "config": {f: data[f] for f in fields if data.get(f) not in (None, "")},
            "secrets": {f: data[f] for f in secret_fields if data.get(f)},
        }


class SourceEditForm(forms.Form):
    """Edit one source: its name, description, labels and the connection
    fields of its kind. Secrets are never rendered back; one left empty keeps
    the stored value."""

    name = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    location = forms.ChoiceField(choices=Location.choices)
    mode = forms.ChoiceField(choices=Mode.choices)

    def __init__(self, *args: Any, source: Any, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {
                "name": source.name,
                "description": source.description,
                "location": source.location,
                "mode": source.mode,
                **source.config,
            },
        )
        super().__init__(*args, **kwargs)
        self.source = source
        config_fields, _, secret_fields = KIND_FIELDS[source.kind]
        template = SourceForm.base_fields
        for name in config_fields:
            self.fields[name] = _copy_field(template[name])
        for name in secret_fields:
            field = _copy_field(template[name])
            is_set = name in source.secret_names
            field.help_text = f"Set. {UNCHANGED_HELP}" if is_set else "Not set."
            self.fields[name] = field
        self.config_fields = config_fields
        self.secret_fields = secret_fields

    def general_fields(self) -> list[forms.BoundField]:
        return [self[f] for f in ("name", "description", "location", "mode")]

    def connection_fields(self) -> list[forms.BoundField]:
        return [self[f] for f in (*self.config_fields, *self.secret_fields)]

    def changes(self) -> dict[str, Any]:
        """The service's arguments: a blank connection field clears it, a blank
        secret keeps the stored one."""
        data = self.cleaned_data
        return {
            "name": data["name"],
            "description": data["description"],
            "location": data["location"],
            "mode": data["mode"],
            "config": {f: data.get(f) for f in self.config_fields},
            "secrets": {f: data[f] for f in self.secret_fields if data.get(f)},
        }


def _copy_field(field: forms.Field) -> forms.Field:
    import copy

    return copy.deepcopy(field)


class UploadForm(forms.Form):
    file = forms.FileField(label="CSV or Parquet file")


class ScheduleForm(forms.Form):
    refresh_cron = forms.CharField(max_length=100, required=False, label="Cron")


class RuleForm(forms.Form):
    kind = forms.ChoiceField(choices=RuleKind.choices)
    column = forms.CharField(max_length=200, required=False)
    value = forms.CharField(
        max_length=1000,
        required=False,
        help_text="type: integer/float/string/boolean/datetime · range: min,max · "
        "allowed: a,b,c · min rows: n",
    )

    def params(self) -> dict[str, Any]:
        kind, value = self.cleaned_data["kind"], self.cleaned_data["value"].strip()
        if kind == "type":
            return {"type": value}
        if kind == "range":
            low, _, high = value.partition(",")
            return {"min": _number(low), "max": _number(high)}
        if kind == "allowed":
            return {"values": [v.strip() for v in value.split(",") if v.strip()]}
        if kind == "min_rows":
            number = _number(value)
            return {
                "min": int(number) if isinstance(number, float) and number.is_integer() else number
            }
        return {}


def _number(text: str) -> float | str | None:
    text = text.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


class SplitForm(forms.Form):
    test_fraction = forms.FloatField(min_value=0.01, max_value=0.99, initial=0.2)
    seed = forms.IntegerField(min_value=0, max_value=MAX_SEED, initial=42)
    stratify_column = forms.ChoiceField(required=False, label="Stratify by")
    group_column = forms.ChoiceField(required=False, label="Keep groups together by")

    def __init__(
        self, *args: Any, columns: list[str], default_stratify: str, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", "—"), *[(c, c) for c in columns]]
        self.fields["stratify_column"].choices = choices  # type: ignore[attr-defined]
        self.fields["group_column"].choices = choices  # type: ignore[attr-defined]
        self.fields["stratify_column"].initial = default_stratify
