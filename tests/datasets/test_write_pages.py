"""Every data page that writes, as owner, member, read-only member, outsider and
platform admin: the first two change something, the others change nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from datasets import services
from datasets.models import (
    ConnectionStatus,
    DataSource,
    Ingestion,
    Snapshot,
    Split,
    ValidationRule,
)

ROLES = [
    ("alice", 302),  # lead
    ("bob", 302),  # data scientist
    ("carol", 403),  # analyst: reads only
    ("charlie", 404),  # not a member
    ("admin_user", 403),  # platform admin: reads, never writes project content
]


@dataclass
class Scene:
    upload: DataSource
    https: DataSource
    snapshot: Snapshot
    rule: ValidationRule


@dataclass
class Write:
    url: Callable[[Scene], str]
    data: dict[str, Any]
    changed: Callable[[Scene], bool]


def _base(source: DataSource) -> str:
    return f"/projects/churn/data/{source.pk}/"


WRITES: dict[str, Write] = {
    "pull": Write(
        url=lambda s: f"{_base(s.https)}pull/",
        data={},
        changed=lambda s: Ingestion.objects.filter(source=s.https).exists(),
    ),
    "test": Write(
        url=lambda s: f"{_base(s.https)}test/",
        data={},
        changed=lambda s: (
            DataSource.objects.get(pk=s.https.pk).test_status == ConnectionStatus.PENDING
        ),
    ),
    "schedule": Write(
        url=lambda s: f"{_base(s.https)}schedule/",
        data={"refresh_cron": "0 3 * * *"},
        changed=lambda s: DataSource.objects.get(pk=s.https.pk).refresh_cron == "0 3 * * *",
    ),
    "delete source": Write(
        url=lambda s: f"{_base(s.https)}delete/",
        data={},
        changed=lambda s: not DataSource.objects.filter(pk=s.https.pk).exists(),
    ),
    "add rule": Write(
        url=lambda s: f"{_base(s.upload)}rules/",
        data={"kind": "not_null", "column": "age", "value": ""},
        changed=lambda s: ValidationRule.objects.filter(source=s.upload).count() == 2,
    ),
    "delete rule": Write(
        url=lambda s: f"{_base(s.upload)}rules/{s.rule.pk}/delete/",
        data={},
        changed=lambda s: not ValidationRule.objects.filter(pk=s.rule.pk).exists(),
    ),
    "split": Write(
        url=lambda s: f"{_base(s.upload)}v{s.snapshot.version}/splits/",
        data={"test_fraction": "0.25", "seed": "7", "stratify_column": "", "group_column": ""},
        changed=lambda s: Split.objects.filter(parent=s.snapshot).exists(),
    ),
    "delete version": Write(
        url=lambda s: f"{_base(s.upload)}v{s.snapshot.version}/delete/",
        data={},
        changed=lambda s: not Snapshot.objects.filter(pk=s.snapshot.pk).exists(),
    ),
}


@pytest.fixture
def scene(project: Any, alice: Any, upload_source: DataSource, ingest: Any) -> Scene:
    ingestion = ingest(upload_source)
    https = services.source_create(
        actor=alice,
        project=project,
        name="Open data",
        kind="https",
        config={"url": "https://data.example.com/customers.csv"},
    )
    rule = services.rule_create(
        actor=alice, source=upload_source, kind="required", column="age", params={}
    )
    return Scene(upload=upload_source, https=https, snapshot=ingestion.snapshot, rule=rule)


@pytest.mark.parametrize("action", list(WRITES))
@pytest.mark.parametrize(("who", "status"), ROLES)
def test_data_page_writes_by_role(
    scene: Scene, client_for: Any, request: Any, who: str, status: int, action: str
) -> None:
    write = WRITES[action]
    assert not write.changed(scene)
    response = client_for(request.getfixturevalue(who)).post(write.url(scene), write.data)
    assert response.status_code == status, response.content.decode()[:500]
    assert write.changed(scene) == (status == 302)
