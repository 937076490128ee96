"""The audit trail against someone who owns the database.

The tamperer here has the table owner's rights: they switch the append-only
trigger off (``ALTER TABLE ... DISABLE TRIGGER``), change rows, and may
recompute hashes, but they hold neither the MAC key nor the checkpoint signing
key, and cannot rewrite the checkpoint store outside the database. Each case
starts from an intact trail of six events with a signed checkpoint of its
head, and must be detected (and named) by ``audit_chain_report``:

1. edit payload
2. edit actor_username
3. delete a middle row
4. reorder (swap two events' sequence numbers)
5. change hash
6. change previous_hash
7. insert a row (in the middle, later events renumbered, hashes recomputed)
8. change sequence
9. edit created_at
10. edit action
11. cut the tail and rewind the chain head
12. wipe everything and reset the chain head
13. append a forged event with a correct hash (and the head moved on)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from audit.checkpoints import checkpoint_parse, checkpoint_store
from audit.models import AuditChainHead, AuditEvent
from audit.services import audit_chain_report, audit_checkpoint_write, audit_record
from audit.tasks import audit_checkpoint

TABLE = AuditEvent._meta.db_table
HEAD = AuditChainHead._meta.db_table


@contextmanager
def owner_rights() -> Iterator[Any]:
    """A cursor with the append-only trigger switched off, as the table's owner can."""
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER audit_no_update")
        try:
            yield cursor
        finally:
            cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER audit_no_update")


def _by_seq(sequence: int) -> AuditEvent:
    return AuditEvent.objects.get(sequence=sequence)


def _set_head(sequence: int, hash_: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {HEAD} SET last_sequence = %s, last_hash = %s WHERE id = 1",
            [sequence, hash_],
        )


def edit_payload(c: Any) -> None:
    c.execute(f"UPDATE {TABLE} SET payload = %s WHERE sequence = 3", [json.dumps({"i": 99})])


def edit_actor_username(c: Any) -> None:
    c.execute(f"UPDATE {TABLE} SET actor_username = 'mallory' WHERE sequence = 3")


def delete_middle_row(c: Any) -> None:
    c.execute(f"DELETE FROM {TABLE} WHERE sequence = 3")


def reorder(c: Any) -> None:
    c.execute(f"UPDATE {TABLE} SET sequence = -3 WHERE sequence = 3")
    c.execute(f"UPDATE {TABLE} SET sequence = 3 WHERE sequence = 4")
    c.execute(f"UPDATE {TABLE} SET sequence = 4 WHERE sequence = -3")


def change_hash(c: Any) -> None:
    c.execute(f"UPDATE {TABLE} SET hash = %s WHERE sequence = 3", ["f" * 64])


def change_previous_hash(c: Any) -> None:
    c.execute(f"UPDATE {TABLE} SET previous_hash = %s WHERE sequence = 3", ["e" * 64])


def insert_row(c: Any) -> None:
    # Make room at 3, insert an event that links to 2, and rechain what follows.
    c.execute(f"UPDATE {TABLE} SET sequence = -sequence WHERE sequence >= 3")
    c.execute(f"UPDATE {TABLE} SET sequence = 1 - sequence WHERE sequence < 0")
    previous = _by_seq(2)
    forged = AuditEvent(
        sequence=3,
        created_at=previous.created_at,
        action="approval.approved",
        actor_username="mallory",
        payload={},
        previous_hash=previous.hash,
    )
    forged.hash = forged.compute_hash()
    forged.save(force_insert=True)
    last = forged
    for event in AuditEvent.objects.filter(sequence__gt=3).order_by("sequence"):
        event.previous_hash = last.hash
        event.hash = event.compute_hash()
        c.execute(
            f"UPDATE {TABLE} SET previous_hash = %s, hash = %s WHERE id = %s",
            [event.previous_hash, event.hash, event.pk],
        )
        last = event
    _set_head(last.sequence, last.hash)


def change_sequence(c: Any) -> None:
    c.execute(f"UPDATE {TABLE} SET sequence = 99 WHERE sequence = 3")


def edit_created_at(c: Any) -> None:
    c.execute(
        f"UPDATE {TABLE} SET created_at = %s WHERE sequence = 3",
        [timezone.now() - timedelta(days=30)],
    )


def edit_action(c: Any) -> None:
    c.execute(f"UPDATE {TABLE} SET action = 'test.harmless' WHERE sequence = 3")


def cut_tail_and_rewind_head(c: Any) -> None:
    c.execute(f"DELETE FROM {TABLE} WHERE sequence > 4")
    kept = _by_seq(4)
    _set_head(kept.sequence, kept.hash)


def wipe_and_reset_head(c: Any) -> None:
    c.execute(f"DELETE FROM {TABLE}")
    _set_head(0, "0" * 64)


def append_forged_event(c: Any) -> None:
    last = _by_seq(6)
    forged = AuditEvent(
        sequence=7,
        created_at=timezone.now(),
        action="approval.approved",
        actor_username="mallory",
        payload={"note": "looks legitimate"},
        previous_hash=last.hash,
    )
    forged.hash = forged.compute_hash()
    # The tamperer does not hold the key: the best they can do is guess a MAC.
    forged.mac = hashlib.sha256(b"a guess").hexdigest()
    forged.save(force_insert=True)
    _set_head(forged.sequence, forged.hash)


TAMPERINGS: list[tuple[Callable[[Any], None], set[str]]] = [
    (edit_payload, {"content changed"}),
    (edit_actor_username, {"content changed"}),
    (delete_middle_row, {"sequence gap", "broken link"}),
    (reorder, {"broken link", "content changed"}),
    (change_hash, {"broken link", "content changed"}),
    (change_previous_hash, {"broken link"}),
    (insert_row, {"forged event", "does not match a signed head"}),
    (change_sequence, {"sequence gap"}),
    (edit_created_at, {"content changed"}),
    (edit_action, {"content changed"}),
    (cut_tail_and_rewind_head, {"truncated", "head rewound"}),
    (wipe_and_reset_head, {"truncated", "head rewound"}),
    (append_forged_event, {"forged event"}),
]


@pytest.fixture
def signed_trail(db: Any, alice: Any) -> list[AuditEvent]:
    events = [audit_record(action=f"test.{i}", actor=alice, payload={"i": i}) for i in range(6)]
    assert audit_checkpoint_write() is not None
    report = audit_chain_report()
    assert report.intact, report.problems
    assert (report.events, report.checkpoints) == (6, 1)
    return events


@pytest.mark.parametrize(
    ("tamper", "expected"), TAMPERINGS, ids=[t.__name__ for t, _ in TAMPERINGS]
)
def test_each_tampering_is_detected_and_named(
    signed_trail: list[AuditEvent], tamper: Callable[[Any], None], expected: set[str]
) -> None:
    with owner_rights() as cursor:
        tamper(cursor)
    report = audit_chain_report()
    assert not report.intact
    kinds = {p.kind for p in report.problems}
    assert expected <= kinds, report.problems


def test_all_thirteen_tamperings_are_listed() -> None:
    assert len(TAMPERINGS) == 13
    assert len({t.__name__ for t, _ in TAMPERINGS}) == 13


def test_triggers_are_back_after_tampering(signed_trail: list[AuditEvent]) -> None:
    with owner_rights() as cursor:
        edit_action(cursor)
    from django.db import DatabaseError, transaction

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(sequence=1).update(action="x")


def test_a_rewound_head_without_checkpoint_beyond_it_is_not_provable(db: Any, alice: Any) -> None:
    """What checkpoints cannot do: events written after the newest checkpoint
    can be cut with the head rewound. The window is the checkpoint interval."""
    for i in range(4):
        audit_record(action=f"test.{i}", actor=alice)
    audit_checkpoint_write()
    audit_record(action="test.after", actor=alice)
    with owner_rights() as cursor:
        cut_tail_and_rewind_head(cursor)
    assert audit_chain_report().intact


def test_audit_verify_names_the_problems_and_signs_an_intact_head(
    db: Any, alice: Any, capsys: Any, checkpoint_file: Path
) -> None:
    for i in range(3):
        audit_record(action=f"test.{i}", actor=alice)
    call_command("audit_verify")
    out = capsys.readouterr().out
    assert "audit chain intact: 3 events, 0 signed checkpoints agree" in out
    assert "checkpoint signed at sequence 3" in out
    assert len(checkpoint_file.read_text().splitlines()) == 1

    with owner_rights() as cursor:
        wipe_and_reset_head(cursor)
    with pytest.raises(SystemExit) as exit_info:
        call_command("audit_verify")
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "audit chain broken at sequence 1" in err
    assert "truncated" in err and "head rewound" in err
    # A broken trail is never signed.
    assert len(checkpoint_file.read_text().splitlines()) == 1


def test_the_beat_task_signs_only_an_intact_chain(
    db: Any, alice: Any, checkpoint_file: Path
) -> None:
    audit_record(action="test.one", actor=alice)
    assert audit_checkpoint() == 1
    audit_record(action="test.two", actor=alice)
    with owner_rights() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET action = 'test.harmless' WHERE sequence = 2")
    assert audit_checkpoint() is None
    assert [json.loads(x)["sequence"] for x in checkpoint_file.read_text().splitlines()] == [1]


def test_a_forged_or_edited_checkpoint_is_named(
    signed_trail: list[AuditEvent], checkpoint_file: Path
) -> None:
    line = json.loads(checkpoint_file.read_text().splitlines()[0])
    line["sequence"] = 5  # move the signed head back, keeping the signature
    with checkpoint_file.open("a") as f:
        f.write(json.dumps(line) + "\n")
        f.write("not json\n")
    report = audit_chain_report()
    assert [p.kind for p in report.problems] == ["forged checkpoint", "forged checkpoint"]
    assert "signature does not verify" in report.problems[0].detail


def test_events_from_before_macs_are_accepted_only_as_a_prefix(db: Any, alice: Any) -> None:
    first = audit_record(action="test.old", actor=alice)
    with owner_rights() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET mac = NULL WHERE id = %s", [first.pk])
    audit_record(action="test.new", actor=alice)
    report = audit_chain_report()
    assert report.intact and report.without_mac == 1

    last = audit_record(action="test.newer", actor=alice)
    with owner_rights() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET mac = NULL WHERE id = %s", [last.pk])
    assert [(p.sequence, p.kind) for p in audit_chain_report().problems] == [
        (last.sequence, "forged event")
    ]


def test_mac_and_signing_keys_rotate(db: Any, alice: Any, settings: Any, tmp_path: Path) -> None:
    settings.AUDIT_MAC_KEYS = ["old-key"]
    audit_record(action="test.old_key", actor=alice)
    audit_checkpoint_write()
    old_line = checkpoint_store().lines()[0]

    from audit.keys import public_key_b64, signing_key

    previous = public_key_b64(signing_key().public_key())
    settings.AUDIT_MAC_KEYS = ["new-key", "old-key"]
    settings.AUDIT_SIGNING_KEY_FILE = tmp_path / "new_signing_key"
    audit_record(action="test.new_key", actor=alice)
    # The old checkpoint's key is not trusted any more until it is listed.
    assert [p.kind for p in audit_chain_report().problems] == ["forged checkpoint"]
    settings.AUDIT_PREVIOUS_PUBLIC_KEYS = [previous]
    assert checkpoint_parse(old_line).sequence == 1
    assert audit_chain_report().intact
    # Without the old MAC key, the first event's MAC no longer verifies.
    settings.AUDIT_MAC_KEYS = ["new-key"]
    assert [(p.sequence, p.kind) for p in audit_chain_report().problems] == [(1, "forged event")]


def test_key_files_are_private(db: Any, alice: Any, settings: Any) -> None:
    audit_record(action="test.keys", actor=alice)
    audit_checkpoint_write()
    for name in ("audit_mac_key", "audit_signing_key"):
        path = Path(settings.VAR_DIR) / name
        assert path.stat().st_mode & 0o777 == 0o600, name
    # The database holds neither key.
    mac_key = (Path(settings.VAR_DIR) / "audit_mac_key").read_text().strip()
    dumped = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert mac_key not in dumped
