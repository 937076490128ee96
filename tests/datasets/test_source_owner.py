"""A data source's owner is a member of its project."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from datasets import services
from datasets.models import DataSource


def test_an_outsider_cannot_be_made_owner(project: Any, alice: Any, charlie: Any) -> None:
    with pytest.raises(ValidationError, match="must be a member of the project"):
        services.source_create(
            actor=alice, project=project, name="Lake", kind="upload", owner=charlie
        )
    assert not DataSource.objects.exists()


def test_the_owner_changes_only_to_a_member(
    project: Any, alice: Any, bob: Any, charlie: Any, upload_source: DataSource
) -> None:
    with pytest.raises(ValidationError, match="must be a member of the project"):
        services.source_update(actor=alice, source=upload_source, owner=charlie)
    upload_source.refresh_from_db()
    assert upload_source.owner == alice
    services.source_update(actor=alice, source=upload_source, owner=bob)
    upload_source.refresh_from_db()
    assert upload_source.owner == bob


def test_the_api_refuses_an_outsider_as_owner(
    project: Any, alice: Any, charlie: Any, api_for: Any
) -> None:
    response = api_for(alice).post(
        "/api/projects/churn/sources/",
        {"name": "Lake", "kind": "upload", "owner": "charlie"},
        format="json",
    )
    assert response.status_code == 400
    assert "must be a member" in str(response.json()["owner"])
