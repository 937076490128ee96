"""The job's page shows the run's metrics as they arrive: the htmx partial it
polls every JOBS_POLL_SECONDS carries the latest value of each metric next
to the log tail, in a number of queries that does not grow with the metrics;
outsiders get 404 for it too."""

from __future__ import annotations

from typing import Any

import pytest

from experiments import jobs
from experiments.services import MetricPoint, now_ms, run_log_batch
from tests.experiments import jobs_data
from tests.experiments.jobs_data import ready_split


@pytest.fixture
def job(project: Any, alice: Any, bob: Any, django_capture_on_commit_callbacks: Any) -> Any:
    split = ready_split(project=project, actor=alice, callbacks=django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):
        return jobs.job_create(actor=bob, project=project, split=split, size=jobs_data.size())


def log(bob: Any, job: Any, names: list[str], value: float, step: int) -> None:
    points = [MetricPoint(name, value, now_ms(), step) for name in names]
    run_log_batch(actor=bob, run=job.run, metrics=points, params={}, tags={})


def partial(client: Any, project: Any, job: Any) -> str:
    answer = client.get(f"/projects/{project.slug}/jobs/{job.pk}/", HTTP_HX_REQUEST="true")
    assert answer.status_code == 200
    return str(answer.content.decode())


def test_metrics_appear_in_the_polled_partial_as_they_arrive(
    client_for: Any,
    project: Any,
    bob: Any,
    carol: Any,
    charlie: Any,
    job: Any,
    settings: Any,
    django_assert_max_num_queries: Any,
) -> None:
    settings.JOBS_POLL_SECONDS = 3
    client = client_for(bob)
    first = partial(client, project, job)
    assert 'hx-trigger="every 3s"' in first and "<html" not in first
    assert "No metric logged yet" in first
    log(bob, job, ["loss"], 0.9, 0)
    log(bob, job, ["loss"], 0.25, 1)
    second = partial(client, project, job)
    assert 'data-metric="loss">0.25<' in second
    with django_assert_max_num_queries(12) as few:
        partial(client, project, job)
    log(bob, job, [f"m{i:02d}" for i in range(30)], 0.5, 3)
    with django_assert_max_num_queries(len(few.captured_queries)):
        many = partial(client, project, job)
    assert many.count("data-metric=") == 31
    full = client.get(f"/projects/{project.slug}/jobs/{job.pk}/").content.decode()
    assert "<html" in full and 'data-metric="m29"' in full
    # Read-only members see it; outsiders do not know it exists.
    assert 'data-metric="loss"' in partial(client_for(carol), project, job)
    outsider = client_for(charlie).get(
        f"/projects/{project.slug}/jobs/{job.pk}/", HTTP_HX_REQUEST="true"
    )
    assert outsider.status_code == 404
