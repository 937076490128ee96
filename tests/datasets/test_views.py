"""Data pages as owner, member, read-only member and outsider."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from datasets import services
from datasets.models import DataSource, Ingestion, Split
from tests.datasets.conftest import CSV

PASSWORD = "Never-Shown-In-Pages-77"  # noqa: S105


def pages(source: Any) -> list[str]:
    base = f"/projects/churn/data/{source.pk}/"
    return ["/data/", "/projects/churn/data/", "/projects/churn/data/lineage/", base, f"{base}v1/"]


@pytest.mark.parametrize(
    ("who", "status", "can_write"),
    [
        ("alice", 200, True),
        ("bob", 200, True),
        ("carol", 200, False),
        ("charlie", 404, False),
        ("admin_user", 200, False),
    ],
)
def test_pages_by_role(
    upload_source: Any,
    ingest: Any,
    client_for: Any,
    request: Any,
    who: str,
    status: int,
    can_write: bool,
) -> None:
    ingest(upload_source)
    client = client_for(request.getfixturevalue(who))
    for url in pages(upload_source)[1:]:
        assert client.get(url).status_code == status, url
    if status == 200:
        detail = client.get(f"/projects/churn/data/{upload_source.pk}/").content
        assert (b"Upload</button>" in detail) == can_write
        assert (b"Delete this source" in detail) == can_write
    assert client.get("/data/").status_code == 200
    new = client.get("/projects/churn/data/new/")
    assert new.status_code == (200 if can_write else (404 if status == 404 else 403))


@pytest.mark.parametrize(
    ("who", "status"), [("bob", 302), ("carol", 403), ("charlie", 404), ("admin_user", 403)]
)
def test_writes_by_role(
    upload_source: Any,
    client_for: Any,
    request: Any,
    who: str,
    status: int,
    eager: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    client = client_for(request.getfixturevalue(who))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/projects/churn/data/{upload_source.pk}/upload/",
            {"file": SimpleUploadedFile("c.csv", CSV, content_type="text/csv")},
        )
    assert response.status_code == status
    assert Ingestion.objects.exists() == (status == 302)
    response = client.post(
        "/projects/churn/data/new/",
        {"name": f"x-{who}", "kind": "upload", "location": "cloud", "mode": "batch"},
    )
    assert response.status_code == status
    assert DataSource.objects.filter(name=f"x-{who}").exists() == (status == 302)


def test_register_a_postgres_source_in_the_page_keeps_the_password_secret(
    project: Any, client_for: Any, alice: Any, caplog: Any
) -> None:
    client = client_for(alice)
    response = client.post(
        "/projects/churn/data/new/",
        {
            "name": "CRM",
            "kind": "postgres",
            "location": "on_prem",
            "mode": "batch",
            "host": "db.example.com",
            "port": "5432",
            "database": "crm",
            "user": "reader",
            "query": "SELECT * FROM customers",
            "password": PASSWORD,
            "refresh_cron": "0 2 * * *",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    source = DataSource.objects.get(name="CRM")
    page = client.get(response["Location"]).content.decode()
    assert "password" in page and "set" in page
    assert "0 2 * * *" in page and "next run" in page
    for url in pages(source)[:4]:
        assert PASSWORD not in client.get(url).content.decode()
    # A form redisplayed with an error does not echo the password either.
    bad = client.post(
        "/projects/churn/data/new/",
        {
            "name": "CRM",
            "kind": "postgres",
            "location": "on_prem",
            "mode": "batch",
            "password": PASSWORD,
        },
    )
    assert bad.status_code == 200
    assert PASSWORD not in bad.content.decode()
    assert PASSWORD not in caplog.text


def test_upload_redirects_to_a_progress_page_that_polls_until_done(
    upload_source: Any, client_for: Any, alice: Any
) -> None:
    client = client_for(alice)
    response = client.post(
        f"/projects/churn/data/{upload_source.pk}/upload/",
        {"file": SimpleUploadedFile("c.csv", CSV, content_type="text/csv")},
    )
    assert response.status_code == 302
    ingestion = Ingestion.objects.get()
    assert (
        response["Location"]
        == f"/projects/churn/data/{upload_source.pk}/ingestions/{ingestion.pk}/"
    )
    # Not run yet (no worker here): the partial keeps polling.
    partial = client.get(response["Location"], HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 1s"' in partial
    assert "<html" not in partial
    services.ingestion_execute(ingestion_id=ingestion.pk)
    partial = client.get(response["Location"], HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in partial
    assert 'value="100"' in partial and "version 1" in partial
    assert "200 rows processed" in partial


def test_profile_charts_are_embedded_and_plotly_is_served_locally(
    upload_source: Any, ingest: Any, client_for: Any, alice: Any
) -> None:
    ingest(upload_source)
    client = client_for(alice)
    page = client.get(f"/projects/churn/data/{upload_source.pk}/v1/").content.decode()
    assert "/static/vendor/plotly/plotly.min.js" in page
    assert "cdn" not in page.lower()
    assert page.count('data-figure="figure-column-') == 5
    assert 'id="figure-correlation-data"' in page
    # htmx asks for the profile fragment only.
    fragment = client.get(f"/projects/churn/data/{upload_source.pk}/v1/", HTTP_HX_REQUEST="true")
    assert b"<html" not in fragment.content and b"figure-column-0" in fragment.content


def test_plotly_js_is_found_by_the_static_finders() -> None:
    from django.contrib.staticfiles import finders

    path = finders.find("vendor/plotly/plotly.min.js")
    assert path and str(path).endswith("plotly/package_data/plotly.min.js")


def test_source_list_and_lineage_query_counts_do_not_grow(
    project: Any,
    alice: Any,
    client_for: Any,
    ingest: Any,
    django_assert_num_queries: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    client = client_for(alice)

    def add_source(i: int) -> None:
        source = services.source_create(actor=alice, project=project, name=f"S{i}", kind="upload")
        snapshot = ingest(source, data=CSV + f"{1000 + i},1,basic,1.0,no\n".encode()).snapshot
        with django_capture_on_commit_callbacks(execute=True):
            services.split_create(actor=alice, snapshot=snapshot, test_fraction=0.2, seed=i)

    add_source(0)
    counts = {}
    for url in ("/projects/churn/data/", "/projects/churn/data/lineage/", "/data/"):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as context:
            assert client.get(url).status_code == 200
        counts[url] = len(context)
    for i in range(1, 5):
        add_source(i)
    assert Split.objects.count() == 5
    for url, n in counts.items():
        with django_assert_num_queries(n):
            assert client.get(url).status_code == 200


def test_source_detail_query_count_does_not_grow(
    upload_source: Any, ingest: Any, client_for: Any, alice: Any, django_assert_num_queries: Any
) -> None:
    client = client_for(alice)
    ingest(upload_source)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as context:
        client.get(f"/projects/churn/data/{upload_source.pk}/")
    for i in range(4):
        ingest(upload_source, data=CSV + f"{2000 + i},1,basic,1.0,no\n".encode())
    with django_assert_num_queries(len(context)):
        response = client.get(f"/projects/churn/data/{upload_source.pk}/")
    assert response.content.count(b">v") >= 5
