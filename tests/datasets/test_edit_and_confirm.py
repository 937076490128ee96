"""The register form shows one kind's fields; a source can be edited (secrets
replaced, never shown back); deletes ask first, on a page that works without
JavaScript and with htmx's confirm."""

from __future__ import annotations

import re
from typing import Any

import pytest

from audit.models import AuditEvent
from datasets import services
from datasets.crypto import secrets_decrypt
from datasets.models import DataSource, Snapshot, ValidationRule

OLD_PASSWORD = "Old-Secret-Never-Shown-1"  # noqa: S105
NEW_PASSWORD = "New-Secret-Never-Shown-2"  # noqa: S105


@pytest.fixture
def pg(project: Any, alice: Any) -> DataSource:
    return services.source_create(
        actor=alice,
        project=project,
        name="Billing",
        kind="postgres",
        config={
            "host": "db.internal",
            "port": 5432,
            "database": "billing",
            "user": "reader",
            "query": "select * from invoices",
        },
        secrets={"password": OLD_PASSWORD},
    )


def visible_kinds(html: str) -> list[str]:
    return re.findall(r'<fieldset data-kind="(\w+)">', html)


def test_register_form_shows_the_fields_of_the_chosen_kind(
    project: Any, alice: Any, client_for: Any
) -> None:
    client = client_for(alice)
    page = client.get("/projects/churn/data/new/").content.decode()
    assert visible_kinds(page) == ["upload"]  # the others are hidden and disabled
    assert '<fieldset data-kind="postgres" hidden disabled>' in page
    for kind in ("postgres", "azure_blob", "https"):
        page = client.get(f"/projects/churn/data/new/?kind={kind}").content.decode()
        assert visible_kinds(page) == [kind]
        assert f'href="?kind={kind}" class="button primary"' in page
    # Each kind's fields have ids of their own, though "format" is in three.
    assert len(set(re.findall(r'id="(id_\w+)"', page))) == len(re.findall(r'id="(id_\w+)"', page))

    # Fields of another kind are not used, and errors name the chosen kind's fields.
    response = client.post(
        "/projects/churn/data/new/?kind=postgres",
        {
            "name": "Billing",
            "kind": "postgres",
            "location": "cloud",
            "mode": "batch",
            "url": "https://data.example.com/x.csv",
        },
    )
    assert response.status_code == 200
    assert visible_kinds(response.content.decode()) == ["postgres"]
    assert "This field is required." in response.content.decode()
    assert not DataSource.objects.exists()


def test_edit_a_source_keeps_an_empty_secret_and_replaces_a_given_one(
    pg: DataSource, alice: Any, client_for: Any
) -> None:
    client = client_for(alice)
    url = f"/projects/churn/data/{pg.pk}/edit/"
    page = client.get(url).content.decode()
    assert OLD_PASSWORD not in page
    assert 'value="db.internal"' in page and "Set. Leave empty to keep the stored one." in page
    form = {
        "name": "Billing EU",
        "description": "Invoices",
        "location": "on_prem",
        "mode": "batch",
        "host": "db2.internal",
        "port": "5433",
        "database": "billing",
        "user": "reader",
        "query": "select * from invoices",
        "password": "",
    }
    response = client.post(url, form)
    assert response.status_code == 302
    pg.refresh_from_db()
    assert (pg.name, pg.location, pg.config["host"], pg.config["port"]) == (
        "Billing EU",
        "on_prem",
        "db2.internal",
        5433,
    )
    assert secrets_decrypt(pg.secrets_encrypted) == {"password": OLD_PASSWORD}
    event = AuditEvent.objects.filter(action="datasource.updated").latest("pk")
    assert "secrets" not in event.payload["changed"] and event.payload["updated"] == []

    response = client.post(url, {**form, "password": NEW_PASSWORD, "port": ""})
    assert response.status_code == 302
    pg.refresh_from_db()
    assert secrets_decrypt(pg.secrets_encrypted) == {"password": NEW_PASSWORD}
    assert "port" not in pg.config  # a blank connection field clears it
    event = AuditEvent.objects.filter(action="datasource.updated").latest("pk")
    assert event.payload["updated"] == ["password"]
    assert NEW_PASSWORD not in str(event.payload)
    for page_url in (url, f"/projects/churn/data/{pg.pk}/"):
        assert NEW_PASSWORD not in client.get(page_url).content.decode()


def test_edit_refuses_bad_input_with_a_message_and_changes_nothing(
    pg: DataSource, alice: Any, client_for: Any
) -> None:
    client = client_for(alice)
    response = client.post(
        f"/projects/churn/data/{pg.pk}/edit/",
        {
            "name": "Billing",
            "location": "cloud",
            "mode": "batch",
            "host": "db.internal",
            "database": "billing",
            "user": "reader",
            "query": "drop table invoices",
        },
    )
    assert response.status_code == 200
    assert "Give one SELECT query." in response.content.decode()
    pg.refresh_from_db()
    assert pg.config["query"] == "select * from invoices"


@pytest.mark.parametrize(("who", "status"), [("carol", 403), ("charlie", 404), ("admin_user", 403)])
def test_edit_by_role(pg: DataSource, client_for: Any, request: Any, who: str, status: int) -> None:
    client = client_for(request.getfixturevalue(who))
    url = f"/projects/churn/data/{pg.pk}/edit/"
    assert client.get(url).status_code == status
    assert (
        client.post(url, {"name": "Taken over", "location": "cloud", "mode": "batch"}).status_code
        == status
    )
    pg.refresh_from_db()
    assert pg.name == "Billing"


@pytest.fixture
def scene(upload_source: DataSource, alice: Any, ingest: Any) -> dict[str, Any]:
    snapshot = ingest(upload_source).snapshot
    rule = services.rule_create(
        actor=alice, source=upload_source, kind="range", column="age", params={"min": 18, "max": 90}
    )
    base = f"/projects/churn/data/{upload_source.pk}/"
    return {
        "source": (
            f"{base}delete/",
            lambda: DataSource.objects.filter(pk=upload_source.pk).exists(),
        ),
        "version": (
            f"{base}v{snapshot.version}/delete/",
            lambda: Snapshot.objects.filter(pk=snapshot.pk).exists(),
        ),
        "rule": (
            f"{base}rules/{rule.pk}/delete/",
            lambda: ValidationRule.objects.filter(pk=rule.pk).exists(),
        ),
    }


@pytest.mark.parametrize("what", ["source", "version", "rule"])
def test_delete_asks_first_on_a_page_that_works_without_javascript(
    scene: dict[str, Any], alice: Any, client_for: Any, what: str
) -> None:
    url, exists = scene[what]
    client = client_for(alice)
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert '<form method="post" class="card confirm-delete">' in html
    assert ">Cancel</a>" in html and ">Delete</button>" in html
    if what == "rule":
        assert "age between 18 and 90" in html
    assert exists()  # asking deletes nothing
    assert client.post(url).status_code == 302
    assert not exists()


@pytest.mark.parametrize("what", ["source", "version", "rule"])
def test_delete_links_carry_htmx_confirm_and_htmx_navigates_after(
    scene: dict[str, Any], upload_source: DataSource, alice: Any, client_for: Any, what: str
) -> None:
    url, exists = scene[what]
    client = client_for(alice)
    page_url = url.rsplit("/delete/", 1)[0].rsplit("rules/", 1)[0] + "/"
    page_url = page_url.replace("//", "/")
    html = client.get(page_url).content.decode()
    assert re.search(
        rf'href="{re.escape(url)}" hx-post="{re.escape(url)}" hx-confirm="[^"]+"', html
    )
    response = client.post(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response["HX-Redirect"]
    assert not exists()


@pytest.mark.parametrize(("who", "status"), [("carol", 403), ("charlie", 404)])
@pytest.mark.parametrize("what", ["source", "version", "rule"])
def test_confirmation_pages_by_role(
    scene: dict[str, Any], client_for: Any, request: Any, who: str, status: int, what: str
) -> None:
    url, exists = scene[what]
    assert client_for(request.getfixturevalue(who)).get(url).status_code == status
    assert exists()
