from __future__ import annotations

import csv
import io
import json
import threading
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from audit.exports import neutralise
from audit.models import AuditEvent
from audit.services import audit_chain_verify, audit_record


def test_chain_links_each_event_to_the_previous(db: Any, alice: Any) -> None:
    first = audit_record(action="test.first", actor=alice, payload={"n": 1})
    second = audit_record(action="test.second", actor=alice, payload={"n": 2})
    assert second.sequence == first.sequence + 1
    assert second.previous_hash == first.hash
    assert first.hash == first.compute_hash()
    assert audit_chain_verify() is None


def test_secrets_never_reach_the_payload(db: Any, alice: Any) -> None:
    event = audit_record(
        action="test.secret",
        actor=alice,
        payload={"password": "hunter2", "nested": {"sas_token": "sv=..."}, "host": "db"},
    )
    event.refresh_from_db()
    assert event.payload == {
        "password": "[redacted]",
        "nested": {"sas_token": "[redacted]"},
        "host": "db",
    }


@pytest.mark.parametrize("statement", ["UPDATE {t} SET action = 'x'", "DELETE FROM {t}"])
def test_database_rejects_update_and_delete(db: Any, alice: Any, statement: str) -> None:
    audit_record(action="test.append_only", actor=alice)
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement.format(t=AuditEvent._meta.db_table))
    assert AuditEvent.objects.filter(action="test.append_only").count() == 1


def test_orm_update_and_delete_are_refused_too(db: Any, alice: Any) -> None:
    event = audit_record(action="test.orm", actor=alice)
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="changed")
    with pytest.raises(DatabaseError), transaction.atomic():
        event.delete()


def _tamper(sql: str, params: list[Any]) -> None:
    """Change a row as a superuser would: with triggers switched off."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(sql, params)
        finally:
            cursor.execute("SET session_replication_role = DEFAULT")


def test_audit_verify_reports_a_tampered_row(db: Any, alice: Any, capsys: Any) -> None:
    events = [audit_record(action=f"test.{i}", actor=alice, payload={"i": i}) for i in range(5)]
    call_command("audit_verify")
    assert "intact" in capsys.readouterr().out

    target = events[2]
    _tamper(
        f"UPDATE {AuditEvent._meta.db_table} SET payload = %s WHERE id = %s",
        [json.dumps({"i": 99}), target.pk],
    )
    assert audit_chain_verify() == target.sequence
    with pytest.raises(SystemExit) as exit_info:
        call_command("audit_verify")
    assert exit_info.value.code == 1
    assert f"sequence {target.sequence}" in capsys.readouterr().err


def test_audit_verify_reports_a_deleted_row(db: Any, alice: Any) -> None:
    events = [audit_record(action=f"test.{i}", actor=alice) for i in range(4)]
    _tamper(f"DELETE FROM {AuditEvent._meta.db_table} WHERE id = %s", [events[1].pk])
    assert audit_chain_verify() == events[1].sequence


def test_audit_verify_reports_a_removed_tail(db: Any, alice: Any) -> None:
    events = [audit_record(action=f"test.{i}", actor=alice) for i in range(3)]
    _tamper(f"DELETE FROM {AuditEvent._meta.db_table} WHERE id = %s", [events[-1].pk])
    assert audit_chain_verify() == events[-1].sequence


def test_concurrent_writers_never_fork_the_chain(transactional_db: Any, alice: Any) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def write(n: int) -> None:
        try:
            barrier.wait()
            for i in range(10):
                audit_record(action=f"test.thread{n}", actor=alice, payload={"i": i})
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    sequences = list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True))
    assert sequences == list(range(1, 81))
    assert audit_chain_verify() is None


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("=HYPERLINK()", "'=HYPERLINK()"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
    ],
)
def test_csv_cells_are_neutralised(cell: str, expected: str) -> None:
    assert neutralise(cell) == expected


def test_audit_page_access(
    project: Any, client_for: Any, alice: Any, bob: Any, charlie: Any, admin_user: Any
) -> None:
    audit_record(action="test.in_project", actor=alice, project=project)
    audit_record(action="test.elsewhere", actor=charlie)

    # The lead sees the events of the project, not others.
    body = client_for(alice).get("/audit/").content.decode()
    assert "test.in_project" in body
    assert "test.elsewhere" not in body
    # The admin sees everything.
    body = client_for(admin_user).get("/audit/").content.decode()
    assert "test.in_project" in body and "test.elsewhere" in body
    # A member who is not a lead, and an outsider: no audit page.
    assert client_for(bob).get("/audit/").status_code == 404
    assert client_for(charlie).get("/audit/").status_code == 404


def test_audit_filters_and_exports(db: Any, admin_user: Any, alice: Any, client_for: Any) -> None:
    audit_record(action="test.export", actor=alice, payload={"note": "=cmd|' /C calc'!A0"})
    audit_record(action="other.thing", actor=admin_user)
    client = client_for(admin_user)

    response = client.get("/audit/", {"action": "test.export", "export": "csv"})
    assert response["Content-Type"] == "text/csv"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["action"] for r in rows] == ["test.export"]
    assert rows[0]["actor"] == "alice"

    response = client.get("/audit/", {"actor": "alice", "export": "json"})
    events = json.loads(b"".join(response.streaming_content))
    assert {e["action"] for e in events} == {"test.export"}
    assert events[0]["payload"] == {"note": "=cmd|' /C calc'!A0"}

    response = client.get("/audit/", {"since": "not a date"})
    assert response.status_code == 200
    assert "Enter a valid date." in response.content.decode()


def test_audit_api(project: Any, api_for: Any, alice: Any, bob: Any, admin_user: Any) -> None:
    for i in range(3):
        audit_record(action="test.api", actor=alice, project=project, payload={"i": i})
    response = api_for(alice).get("/api/audit/", {"action": "test.api"})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [e["payload"]["i"] for e in body["results"]] == [2, 1, 0]
    assert set(body["results"][0]) == {
        "sequence",
        "created_at",
        "actor",
        "action",
        "project",
        "object_type",
        "object_id",
        "ip_address",
        "payload",
        "previous_hash",
        "hash",
    }
    assert api_for(bob).get("/api/audit/").status_code == 404
    bad = api_for(admin_user).get("/api/audit/", {"since": "yesterday-ish"})
    assert bad.status_code == 400
    assert "since" in bad.json()


def test_audit_page_query_count_does_not_grow(
    db: Any, admin_user: Any, alice: Any, client_for: Any, django_assert_num_queries: Any
) -> None:
    client = client_for(admin_user)
    audit_record(action="test.count", actor=alice)
    client.get("/audit/")  # warm the session

    def count_queries() -> int:
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/audit/").status_code == 200
        return len(ctx.captured_queries)

    one = count_queries()
    for i in range(40):
        audit_record(action="test.count", actor=alice, payload={"i": i})
    with django_assert_num_queries(one):
        assert client.get("/audit/").status_code == 200
