"""Columns marked sensitive in the data stage: named from the data, audited,
kept by role, and read by serving (see tests/deployments/test_end_to_end.py
for a scoring process that leaves them out of its sample log)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditEvent
from datasets import services
from datasets.models import DataSource


def test_marks_are_columns_of_the_latest_version(
    upload_source: DataSource, alice: Any, ingest: Any
) -> None:
    # Before any version there is nothing to check the names against.
    services.source_update(actor=alice, source=upload_source, sensitive_columns=["email"])
    upload_source.refresh_from_db()
    assert upload_source.sensitive_columns == ["email"]

    ingest(upload_source)
    with pytest.raises(ValidationError, match="Version 1 has no column named 'email'"):
        services.source_update(actor=alice, source=upload_source, sensitive_columns=["email"])
    services.source_update(
        actor=alice, source=upload_source, sensitive_columns=[" plan", "age", "age"]
    )
    upload_source.refresh_from_db()
    assert upload_source.sensitive_columns == ["age", "plan"]
    event = AuditEvent.objects.filter(action="datasource.updated").latest("pk")
    assert event.payload["sensitive_columns"] == ["age", "plan"]
    assert event.actor_id == alice.pk

    for bad, message in (("age", "list of column names"), ([1], "list of column names")):
        with pytest.raises(ValidationError, match=message):
            services.source_update(actor=alice, source=upload_source, sensitive_columns=bad)
    upload_source.refresh_from_db()
    assert upload_source.sensitive_columns == ["age", "plan"]


def test_the_page_and_the_api_by_role(
    upload_source: DataSource,
    alice: Any,
    carol: Any,
    charlie: Any,
    ingest: Any,
    client_for: Any,
    api_for: Any,
) -> None:
    ingest(upload_source)
    page = f"/projects/churn/data/{upload_source.pk}/"
    lead = client_for(alice)
    html = lead.get(page).content.decode()
    assert 'id="save-sensitive"' in html and 'value="monthly_fee"' in html
    done = lead.post(f"{page}sensitive/", {"sensitive": ["monthly_fee", "age"]})
    assert done.status_code == 302
    upload_source.refresh_from_db()
    assert upload_source.sensitive_columns == ["age", "monthly_fee"]
    lead.post(f"{page}sensitive/", {"sensitive": ["nope"]})
    followed = lead.get(page).content.decode()
    assert "has no column named" in followed
    upload_source.refresh_from_db()
    assert upload_source.sensitive_columns == ["age", "monthly_fee"]

    reader = client_for(carol)
    shown = reader.get(page).content.decode()
    assert 'id="save-sensitive"' not in shown and "monthly_fee</span>" in shown
    assert reader.post(f"{page}sensitive/", {"sensitive": []}).status_code == 403
    assert client_for(charlie).post(f"{page}sensitive/", {"sensitive": []}).status_code == 404

    api = f"/api/projects/churn/sources/{upload_source.pk}/"
    assert api_for(carol).get(api).json()["sensitive_columns"] == ["age", "monthly_fee"]
    changed = api_for(alice).patch(api, {"sensitive_columns": ["plan"]}, format="json")
    assert changed.status_code == 200 and changed.json()["sensitive_columns"] == ["plan"]
    bad = api_for(alice).patch(api, {"sensitive_columns": ["ghost"]}, format="json")
    assert bad.status_code == 400 and "ghost" in str(bad.json())
    assert api_for(carol).patch(api, {"sensitive_columns": []}, format="json").status_code == 403
