"""Rules that cannot make sense are refused; rules apply to a version on demand."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditEvent
from datasets import services
from datasets.models import ValidationRule, ValidationStatus


@pytest.mark.parametrize(
    ("kind", "column", "params", "field", "reason"),
    [
        ("min_rows", "", {"min": -5}, "params", "between 0 and"),
        ("min_rows", "", {"min": 2**63}, "params", "between 0 and"),
        ("min_rows", "", {"min": True}, "params", "whole number"),
        ("range", "age", {"min": 90, "max": 18}, "params", "must not be above max"),
        ("range", "age", {"min": True}, "params", "must be numbers"),
        ("range", "age", {"min": float("inf")}, "params", "must be numbers"),
        ("not_null", "", {}, "column", "Name the column"),
    ],
)
def test_impossible_rules_are_refused(
    upload_source: Any,
    alice: Any,
    kind: str,
    column: str,
    params: dict[str, Any],
    field: str,
    reason: str,
) -> None:
    with pytest.raises(ValidationError) as caught:
        services.rule_create(
            actor=alice, source=upload_source, kind=kind, column=column, params=params
        )
    assert reason in caught.value.message_dict[field][0]
    assert not ValidationRule.objects.exists()


def test_a_column_not_in_the_latest_version_is_refused(
    upload_source: Any, ingest: Any, alice: Any
) -> None:
    # Before any version the schema is unknown: any column name is taken.
    services.rule_create(actor=alice, source=upload_source, kind="not_null", column="later")
    ingest(upload_source)
    with pytest.raises(ValidationError) as caught:
        services.rule_create(actor=alice, source=upload_source, kind="not_null", column="agee")
    message = caught.value.message_dict["column"][0]
    assert "No column 'agee'" in message and "customer_id" in message
    rule = services.rule_create(actor=alice, source=upload_source, kind="not_null", column="age")
    assert rule.column == "age"


def test_the_api_refuses_with_a_reason(
    upload_source: Any, ingest: Any, alice: Any, api_for: Any
) -> None:
    ingest(upload_source)
    url = f"/api/projects/churn/sources/{upload_source.pk}/rules/"
    for body, field in (
        ({"kind": "min_rows", "params": {"min": -5}}, "params"),
        ({"kind": "required", "column": "nope"}, "column"),
        ({"kind": "range", "column": "age", "params": {"min": 5, "max": 1}}, "params"),
    ):
        response = api_for(alice).post(url, body, format="json")
        assert response.status_code == 400, body
        assert field in response.json()
    assert not ValidationRule.objects.exists()


def test_the_page_refuses_negative_min_rows(
    upload_source: Any, alice: Any, client_for: Any
) -> None:
    response = client_for(alice).post(
        f"/projects/churn/data/{upload_source.pk}/rules/",
        {"kind": "min_rows", "column": "", "value": "-5"},
        follow=True,
    )
    assert "between 0 and" in response.content.decode()
    assert not ValidationRule.objects.exists()


def test_rules_apply_to_an_existing_version_on_demand(
    upload_source: Any,
    ingest: Any,
    alice: Any,
    client_for: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    snapshot = ingest(upload_source).snapshot
    assert snapshot.validation_status == ValidationStatus.VALID
    assert snapshot.validation_results == []
    rule = services.rule_create(
        actor=alice, source=upload_source, kind="range", column="age", params={"max": 30}
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(alice).post(
            f"/projects/churn/data/{upload_source.pk}/v1/validate/", follow=True
        )
    assert response.status_code == 200
    snapshot.refresh_from_db()
    assert snapshot.validation_status == ValidationStatus.INVALID
    (result,) = snapshot.validation_results
    assert (result["rule_id"], result["passed"]) == (rule.pk, False)
    assert result["failing"] == sum(1 for i in range(1, 201) if 20 + i % 50 > 30)
    event = AuditEvent.objects.get(action="snapshot.validated")
    assert event.actor == alice
    assert event.payload["before"] == "valid" and event.payload["validation"] == "invalid"
    assert AuditEvent.objects.filter(action="snapshot.validation_requested").count() == 1

    services.rule_delete(actor=alice, rule=rule)
    with django_capture_on_commit_callbacks(execute=True):
        services.snapshot_validate_request(actor=alice, snapshot=snapshot)
    snapshot.refresh_from_db()
    assert snapshot.validation_status == ValidationStatus.VALID
    assert snapshot.validation_results == []


@pytest.mark.parametrize(("who", "status"), [("bob", 202), ("carol", 403), ("charlie", 404)])
def test_the_api_applies_rules_by_role(
    upload_source: Any,
    ingest: Any,
    api_for: Any,
    request: Any,
    django_capture_on_commit_callbacks: Any,
    who: str,
    status: int,
) -> None:
    ingest(upload_source)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_for(request.getfixturevalue(who)).post(
            f"/api/projects/churn/sources/{upload_source.pk}/snapshots/1/validate/"
        )
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    assert AuditEvent.objects.filter(action="snapshot.validated").exists() == (status == 202)


@pytest.mark.parametrize(("who", "status"), [("carol", 403), ("charlie", 404)])
def test_the_page_refuses_by_role(
    upload_source: Any, ingest: Any, client_for: Any, request: Any, who: str, status: int
) -> None:
    ingest(upload_source)
    response = client_for(request.getfixturevalue(who)).post(
        f"/projects/churn/data/{upload_source.pk}/v1/validate/"
    )
    assert response.status_code == status
    assert not AuditEvent.objects.filter(action="snapshot.validation_requested").exists()
