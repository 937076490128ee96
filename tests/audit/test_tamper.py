"""Changing any field covered by an event's hash breaks the chain at that event."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from django.db import connection

from audit.models import AuditEvent
from audit.services import audit_chain_verify, audit_record
from tests.factories import ProjectFactory, UserFactory

TABLE = AuditEvent._meta.db_table

# Every column the hash covers (AuditEvent.canonical, plus the link to the previous
# event), with a different value of the right type for it.
TAMPERED: dict[str, Any] = {
    "created_at": datetime.datetime(2001, 1, 1, tzinfo=datetime.UTC),
    "actor_username": "mallory",
    "action": "test.forged",
    "object_type": "projects.forged",
    "object_id": "999",
    "payload": json.dumps({"i": 99}),
    "ip_address": "198.51.100.7",
    "previous_hash": "f" * 64,
}


def _tamper(sql: str, params: list[Any]) -> None:
    """Change a row as a superuser would: with triggers switched off."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(sql, params)
        finally:
            cursor.execute("SET session_replication_role = DEFAULT")


@pytest.fixture
def events(db: Any, alice: Any) -> list[AuditEvent]:
    project: Any = ProjectFactory(slug="audited", created_by=alice)
    return [
        audit_record(
            action=f"test.{i}",
            actor=alice,
            project=project,
            object_type="projects.project",
            object_id=project.pk,
            payload={"i": i},
            ip_address="192.0.2.1",
        )
        for i in range(4)
    ]


@pytest.mark.parametrize("column", sorted(TAMPERED))
def test_changing_a_hashed_column_is_detected(events: list[AuditEvent], column: str) -> None:
    assert audit_chain_verify() is None
    target = events[1]
    _tamper(f"UPDATE {TABLE} SET {column} = %s WHERE id = %s", [TAMPERED[column], target.pk])  # noqa: S608
    assert audit_chain_verify() == target.sequence


@pytest.mark.parametrize("column", ["actor_id", "project_id"])
def test_pointing_an_event_at_someone_else_is_detected(
    events: list[AuditEvent], column: str
) -> None:
    other: Any = (
        UserFactory(username="mallory") if column == "actor_id" else ProjectFactory(slug="other")
    )
    target = events[2]
    _tamper(f"UPDATE {TABLE} SET {column} = %s WHERE id = %s", [other.pk, target.pk])  # noqa: S608
    assert audit_chain_verify() == target.sequence


@pytest.mark.parametrize("field", [*sorted(TAMPERED), "actor_id", "project_id", "sequence"])
def test_every_field_is_in_the_hash(events: list[AuditEvent], field: str) -> None:
    # The sequence is also checked for gaps by the verifier, which would hide a
    # hash that left it out; so compare hashes directly too.
    event = AuditEvent.objects.get(pk=events[1].pk)
    assert event.compute_hash() == event.hash
    value = {"payload": {"i": 99}, "actor_id": 0, "project_id": 0, "sequence": 1000}.get(
        field, TAMPERED.get(field)
    )
    setattr(event, field, value)
    assert event.compute_hash() != event.hash
