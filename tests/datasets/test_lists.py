"""/data/ lists every project of the user with a call to action; the sources
and versions lists paginate, search and sort, in a number of queries that does
not grow with their rows."""

from __future__ import annotations

import re
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from datasets import services
from datasets.models import DataSource, Snapshot
from datasets.views import PAGE_SIZE
from tests.factories import MembershipFactory, ProjectFactory


def names(html: str) -> list[str]:
    return re.findall(r'<td><a href="/projects/churn/data/\d+/">([^<]+)</a>', html)


def test_data_home_lists_every_project_with_counts_and_a_call_to_action(
    project: Any, alice: Any, carol: Any, charlie: Any, client_for: Any, ingest: Any
) -> None:
    empty = ProjectFactory(name="Fraud", slug="fraud", created_by=alice)
    MembershipFactory(project=empty, user=alice, role="lead")
    MembershipFactory(project=empty, user=carol, role="analyst")
    ProjectFactory(name="Secret", slug="secret", created_by=charlie)
    source = services.source_create(actor=alice, project=project, name="Customers", kind="upload")
    ingest(source)

    page = client_for(alice).get("/data/").content.decode()
    assert "Churn" in page and "Fraud" in page and "Secret" not in page
    churn_row = page[page.index(">Churn<") :].split("</tr>")[0]
    assert re.findall(r"<td>(\d+)", churn_row) == ["1", "1"]  # sources, versions
    fraud_row = page[page.index(">Fraud<") :].split("</tr>")[0]
    assert re.findall(r"<td>(\d+)", fraud_row) == ["0", "0"]
    assert 'href="/projects/fraud/data/new/">Register your first data source' in fraud_row

    # A read-only member sees the project, without a call to write.
    page = client_for(carol).get("/data/").content.decode()
    fraud_row = page[page.index(">Fraud<") :].split("</tr>")[0]
    assert "Register your first data source" not in fraud_row
    assert "No data sources yet" in fraud_row


def test_data_home_query_count_does_not_grow_with_projects(
    alice: Any, client_for: Any, django_assert_max_num_queries: Any
) -> None:
    client = client_for(alice)

    def add(i: int) -> None:
        p: Any = ProjectFactory(name=f"P{i}", slug=f"p{i}", created_by=alice)
        MembershipFactory(project=p, user=alice, role="lead")
        services.source_create(actor=alice, project=p, name="S", kind="upload")

    add(0)
    with CaptureQueriesContext(connection) as context:
        assert client.get("/data/").status_code == 200
    for i in range(1, 6):
        add(i)
    with django_assert_max_num_queries(len(context)):
        page = client.get("/data/").content.decode()
    assert page.count('href="/projects/p') >= 6


def make_sources(project: Any, alice: Any, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        services.source_create(
            actor=alice,
            project=project,
            name=f"Source {i:02d}",
            kind="upload" if i % 2 else "https",
            description="weekly billing" if i % 5 == 0 else "",
            config={} if i % 2 else {"url": f"https://data.example.com/{i}.csv"},
        )


def test_sources_list_paginates_searches_and_sorts(
    project: Any, alice: Any, client_for: Any
) -> None:
    make_sources(project, alice, PAGE_SIZE + 5)
    client = client_for(alice)
    first = client.get("/projects/churn/data/").content.decode()
    assert names(first) == [f"Source {i:02d}" for i in range(PAGE_SIZE)]
    assert f"Page 1 of 2 ({PAGE_SIZE + 5} in all)" in first
    second = client.get("/projects/churn/data/?page=2").content.decode()
    assert names(second) == [f"Source {i:02d}" for i in range(PAGE_SIZE, PAGE_SIZE + 5)]

    found = client.get("/projects/churn/data/?q=billing").content.decode()
    assert names(found) == ["Source 00", "Source 05", "Source 10", "Source 15", "Source 20"]
    assert names(client.get("/projects/churn/data/?q=https").content.decode())[:2] == [
        "Source 00",
        "Source 02",
    ]
    newest = client.get("/projects/churn/data/?sort=newest").content.decode()
    assert names(newest)[0] == f"Source {PAGE_SIZE + 4:02d}"
    # The pager keeps the search and the sort.
    sorted_pages = client.get("/projects/churn/data/?sort=newest&page=2").content.decode()
    assert names(sorted_pages) == [f"Source {i:02d}" for i in range(4, -1, -1)]
    assert "No source matches" in client.get("/projects/churn/data/?q=zzz").content.decode()
    # Nonsense parameters fall back, never a 500.
    odd = client.get("/projects/churn/data/?sort=drop&page=99")
    assert odd.status_code == 200


def test_sources_list_query_count_does_not_grow_with_rows(
    project: Any, alice: Any, client_for: Any, django_assert_max_num_queries: Any
) -> None:
    client = client_for(alice)
    make_sources(project, alice, 2)
    with CaptureQueriesContext(connection) as context:
        assert client.get("/projects/churn/data/?sort=versions").status_code == 200
    make_sources(project, alice, PAGE_SIZE + 10, start=2)
    assert DataSource.objects.count() == PAGE_SIZE + 12
    with django_assert_max_num_queries(len(context)):
        page = client.get("/projects/churn/data/?sort=versions").content.decode()
    assert len(names(page)) == PAGE_SIZE


def add_versions(source: DataSource, alice: Any, n: int, start: int = 1) -> None:
    Snapshot.objects.bulk_create(
        Snapshot(
            source=source,
            version=v,
            sha256=f"{v:064x}",
            size=100 * v,
            data_format="csv",
            rows=v * 10,
            columns=[],
            storage_key=f"objects/{v:064x}",
            original_name=f"export-{v}.csv",
            created_by=alice,
        )
        for v in range(start, start + n)
    )


def versions(html: str) -> list[int]:
    return [int(v) for v in re.findall(r'/v(\d+)/">v\d+</a>', html)]


def test_versions_list_paginates_searches_and_sorts(
    upload_source: DataSource, alice: Any, client_for: Any, django_assert_max_num_queries: Any
) -> None:
    client = client_for(alice)
    url = f"/projects/churn/data/{upload_source.pk}/"
    add_versions(upload_source, alice, 2)
    with CaptureQueriesContext(connection) as context:
        assert client.get(url).status_code == 200
    add_versions(upload_source, alice, PAGE_SIZE + 3, start=3)
    with django_assert_max_num_queries(len(context)):
        page = client.get(url).content.decode()
    total = PAGE_SIZE + 5
    assert versions(page) == list(range(total, total - PAGE_SIZE, -1))
    assert versions(client.get(f"{url}?vpage=2").content.decode()) == [5, 4, 3, 2, 1]
    assert versions(client.get(f"{url}?vsort=oldest").content.decode())[:3] == [1, 2, 3]
    assert versions(client.get(f"{url}?vq=export-7.csv").content.decode()) == [7]
    assert versions(client.get(f"{url}?vq=v12").content.decode()) == [12]
    assert "No version matches" in client.get(f"{url}?vq=nothing").content.decode()


def test_api_lists_search_and_sort_too(
    project: Any, alice: Any, upload_source: DataSource, api_for: Any
) -> None:
    make_sources(project, alice, 6)
    add_versions(upload_source, alice, 3)
    api = api_for(alice)
    found = api.get("/api/projects/churn/sources/", {"q": "billing"}).json()
    assert [s["name"] for s in found["results"]] == ["Source 00", "Source 05"]
    newest = api.get("/api/projects/churn/sources/", {"sort": "newest"}).json()
    assert newest["results"][0]["name"] == "Source 05"
    assert api.get("/api/projects/churn/sources/", {"sort": "nonsense"}).status_code == 200
    url = f"/api/projects/churn/sources/{upload_source.pk}/snapshots/"
    oldest = api.get(url, {"sort": "oldest"}).json()
    assert [v["version"] for v in oldest["results"]] == [1, 2, 3]
    assert [v["version"] for v in api.get(url, {"q": "v2"}).json()["results"]] == [2]
