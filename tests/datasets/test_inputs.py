"""Bounds on what the data stage's forms and API take."""

from __future__ import annotations

from typing import Any

import pytest

from datasets.models import DataSource, Split, ValidationRule


@pytest.fixture
def snapshot(upload_source: Any, ingest: Any) -> Any:
    return ingest(upload_source).snapshot


def test_a_split_seed_of_10_to_the_30_is_a_400(
    snapshot: Any, upload_source: Any, api_for: Any, alice: Any
) -> None:
    url = f"/api/projects/churn/sources/{upload_source.pk}/snapshots/1/splits/"
    response = api_for(alice).post(url, {"test_fraction": 0.2, "seed": 10**30}, format="json")
    assert response.status_code == 400
    assert "seed" in response.json()
    response = api_for(alice).post(url, {"test_fraction": 0.2, "seed": 2**32}, format="json")
    assert response.status_code == 400
    assert not Split.objects.exists()


def test_the_split_form_refuses_a_seed_out_of_range(
    snapshot: Any, upload_source: Any, client_for: Any, alice: Any
) -> None:
    url = f"/projects/churn/data/{upload_source.pk}/v1/splits/"
    response = client_for(alice).post(url, {"test_fraction": 0.2, "seed": str(10**30)})
    assert response.status_code == 302
    assert not Split.objects.exists()


def test_nul_in_a_sources_config_is_a_400(project: Any, api_for: Any, alice: Any) -> None:
    body = {
        "name": "db",
        "kind": "postgres",
        "config": {"host": "db.example.com", "database": "x", "user": "u", "query": "SELECT 1\x00"},
    }
    response = api_for(alice).post("/api/projects/churn/sources/", body, format="json")
    assert response.status_code == 400
    assert not DataSource.objects.exists()


def test_nul_in_a_rules_params_is_a_400(upload_source: Any, api_for: Any, alice: Any) -> None:
    url = f"/api/projects/churn/sources/{upload_source.pk}/rules/"
    body = {"kind": "allowed", "column": "plan", "params": {"values": ["basic\x00"]}}
    response = api_for(alice).post(url, body, format="json")
    assert response.status_code == 400
    assert not ValidationRule.objects.exists()


def test_the_rule_form_takes_no_infinite_bound(
    upload_source: Any, client_for: Any, alice: Any
) -> None:
    url = f"/projects/churn/data/{upload_source.pk}/rules/"
    client_for(alice).post(url, {"kind": "range", "column": "age", "value": "0,1e999"})
    assert not ValidationRule.objects.exists()


# --- Refresh schedules: no more often than the admin allows ---------------------------


@pytest.fixture
def pg_body() -> dict[str, Any]:
    return {
        "name": "Warehouse",
        "kind": "postgres",
        "config": {"host": "db.example.com", "database": "dw", "user": "u", "query": "SELECT 1"},
    }


@pytest.mark.parametrize("cron", ["*/5 * * * *", "0,30 9 * * *", "* 3 * * *"])
def test_a_schedule_more_often_than_hourly_is_a_400(
    project: Any, api_for: Any, alice: Any, pg_body: dict[str, Any], cron: str
) -> None:
    response = api_for(alice).post(
        "/api/projects/churn/sources/", {**pg_body, "refresh_cron": cron}, format="json"
    )
    assert response.status_code == 400
    assert "shortest interval allowed is 60 minutes" in str(response.json()["refresh_cron"])
    assert not DataSource.objects.exists()


@pytest.mark.parametrize("cron", ["0 * * * *", "0 2 * * *", "0 0,23 * * 1"])
def test_hourly_and_rarer_schedules_are_taken(
    project: Any, api_for: Any, alice: Any, pg_body: dict[str, Any], cron: str
) -> None:
    response = api_for(alice).post(
        "/api/projects/churn/sources/", {**pg_body, "refresh_cron": cron}, format="json"
    )
    assert response.status_code == 201, response.content


def test_the_gap_across_midnight_counts_when_consecutive_days_run(
    project: Any, api_for: Any, alice: Any, pg_body: dict[str, Any], settings: Any
) -> None:
    settings.DATA_REFRESH_MIN_MINUTES = 120
    url = "/api/projects/churn/sources/"
    # 23:00 then 00:00 the next day: an hour apart.
    response = api_for(alice).post(url, {**pg_body, "refresh_cron": "0 0,23 * * *"}, format="json")
    assert response.status_code == 400
    assert "every 60 minutes" in str(response.json()["refresh_cron"])
    # Mondays only: Monday 23:00 is followed by the next Monday's 00:00.
    response = api_for(alice).post(url, {**pg_body, "refresh_cron": "0 0,23 * * 1"}, format="json")
    assert response.status_code == 201, response.content


def test_an_admin_may_lower_the_minimum(
    project: Any, api_for: Any, alice: Any, pg_body: dict[str, Any], settings: Any
) -> None:
    settings.DATA_REFRESH_MIN_MINUTES = 5
    url = "/api/projects/churn/sources/"
    response = api_for(alice).post(url, {**pg_body, "refresh_cron": "*/5 * * * *"}, format="json")
    assert response.status_code == 201
    source_id = response.json()["id"]
    response = api_for(alice).patch(
        f"{url}{source_id}/", {"refresh_cron": "* * * * *"}, format="json"
    )
    assert response.status_code == 400
    assert DataSource.objects.get(pk=source_id).refresh_cron == "*/5 * * * *"


def test_the_schedule_form_says_why(
    project: Any, client_for: Any, alice: Any, pg_body: dict[str, Any]
) -> None:
    from datasets import services

    source = services.source_create(actor=alice, project=project, **pg_body)
    client = client_for(alice)
    response = client.post(
        f"/projects/churn/data/{source.pk}/schedule/", {"refresh_cron": "*/10 * * * *"}, follow=True
    )
    assert "the shortest interval allowed is 60 minutes" in response.content.decode()
    source.refresh_from_db()
    assert source.refresh_cron == ""
    response = client.post(
        "/projects/churn/data/new/",
        {
            "name": "Other",
            "kind": "postgres",
            "location": "cloud",
            "mode": "batch",
            "refresh_cron": "*/10 * * * *",
            **pg_body["config"],
        },
    )
    assert response.status_code == 200
    assert "the shortest interval allowed is 60 minutes" in response.content.decode()
    assert DataSource.objects.count() == 1
