"""Numbers the database cannot store and bodies too large to read: a clear
4xx (JSON under /api/, the portal's layout elsewhere), never a 500."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest
from django import forms
from django.conf import settings
from rest_framework import serializers

from charter.models import CharterVersion
from datasets import services
from datasets.models import Split

BIGINT = (-(2**63), 2**63 - 1)
APPS = [p.parent.name for p in Path(settings.BASE_DIR).glob("*/apps.py")]


def _input_classes() -> list[tuple[str, str, Any]]:
    """Every integer field of every form and input serializer in the project."""
    found = []
    for app in APPS:
        for module_name in ("forms", "api", "serializers"):
            try:
                module = importlib.import_module(f"{app}.{module_name}")
            except ModuleNotFoundError:
                continue
            for name, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ != module.__name__:
                    continue
                if issubclass(cls, forms.BaseForm):
                    fields = dict(cls.base_fields)  # type: ignore[attr-defined]
                elif issubclass(cls, serializers.Serializer):
                    fields = dict(cls._declared_fields)  # type: ignore[attr-defined]
                else:
                    continue
                if issubclass(cls, serializers.ModelSerializer):
                    continue  # the API's output: read, never written
                for field_name, field in fields.items():
                    # forms.FloatField and DecimalField subclass forms.IntegerField.
                    if type(field) in (forms.IntegerField, serializers.IntegerField):
                        if getattr(field, "read_only", False):
                            continue
                        found.append((f"{module.__name__}.{name}", field_name, field))
    return found


INTEGER_FIELDS = _input_classes()


def test_the_audit_finds_the_known_integer_inputs() -> None:
    names = {f"{c}.{f}" for c, f, _ in INTEGER_FIELDS}
    assert {"datasets.forms.SplitForm.seed", "datasets.api.SplitInput.seed"} <= names
    assert "datasets.forms.SourceForm.port" in names


@pytest.mark.parametrize(
    "field", [f for _, _, f in INTEGER_FIELDS], ids=[f"{c}.{n}" for c, n, _ in INTEGER_FIELDS]
)
def test_every_integer_input_is_bounded_by_what_the_database_stores(field: Any) -> None:
    assert field.min_value is not None and field.max_value is not None
    assert BIGINT[0] <= field.min_value <= field.max_value <= BIGINT[1]


@pytest.fixture
def snapshot(project: Any, alice: Any, eager: None, django_capture_on_commit_callbacks: Any) -> Any:
    from tests.datasets.conftest import upload

    source = services.source_create(actor=alice, project=project, name="C", kind="upload")
    with django_capture_on_commit_callbacks(execute=True):
        ingestion = services.snapshot_upload(actor=alice, source=source, upload=upload())
    ingestion.refresh_from_db()
    return ingestion.snapshot


@pytest.fixture
def eager() -> Any:
    from portal.celery import app

    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = False


HUGE = 2**70


def test_a_seed_beyond_64_bits_is_a_json_400(snapshot: Any, api_for: Any, alice: Any) -> None:
    url = f"/api/projects/churn/sources/{snapshot.source_id}/snapshots/1/splits/"
    response = api_for(alice).post(url, {"seed": HUGE, "test_fraction": 0.2}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert "seed" in response.json()
    assert not Split.objects.exists()


def test_a_seed_beyond_64_bits_is_a_message_on_the_page(
    snapshot: Any, client_for: Any, alice: Any
) -> None:
    url = f"/projects/churn/data/{snapshot.source_id}/v1/splits/"
    response = client_for(alice).post(url, {"seed": str(HUGE), "test_fraction": "0.2"}, follow=True)
    assert response.status_code in (200, 400)
    page = response.content.decode()
    assert "Seed: Ensure this value is less than or equal to 4294967295." in page
    assert not Split.objects.exists()


@pytest.mark.parametrize(
    "path",
    [
        f"/api/projects/churn/sources/{HUGE}/",
        f"/api/projects/churn/sources/{HUGE}/snapshots/{HUGE}/",
        f"/api/projects/churn/sources/1/splits/{HUGE}/",
    ],
)
def test_ids_beyond_64_bits_are_a_json_404(
    project: Any, api_for: Any, alice: Any, path: str
) -> None:
    response = api_for(alice).get(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")


def test_a_3_mb_charter_post_is_a_message_in_the_layout(
    project: Any, client_for: Any, alice: Any
) -> None:
    before = CharterVersion.objects.count()
    response = client_for(alice).post(
        "/projects/churn/charter/", {"problem_statement": "x" * 3_000_000}
    )
    assert response.status_code == 413
    page = response.content.decode()
    assert "too large" in page and "Nothing was saved" in page
    assert 'class="topbar"' in page  # the portal's layout, with its navigation
    assert 'href="/projects/churn/charter/"' in page
    assert CharterVersion.objects.count() == before


def test_a_3_mb_api_body_is_a_json_413(project: Any, api_for: Any, alice: Any) -> None:
    response = api_for(alice).put(
        "/api/projects/churn/charter/", {"problem_statement": "x" * 3_000_000}, format="json"
    )
    assert response.status_code == 413
    assert response["Content-Type"].startswith("application/json")
    assert "larger than" in response.json()["detail"]
