"""The training jobs API and pages: explicit fields, access (404 for
outsiders, 403 for read-only members), bad input as 400 with the reason,
the charter gate as 409, cancel and re-run, the log tail, and list queries
that do not grow with the number of jobs."""

from __future__ import annotations

from typing import Any

import pytest

from experiments import jobs
from experiments.job_models import Job, JobState
from tests.experiments import jobs_data
from tests.experiments.jobs_data import ready_split

S = JobState


@pytest.fixture
def small(db: Any) -> Any:
    return jobs_data.size()


@pytest.fixture
def split(project: Any, alice: Any, django_capture_on_commit_callbacks: Any) -> Any:
    return ready_split(project=project, actor=alice, callbacks=django_capture_on_commit_callbacks)


def url(project: Any, rest: str = "") -> str:
    return f"/api/projects/{project.slug}/jobs/{rest}"


def test_create_get_list_logs_cancel_rerun(
    api_for: Any, project: Any, bob: Any, split: Any, small: Any
) -> None:
    api = api_for(bob)
    created = api.post(url(project), {"split": split.pk, "size": small.name}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["state"] == "queued" and body["state_label"] == "Queued"
    assert body["template"] == "baseline" and body["size"] == small.name
    assert body["created_by"] == "bob" and len(body["run_id"]) == 32
    assert "lease_owner" not in body and "log_tail" not in body
    job_id = body["id"]
    assert api.get(url(project, f"{job_id}/")).json()["id"] == job_id
    listed = api.get(url(project)).json()
    assert [j["id"] for j in listed["results"]] == [job_id]
    logs = api.get(url(project, f"{job_id}/logs/")).json()
    assert logs == {"state": "queued", "finished": False, "log": ""}
    cancelled = api.post(url(project, f"{job_id}/cancel/"))
    assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"
    again = api.post(url(project, f"{job_id}/cancel/"))
    assert again.status_code == 409
    assert again.json() == {
        "detail": "The job is cancelled; it cannot be cancelled.",
        "state": "cancelled",
    }
    rerun = api.post(url(project, f"{job_id}/rerun/"), {"family": "linear"}, format="json")
    assert rerun.status_code == 201 and rerun.json()["rerun_of"] == job_id
    assert rerun.json()["parameters"]["family"] == "linear"


def test_bad_input_is_a_400_with_the_reason_and_writes_nothing(
    api_for: Any, project: Any, bob: Any, split: Any, small: Any
) -> None:
    api = api_for(bob)
    cases = [
        ({"split": split.pk, "size": "nope"}, {"size": ["No offered size named 'nope'."]}),
        (
            {"split": 999999, "size": small.name},
            {"split": ["No ready split of this project with that id."]},
        ),
        ({"split": split.pk, "size": small.name, "template": "x"}, None),
        ({"split": split.pk, "size": small.name, "wall_clock_minutes": 0}, None),
        ({"size": small.name}, None),
    ]
    for data, expected in cases:
        answer = api.post(url(project), data, format="json")
        assert answer.status_code == 400, (data, answer.content)
        if expected is not None:
            assert answer.json() == expected
    assert not Job.objects.exists()


def test_outsiders_get_404_and_read_only_members_403(
    api_for: Any,
    project: Any,
    bob: Any,
    carol: Any,
    charlie: Any,
    split: Any,
    small: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        job = jobs.job_create(actor=bob, project=project, split=split, size=small)
    outsider, reader = api_for(charlie), api_for(carol)
    for path in ("", f"{job.pk}/", f"{job.pk}/logs/"):
        assert outsider.get(url(project, path)).status_code == 404
        assert reader.get(url(project, path)).status_code == 200
    assert outsider.post(url(project, f"{job.pk}/cancel/")).status_code == 404
    assert reader.post(url(project, f"{job.pk}/cancel/")).status_code == 403
    assert (
        reader.post(
            url(project), {"split": split.pk, "size": small.name}, format="json"
        ).status_code
        == 403
    )
    assert Job.objects.get().state == S.QUEUED


def test_an_unsigned_charter_is_a_409_with_where_to_sign(
    api_for: Any,
    project_unsigned: Any,
    alice: Any,
    bob: Any,
    small: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    split = ready_split(
        project=project_unsigned, actor=alice, callbacks=django_capture_on_commit_callbacks
    )
    answer = api_for(bob).post(
        url(project_unsigned), {"split": split.pk, "size": small.name}, format="json"
    )
    assert answer.status_code == 409
    assert answer.json()["code"] == "charter_not_signed_off"
    assert answer.json()["charter_url"] == f"/projects/{project_unsigned.slug}/charter/"


def test_the_list_and_the_page_take_a_fixed_number_of_queries(
    client_for: Any,
    api_for: Any,
    project: Any,
    bob: Any,
    split: Any,
    small: Any,
    django_assert_max_num_queries: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    api, browser = api_for(bob), client_for(bob)
    counts = []
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=False):
            for _ in range(3):
                jobs.job_create(actor=bob, project=project, split=split, size=small)
        with django_assert_max_num_queries(12) as api_queries:
            assert api.get(url(project)).status_code == 200
        with django_assert_max_num_queries(20) as page_queries:
            assert browser.get(f"/projects/{project.slug}/jobs/").status_code == 200
        counts.append((len(api_queries), len(page_queries)))
    assert counts[0] == counts[1]


def test_pages_new_job_detail_with_live_partial_and_cancel(
    client_for: Any,
    project: Any,
    bob: Any,
    carol: Any,
    charlie: Any,
    split: Any,
    small: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    browser = client_for(bob)
    form = browser.get(f"/projects/{project.slug}/jobs/new/")
    assert form.status_code == 200 and b"Baseline from the charter" in form.content
    bad = browser.post(
        f"/projects/{project.slug}/jobs/new/",
        {"split": split.pk, "size": small.pk, "family": "gbm", "wall_clock_minutes": 0},
    )
    assert bad.status_code == 200 and b"greater than or equal to 1" in bad.content
    with django_capture_on_commit_callbacks(execute=False):
        made = browser.post(
            f"/projects/{project.slug}/jobs/new/",
            {"split": split.pk, "size": small.pk, "family": "gbm", "wall_clock_minutes": 30},
        )
    job = Job.objects.get()
    assert (
        made.status_code == 302 and made["Location"] == f"/projects/{project.slug}/jobs/{job.pk}/"
    )
    page = browser.get(made["Location"])
    assert b"Queued" in page.content and b"No output yet." in page.content
    live = browser.get(made["Location"], HTTP_HX_REQUEST="true")
    assert b'id="job-live"' in live.content and b"<h1>" not in live.content
    assert client_for(charlie).get(made["Location"]).status_code == 404
    assert client_for(carol).post(f"{made['Location']}cancel/").status_code == 403
    browser = client_for(bob)
    done = browser.post(f"{made['Location']}cancel/")
    assert done.status_code == 302
    assert Job.objects.get().state == S.CANCELLED
