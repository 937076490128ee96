"""Batch scoring's pages: who sees and does what, the form's reasons, the
detail page's polling while it runs, and the list's query count."""

from __future__ import annotations

from typing import Any

import pytest

from deployments import batch
from deployments.batch_models import BatchScoring, BatchState
from tests.deployments import batch_data

pytestmark = pytest.mark.django_db

BASE = "/projects/churn/batch-scorings/"


@pytest.fixture
def version(project: Any, alice: Any, bob: Any, django_capture_on_commit_callbacks: Any) -> Any:
    return batch_data.trained_version(project, alice, bob, django_capture_on_commit_callbacks)


@pytest.fixture
def scoring(project: Any, version: Any, bob: Any) -> BatchScoring:
    batch_data.approved_batch(project, version, bob)
    return batch.batch_scoring_create(actor=bob, version=version, output_table="churn_scores")


def test_pages_for_owner_member_read_only_member_and_outsider(
    scoring: BatchScoring, alice: Any, bob: Any, carol: Any, charlie: Any, client_for: Any
) -> None:
    one = f"{BASE}{scoring.pk}/"
    for user in (alice, bob, carol):
        assert client_for(user).get(BASE).status_code == 200
        page = client_for(user).get(one)
        assert page.status_code == 200
        assert "churn_scores" in page.content.decode()
    for url in (BASE, one, f"{BASE}new/"):
        assert client_for(charlie).get(url).status_code == 404
    assert client_for(carol).get(f"{BASE}new/").status_code == 403
    assert client_for(carol).post(f"{one}cancel/").status_code == 403
    assert client_for(charlie).post(f"{one}cancel/").status_code == 404
    listed = client_for(carol).get(BASE).content.decode()
    assert 'id="new-batch"' not in listed and f'href="{one}"' in listed
    assert 'id="new-batch"' in client_for(bob).get(BASE).content.decode()
    endpoints = client_for(carol).get("/projects/churn/endpoints/").content.decode()
    assert f'href="{BASE}"' in endpoints
    request = scoring.deployment_request
    assert request is not None
    approved = client_for(carol).get(f"/projects/churn/deployments/{request.pk}/")
    assert 'id="batch-start"' in approved.content.decode()


def test_the_detail_page_polls_while_it_runs_and_stops_when_it_ended(
    scoring: BatchScoring, alice: Any, client_for: Any
) -> None:
    one = f"{BASE}{scoring.pk}/"
    page = client_for(alice).get(one).content.decode()
    assert f'hx-get="{one}"' in page and 'id="cancel-batch"' in page
    fragment = client_for(alice).get(one, headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<div id="batch-live"') and "<html" not in fragment

    cancelled = client_for(alice).post(f"{one}cancel/", follow=True).content.decode()
    assert "The scoring is cancelled." in cancelled and "Cancelled by alice." in cancelled
    assert 'hx-get="' + one not in cancelled and 'id="rerun-batch"' in cancelled
    BatchScoring.objects.filter(pk=scoring.pk).update(
        state=BatchState.FAILED, error="The reporting database refused the rows: disk full"
    )
    failed = client_for(alice).get(one).content.decode()
    assert "disk full" in failed


def test_the_form_starts_a_scoring_and_says_why_it_cannot(
    project: Any, version: Any, bob: Any, client_for: Any
) -> None:
    empty = client_for(bob).get(f"{BASE}new/").content.decode()
    assert 'id="no-approved"' in empty
    batch_data.approved_batch(project, version, bob)
    bad = client_for(bob).post(
        f"{BASE}new/", {"version": version.pk, "output_table": "Bad-Name", "schedule": "none"}
    )
    assert bad.status_code == 200 and "lower-case letters" in bad.content.decode()
    assert not BatchScoring.objects.exists()
    made = client_for(bob).post(
        f"{BASE}new/", {"version": version.pk, "output_table": "scores", "schedule": "daily"}
    )
    scoring = BatchScoring.objects.get()
    assert made.status_code == 302 and made["Location"] == f"{BASE}{scoring.pk}/"
    assert scoring.schedule == "daily" and scoring.requested_by == bob


def test_the_list_asks_as_many_queries_for_many_scorings_as_for_one(
    project: Any, version: Any, bob: Any, client_for: Any, django_assert_num_queries: Any
) -> None:
    batch_data.approved_batch(project, version, bob)
    batch.batch_scoring_create(actor=bob, version=version, output_table="one")
    client = client_for(bob)
    client.get(BASE)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        client.get(BASE)
    for table in ("two", "three", "four"):
        batch.batch_scoring_create(actor=bob, version=version, output_table=table)
    with django_assert_num_queries(len(one.captured_queries)):
        page = client.get(BASE)
    assert page.content.decode().count("<td><code>") == 4
