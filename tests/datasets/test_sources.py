"""Registering sources through the API: settings checked, secrets encrypted
and never shown, and who may do what."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from audit.models import AuditEvent
from datasets import services
from datasets.crypto import secrets_decrypt
from datasets.models import DataSource

PASSWORD = "pg-Sup3r-secret-PASSWORD"  # noqa: S105
SAS = "sv=2024-01-01&sig=TopSecretSignatureValue"

POSTGRES: dict[str, Any] = {
    "name": "Warehouse",
    "kind": "postgres",
    "location": "on_prem",
    "mode": "batch",
    "config": {
        "host": "db.example.com",
        "port": 5432,
        "database": "crm",
        "user": "reader",
        "query": "SELECT * FROM customers",
    },
    "secrets": {"password": PASSWORD},
}


def everything_said(response: Any) -> str:
    return response.content.decode()


def test_create_postgres_source_stores_the_password_encrypted_only(
    project: Any, api_for: Any, alice: Any, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    response = api_for(alice).post("/api/projects/churn/sources/", POSTGRES, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secrets"] == {"password": "set"}
    assert body["config"]["host"] == "db.example.com"
    assert body["owner"] == "alice"
    assert (body["location"], body["mode"]) == ("on_prem", "batch")
    source = DataSource.objects.get()
    assert PASSWORD not in source.secrets_encrypted
    assert PASSWORD not in json.dumps(source.config)
    assert secrets_decrypt(source.secrets_encrypted) == {"password": PASSWORD}
    assert PASSWORD not in everything_said(response)
    payloads = json.dumps(list(AuditEvent.objects.values_list("payload", flat=True)))
    assert PASSWORD not in payloads
    assert AuditEvent.objects.filter(action="datasource.created").count() == 1
    assert PASSWORD not in caplog.text
    for url in ("/api/projects/churn/sources/", f"/api/projects/churn/sources/{source.pk}/"):
        assert PASSWORD not in everything_said(api_for(alice).get(url))


def test_secrets_are_replaced_and_removed_by_patch_and_never_echoed(
    project: Any, api_for: Any, alice: Any
) -> None:
    api = api_for(alice)
    source_id = api.post(
        "/api/projects/churn/sources/",
        {
            "name": "Lake",
            "kind": "azure_blob",
            "config": {"account": "acme", "container": "raw", "path": "crm/customers.csv"},
            "secrets": {"sas_token": SAS},
        },
        format="json",
    ).json()["id"]
    url = f"/api/projects/churn/sources/{source_id}/"

    response = api.patch(url, {"secrets": {"account_key": "a2V5"}}, format="json")
    assert response.json()["secrets"] == {"account_key": "set", "sas_token": "set"}
    response = api.patch(url, {"secrets": {"sas_token": ""}}, format="json")
    assert response.json()["secrets"] == {"account_key": "set", "sas_token": "not set"}
    assert SAS not in everything_said(response)
    assert secrets_decrypt(DataSource.objects.get().secrets_encrypted) == {"account_key": "a2V5"}
    update = AuditEvent.objects.filter(action="datasource.updated").first()
    assert update is not None
    assert "a2V5" not in json.dumps(update.payload)


@pytest.mark.parametrize(
    ("kind", "config", "field", "message"),
    [
        ("azure_blob", {"account": "a", "container": "c", "path": "../etc/passwd"}, "path", "'..'"),
        (
            "azure_blob",
            {"account": "a", "container": "c", "path": "/etc/passwd"},
            "path",
            "relative",
        ),
        ("azure_blob", {"account": "a", "container": "..", "path": "x.csv"}, "container", "'..'"),
        (
            "azure_blob",
            {"account": "a", "container": "c", "path": "C:\\data.csv"},
            "path",
            "relative",
        ),
        ("https", {"url": "http://example.com/data.csv"}, "url", "https://"),
        ("https", {"url": "file:///etc/passwd"}, "url", "https://"),
        ("postgres", {"host": "h", "database": "d", "user": "u"}, "query", "required"),
        (
            "postgres",
            {"host": "h", "database": "d", "user": "u", "query": "DROP TABLE x"},
            "query",
            "SELECT",
        ),
        (
            "postgres",
            {"host": "h", "database": "d", "user": "u", "query": "SELECT 1", "port": 70000},
            "port",
            "between",
        ),
        ("upload", {"format": "xlsx"}, "format", "csv or parquet"),
        ("upload", {"host": "x"}, "config", "Unknown"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(
    project: Any,
    api_for: Any,
    alice: Any,
    kind: str,
    config: dict[str, Any],
    field: str,
    message: str,
) -> None:
    response = api_for(alice).post(
        "/api/projects/churn/sources/",
        {"name": "Bad", "kind": kind, "config": config},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert message in str(response.json()[field])
    assert not DataSource.objects.exists()
    assert not AuditEvent.objects.filter(action="datasource.created").exists()


def test_unknown_secret_and_bad_cron_are_refused(project: Any, api_for: Any, alice: Any) -> None:
    api = api_for(alice)
    bad_secret = {**POSTGRES, "secrets": {"token": "x"}}
    assert api.post("/api/projects/churn/sources/", bad_secret, format="json").status_code == 400
    bad_cron = {**POSTGRES, "refresh_cron": "every night"}
    response = api.post("/api/projects/churn/sources/", bad_cron, format="json")
    assert response.status_code == 400
    assert "five fields" in str(response.json()["refresh_cron"])
    assert not DataSource.objects.exists()


def test_duplicate_name_is_a_400(project: Any, api_for: Any, alice: Any) -> None:
    api = api_for(alice)
    assert api.post("/api/projects/churn/sources/", POSTGRES, format="json").status_code == 201
    response = api.post("/api/projects/churn/sources/", POSTGRES, format="json")
    assert response.status_code == 400
    assert "already exists" in str(response.json()["name"])


@pytest.mark.parametrize(
    ("who", "read", "write"),
    [
        ("alice", 200, 201),
        ("bob", 200, 201),
        ("carol", 200, 403),
        ("dave", 200, 403),
        ("charlie", 404, 404),
        ("admin_user", 200, 403),
    ],
)
def test_source_api_access(
    project: Any, upload_source: Any, api_for: Any, request: Any, who: str, read: int, write: int
) -> None:
    api = api_for(request.getfixturevalue(who))
    base = "/api/projects/churn/sources/"
    assert api.get(base).status_code == read
    assert api.get(f"{base}{upload_source.pk}/").status_code == read
    assert api.get(f"{base}{upload_source.pk}/snapshots/").status_code == read
    assert api.get(f"{base}{upload_source.pk}/rules/").status_code == read
    created = api.post(base, {"name": f"By {who}", "kind": "upload"}, format="json")
    assert created.status_code == write
    patched = api.patch(f"{base}{upload_source.pk}/", {"description": "x"}, format="json")
    assert patched.status_code == (200 if write == 201 else write)
    rule = api.post(
        f"{base}{upload_source.pk}/rules/",
        {"kind": "min_rows", "params": {"min": 1}},
        format="json",
    )
    assert rule.status_code == write


def test_source_of_another_project_is_404(
    project: Any, upload_source: Any, api_for: Any, charlie: Any
) -> None:
    from tests.factories import MembershipFactory, ProjectFactory

    other = ProjectFactory(slug="other")
    MembershipFactory(project=other, user=charlie, role="lead")
    api = api_for(charlie)
    assert api.get(f"/api/projects/other/sources/{upload_source.pk}/").status_code == 404
    assert api.delete(f"/api/projects/other/sources/{upload_source.pk}/").status_code == 404
    assert DataSource.objects.filter(pk=upload_source.pk).exists()


def test_source_list_query_count_does_not_grow_with_rows(
    project: Any, api_for: Any, alice: Any, django_assert_num_queries: Any
) -> None:
    api = api_for(alice)
    services.source_create(
        actor=alice,
        project=project,
        name="S0",
        kind="https",
        config={"url": "https://example.com/0.csv"},
        refresh_cron="30 1 * * *",
    )
    # project, membership, count, page, the schedules of the page
    with django_assert_num_queries(5):
        assert len(api.get("/api/projects/churn/sources/").json()["results"]) == 1
    for i in range(1, 8):
        services.source_create(
            actor=alice,
            project=project,
            name=f"S{i}",
            kind="https",
            config={"url": f"https://example.com/{i}.csv"},
            refresh_cron="0 2 * * *",
        )
    with django_assert_num_queries(5):
        body = api.get("/api/projects/churn/sources/").json()
    assert len(body["results"]) == 8
    assert all(r["next_run"] for r in body["results"] if r["kind"] == "https")


def test_rotate_keys_reencrypts_with_the_new_key(project: Any, alice: Any, settings: Any) -> None:
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    source = services.source_create(actor=alice, project=project, **POSTGRES)
    old_token = source.secrets_encrypted
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]

    out = io.StringIO()
    call_command("rotate_data_secrets", stdout=out)

    assert "1 data source" in out.getvalue()
    source.refresh_from_db()
    assert source.secrets_encrypted != old_token
    Fernet(new_key).decrypt(source.secrets_encrypted.encode())
    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    assert secrets_decrypt(source.secrets_encrypted) == {"password": PASSWORD}
    assert AuditEvent.objects.filter(action="datasource.keys_rotated").count() == 1


def test_delete_source_removes_it_and_its_unshared_objects(
    project: Any,
    upload_source: Any,
    ingest: Any,
    api_for: Any,
    alice: Any,
    storage: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from tests.datasets.conftest import stored_files

    ingest(upload_source)
    assert stored_files(storage)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_for(alice).delete(f"/api/projects/churn/sources/{upload_source.pk}/")
    assert response.status_code == 204
    assert not DataSource.objects.exists()
    assert stored_files(storage) == []
    assert AuditEvent.objects.filter(action="datasource.deleted").count() == 1
