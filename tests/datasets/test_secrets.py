"""Secrets never leave the encrypted column: not in any API response, page,
audit payload, task argument or log line produced while using the sources."""

from __future__ import annotations

import json
import logging
from typing import Any

from audit.models import AuditEvent
from datasets import services
from datasets.models import DataSource

SECRETS = {
    "postgres": {"password": "PgPass-Z9x-never-shown"},
    "azure_blob": {"account_key": "QXp1cmVLZXktbmV2ZXItc2hvd24="},
}
SAS = "sv=2025-01-01&ss=b&sig=SasSignature-never-shown"


def test_no_secret_anywhere(
    project: Any,
    alice: Any,
    carol: Any,
    api_for: Any,
    client_for: Any,
    settings: Any,
    caplog: Any,
    eager: None,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings.DATA_EGRESS_ALLOWED_CIDRS = []
    queued: list[str] = []
    from celery.app.task import Task

    original = Task.apply_async

    def record(self: Task, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        queued.append(json.dumps([self.name, args, kwargs]))
        return original(self, args, kwargs, **options)

    monkeypatch.setattr(Task, "apply_async", record)
    api = api_for(alice)
    pg = api.post(
        "/api/projects/churn/sources/",
        {
            "name": "CRM",
            "kind": "postgres",
            "config": {
                "host": "127.0.0.1",
                "database": "crm",
                "user": "reader",
                "query": "SELECT 1",
            },
            "secrets": SECRETS["postgres"],
            "refresh_cron": "15 3 * * *",
        },
        format="json",
    )
    lake = api.post(
        "/api/projects/churn/sources/",
        {
            "name": "Lake",
            "kind": "azure_blob",
            "config": {"account": "acme", "container": "raw", "path": "x.csv"},
            "secrets": {**SECRETS["azure_blob"], "sas_token": SAS},
        },
        format="json",
    )
    responses = [pg, lake]
    for source in DataSource.objects.all():
        base = f"/api/projects/churn/sources/{source.pk}/"
        with django_capture_on_commit_callbacks(execute=True):
            responses.append(api.post(f"{base}test/"))
        with django_capture_on_commit_callbacks(execute=True):
            responses.append(api.post(f"{base}pull/"))
        responses.append(
            api.patch(
                base,
                {
                    "description": "changed",
                    "secrets": {"sas_token": SAS}
                    if source.kind == "azure_blob"
                    else SECRETS["postgres"],
                },
                format="json",
            )
        )
        for url in ("", "ingestions/", "snapshots/", "rules/"):
            responses.append(api.get(f"{base}{url}"))
            responses.append(api_for(carol).get(f"{base}{url}"))
        for client in (client_for(alice), client_for(carol)):
            responses.append(client.get(f"/projects/churn/data/{source.pk}/"))
            responses.append(
                client.get(f"/projects/churn/data/{source.pk}/?part=test", HTTP_HX_REQUEST="true")
            )
    responses.append(api.get("/api/projects/churn/sources/"))
    responses.append(client_for(alice).get("/projects/churn/data/"))
    responses.append(client_for(alice).get("/data/"))
    responses.append(client_for(alice).get("/projects/churn/data/lineage/"))
    responses.append(api.get("/api/audit/"))
    responses.append(client_for(alice).get("/audit/"))

    assert all(r.status_code < 400 for r in responses), [r.status_code for r in responses]
    said = "\n".join(r.content.decode() for r in responses)
    stored = json.dumps(list(AuditEvent.objects.values("payload", "action")))
    rows = json.dumps(
        list(DataSource.objects.values("config", "test_message", "secret_names", "description"))
    ) + json.dumps(list(services.Ingestion.objects.values("error")))
    assert queued and all("source_id" in q or "ingestion_id" in q for q in queued)
    everything = {
        "responses": said,
        "audit": stored,
        "rows": rows,
        "tasks": "\n".join(queued),
        "logs": caplog.text,
    }
    for value in [
        *SECRETS["postgres"].values(),
        *SECRETS["azure_blob"].values(),
        SAS,
        "SasSignature",
    ]:
        for where, text in everything.items():
            assert value not in text, f"{value!r} found in {where}"
    assert "set" in said
