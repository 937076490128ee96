"""Registering data before the charter's sign-off: allowed and marked
exploratory by default; refused with the reason and a link to the charter
when the platform makes data registration wait for the sign-off."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditEvent
from charter.services import charter_draft_save, charter_submit
from datasets import services
from datasets.models import DataSource
from governance.services import approval_decide
from tests.charter.test_charter import GOOD


@pytest.fixture
def project(project_unsigned: Any) -> Any:
    """These tests write the charter themselves: the project starts without one."""
    return project_unsigned


FORM = {"name": "Customers", "kind": "upload", "location": "cloud", "mode": "batch"}
API_BODY = {"name": "Customers", "kind": "upload"}


def sign_off(project: Any, alice: Any, dave: Any) -> None:
    charter_draft_save(actor=alice, project=project, values=GOOD)
    approval = charter_submit(actor=alice, project=project)
    approval_decide(actor=dave, approval_id=approval.pk, approve=True)


def test_data_registered_before_sign_off_is_exploratory_and_stays_so(
    project: Any, alice: Any, dave: Any, client_for: Any, upload_source: DataSource, ingest: Any
) -> None:
    assert upload_source.exploratory is True
    event = AuditEvent.objects.filter(action="datasource.created").get()
    assert event.payload["exploratory"] is True
    ingest(upload_source)
    client = client_for(alice)
    for url in (
        "/projects/churn/data/",
        f"/projects/churn/data/{upload_source.pk}/",
        f"/projects/churn/data/{upload_source.pk}/v1/",
    ):
        assert ">Exploratory</span>" in client.get(url).content.decode(), url
    assert "1 exploratory" in client.get("/data/").content.decode()

    sign_off(project, alice, dave)
    later = services.source_create(actor=alice, project=project, name="Later", kind="upload")
    assert later.exploratory is False
    upload_source.refresh_from_db()
    assert upload_source.exploratory is True  # fixed when it was registered
    page = client.get(f"/projects/churn/data/{later.pk}/").content.decode()
    assert "Exploratory" not in page


def test_api_says_whether_a_source_is_exploratory(
    project: Any, alice: Any, dave: Any, api_for: Any
) -> None:
    api = api_for(alice)
    response = api.post("/api/projects/churn/sources/", API_BODY, format="json")
    assert response.status_code == 201
    assert response.json()["exploratory"] is True
    first = response.json()["id"]
    sign_off(project, alice, dave)
    response = api.post(
        "/api/projects/churn/sources/", {**API_BODY, "name": "Signed"}, format="json"
    )
    assert response.json()["exploratory"] is False
    # Read-only: a client cannot declare its source agreed on.
    response = api.patch(
        f"/api/projects/churn/sources/{first}/", {"exploratory": False}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["exploratory"] is True
    assert DataSource.objects.get(pk=first).exploratory is True


@pytest.fixture
def requires_signoff(settings: Any) -> None:
    settings.STAGEGATE_DATA_REQUIRES_SIGNOFF = True


@pytest.mark.usefixtures("requires_signoff")
def test_api_refuses_registration_until_sign_off_with_a_reason(
    project: Any, alice: Any, dave: Any, api_for: Any
) -> None:
    api = api_for(alice)
    response = api.post("/api/projects/churn/sources/", API_BODY, format="json")
    assert response.status_code == 409
    body = response.json()
    assert "needs a signed-off charter" in body["detail"]
    assert body["detail"].startswith("Registering data")
    assert body["charter_url"] == "/projects/churn/charter/"
    assert not DataSource.objects.exists()
    assert not AuditEvent.objects.filter(action="datasource.created").exists()

    sign_off(project, alice, dave)
    response = api.post("/api/projects/churn/sources/", API_BODY, format="json")
    assert response.status_code == 201
    assert response.json()["exploratory"] is False


@pytest.mark.usefixtures("requires_signoff")
def test_page_refuses_registration_until_sign_off_and_links_the_charter(
    project: Any, alice: Any, dave: Any, client_for: Any
) -> None:
    client = client_for(alice)
    page = client.get("/projects/churn/data/new/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Registering data needs a signed-off charter" in text
    assert 'href="/projects/churn/charter/"' in text
    assert 'class="card source-form"' not in text
    listing = client.get("/projects/churn/data/").content.decode()
    assert "waits for the charter's sign-off" in listing
    assert "Register a source" not in listing

    response = client.post("/projects/churn/data/new/", FORM)
    assert response.status_code == 409
    assert "Registering data needs a signed-off charter" in response.content.decode()
    assert 'href="/projects/churn/charter/"' in response.content.decode()
    assert not DataSource.objects.exists()

    sign_off(project, alice, dave)
    response = client.post("/projects/churn/data/new/", FORM)
    assert response.status_code == 302
    assert DataSource.objects.get().exploratory is False


def test_without_the_setting_the_page_registers_and_says_exploratory(
    project: Any, alice: Any, client_for: Any
) -> None:
    client = client_for(alice)
    assert (
        "data registered now is exploratory"
        in client.get("/projects/churn/data/new/").content.decode()
    )
    response = client.post("/projects/churn/data/new/", FORM, follow=True)
    assert "It is exploratory: the charter is not signed off yet." in response.content.decode()
    assert DataSource.objects.get().exploratory is True
