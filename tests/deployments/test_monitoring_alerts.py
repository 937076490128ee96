"""Drift alerts as notifications, with the real beat task on a real worker:
the lead and the ML engineers hear once when a deployment's input starts to
drift, not at every hourly check of the same episode."""

from __future__ import annotations

from typing import Any

from accounts.models import Notification
from audit.models import AuditEvent
from deployments.drift_models import DriftReport
from deployments.drift_tasks import drift_check_all
from tests.deployments.drift_data import log_lines, sample_log
from tests.factories import MembershipFactory, UserFactory


def test_an_alert_once_per_drift_episode(
    celery_worker: Any, deployed: Any, project: Any, alice: Any, bob: Any, carol: Any
) -> None:
    erin = UserFactory(username="erin")
    MembershipFactory(project=project, user=erin, role="ml_engineer")
    blue = deployed[("churn", "blue")]
    log = sample_log(blue.endpoint, "blue")

    def check(rows: int, seed: int, *, shift: bool) -> DriftReport:
        log.write_bytes(log_lines(rows, seed, shift=shift))
        drift_check_all.delay().get(timeout=120)
        return DriftReport.objects.filter(deployment=blue).order_by("-pk").first()  # type: ignore[return-value]

    def alerts() -> list[str]:
        return sorted(
            Notification.objects.filter(text__contains="drift").values_list(
                "user__username", flat=True
            )
        )

    assert check(400, 1, shift=False).dataset_drift is False
    assert alerts() == []

    report = check(400, 2, shift=True)
    assert report.dataset_drift is True
    assert alerts() == ["alice", "erin"]  # the lead and the ML engineer only
    note = Notification.objects.get(user=alice)
    assert note.url == "/projects/churn/endpoints/churn/drift/"
    assert note.text.startswith("Churn: the inputs of churn (blue, churn version 1) drift")
    event = AuditEvent.objects.get(action="endpoint.drift_alerted")
    assert event.actor is None and event.payload["report"] == report.pk
    assert event.payload["drifted_features"] == ["tenure", "charges", "plan"]

    # The same episode: still drifting, then a window too small to judge.
    assert check(400, 3, shift=True).dataset_drift is True
    assert check(20, 4, shift=True).judged_features == 0
    assert check(400, 5, shift=True).dataset_drift is True
    assert alerts() == ["alice", "erin"]

    # Back to normal, then drifting again: a new episode, a new alert.
    assert check(400, 6, shift=False).dataset_drift is False
    assert check(400, 7, shift=True).dataset_drift is True
    assert alerts() == ["alice", "alice", "erin", "erin"]
    assert AuditEvent.objects.filter(action="endpoint.drift_alerted").count() == 2
    assert not Notification.objects.filter(user__in=[bob, carol]).exists()
