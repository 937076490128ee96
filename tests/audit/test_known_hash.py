"""Known answers for the audit chain's hash and MAC.

The expected canonical form, hash and MAC below are written out by hand from
the documented definition (docs/audit.md, "The hash chain" and "A MAC on every
event") and computed here with hashlib/hmac alone, never with the code under
test. Dropping, renaming or reordering a hashed field, changing a separator,
escaping non-ASCII characters or changing how the previous hash is joined
gives a different hash, so each of those regressions fails here.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
from decimal import Decimal
from typing import Any

import pytest

from audit.keys import event_mac
from audit.models import GENESIS_HASH, AuditChainHead, AuditEvent, canonical_json
from audit.services import audit_chain_verify, audit_record
from tests.factories import ProjectFactory

PREVIOUS_HASH = "ab" * 32
MAC_KEY = b"known-answer-mac-key"

# sorted keys, no whitespace, non-ASCII kept, Decimal as a string, ISO 8601 time
KNOWN_CANONICAL = (
    '{"action":"charter.submitted",'
    '"actor_id":3,'
    '"actor_username":"ålice",'
    '"created_at":"2026-01-02T03:04:05.678901+00:00",'
    '"ip_address":"192.0.2.7",'
    '"object_id":"12",'
    '"object_type":"charter.charterversion",'
    '"payload":{"amount":"1.50","note":"café","steps":[2,1]},'
    '"project_id":11,'
    '"sequence":7}'
)
KNOWN_HASH = "b5164fb5459f17c488b5cd21230426cbc066eb57a948a1ed17c0d52af3b2f4a3"
KNOWN_MAC = "fe986e3fd509fb7b17d3806da2e330721470419935dedb2cb6c55ae65088800b"


def _known_event(**changes: Any) -> AuditEvent:
    fields: dict[str, Any] = {
        "sequence": 7,
        "created_at": datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC),
        "actor_id": 3,
        "actor_username": "ålice",
        "action": "charter.submitted",
        "project_id": 11,
        "object_type": "charter.charterversion",
        "object_id": "12",
        # keys out of order on purpose: the canonical form sorts them
        "payload": {"steps": [2, 1], "note": "café", "amount": Decimal("1.50")},
        "ip_address": "192.0.2.7",
        "previous_hash": PREVIOUS_HASH,
    }
    fields.update(changes)
    return AuditEvent(**fields)


def test_the_known_answers_follow_the_documented_formulas() -> None:
    # The constants themselves, from the formulas in docs/audit.md.
    joined = (PREVIOUS_HASH + KNOWN_CANONICAL).encode("utf-8")
    assert hashlib.sha256(joined).hexdigest() == KNOWN_HASH
    message = f"7:{KNOWN_HASH}".encode()
    assert hmac.new(MAC_KEY, message, hashlib.sha256).hexdigest() == KNOWN_MAC


def test_canonical_form_of_a_fixed_event_is_exact() -> None:
    assert _known_event().canonical() == KNOWN_CANONICAL


def test_hash_of_a_fixed_event_is_exact() -> None:
    assert _known_event().compute_hash() == KNOWN_HASH


def test_mac_of_a_fixed_event_is_exact() -> None:
    assert event_mac(7, KNOWN_HASH, key=MAC_KEY) == KNOWN_MAC


def test_the_previous_hash_comes_first() -> None:
    # sha256(previous + canonical), not sha256(canonical + previous)
    event = _known_event(previous_hash=GENESIS_HASH)
    expected = hashlib.sha256((GENESIS_HASH + KNOWN_CANONICAL).encode("utf-8")).hexdigest()
    assert event.compute_hash() == expected
    assert expected != hashlib.sha256((KNOWN_CANONICAL + GENESIS_HASH).encode()).hexdigest()


# Each hashed field, a different value for it, and the text that replaces the
# field's part of the canonical form.
FIELD_CHANGES = [
    ("sequence", 8, '"sequence":7}', '"sequence":8}'),
    (
        "created_at",
        datetime.datetime(2026, 1, 2, 3, 4, 6, 678901, tzinfo=datetime.UTC),
        "03:04:05.678901",
        "03:04:06.678901",
    ),
    ("actor_id", 4, '"actor_id":3', '"actor_id":4'),
    ("actor_username", "bob", '"ålice"', '"bob"'),
    ("action", "charter.approved", '"charter.submitted"', '"charter.approved"'),
    ("project_id", 12, '"project_id":11', '"project_id":12'),
    ("object_type", "charter.charter", '"charter.charterversion"', '"charter.charter"'),
    ("object_id", "13", '"object_id":"12"', '"object_id":"13"'),
    (
        "payload",
        {"steps": [1, 2], "note": "café", "amount": Decimal("1.50")},
        "[2,1]",
        "[1,2]",
    ),
    ("ip_address", "192.0.2.8", '"192.0.2.7"', '"192.0.2.8"'),
]


@pytest.mark.parametrize(
    ("field", "value", "old", "new"),
    # plain ASCII test ids: the mutation runner passes them on a command line
    [pytest.param(*change, id=change[0]) for change in FIELD_CHANGES],
)
def test_every_hashed_field_changes_the_hash_as_documented(
    field: str, value: Any, old: str, new: str
) -> None:
    canonical = KNOWN_CANONICAL.replace(old, new)
    assert canonical != KNOWN_CANONICAL
    expected = hashlib.sha256((PREVIOUS_HASH + canonical).encode("utf-8")).hexdigest()
    event = _known_event(**{field: value})
    assert event.canonical() == canonical
    assert event.compute_hash() == expected != KNOWN_HASH


def test_empty_and_null_fields_are_hashed_too() -> None:
    event = _known_event(actor_id=None, project_id=None, ip_address=None, object_id="")
    expected = (
        KNOWN_CANONICAL.replace('"actor_id":3', '"actor_id":null')
        .replace('"project_id":11', '"project_id":null')
        .replace('"ip_address":"192.0.2.7"', '"ip_address":null')
        .replace('"object_id":"12"', '"object_id":""')
    )
    assert event.canonical() == expected


def test_canonical_json_encodes_dates_and_decimals_and_keeps_unicode() -> None:
    value = {
        "z": Decimal("0.10"),
        "a": datetime.date(2026, 11, 30),
        "m": {"é": "ü", "b": [True, None]},
    }
    assert canonical_json(value) == '{"a":"2026-11-30","m":{"b":[true,null],"é":"ü"},"z":"0.10"}'


def test_names_of_event_and_head() -> None:
    assert str(_known_event()) == "#7 charter.submitted"
    assert str(AuditChainHead(last_sequence=41, last_hash=KNOWN_HASH)) == "audit head at #41"


def test_a_recorded_event_verifies_against_the_documented_form(
    db: Any, alice: Any, settings: Any
) -> None:
    """An event written by audit_record, recomputed from its stored row with
    json/hashlib/hmac only."""
    settings.AUDIT_MAC_KEYS = [MAC_KEY.decode()]
    project: Any = ProjectFactory(slug="known-answer", created_by=alice)
    first = audit_record(action="test.first", actor=alice, project=project)
    written = audit_record(
        action="test.known",
        actor=alice,
        project=project,
        object_type="projects.project",
        object_id=project.pk,
        payload={"zeta": 1, "alpha": "ö"},
        ip_address="192.0.2.9",
    )
    row = AuditEvent.objects.get(pk=written.pk)
    document = {
        "sequence": row.sequence,
        "created_at": row.created_at.isoformat(),
        "actor_id": alice.pk,
        "actor_username": alice.username,
        "action": "test.known",
        "project_id": project.pk,
        "object_type": "projects.project",
        "object_id": str(project.pk),
        "payload": {"zeta": 1, "alpha": "ö"},
        "ip_address": "192.0.2.9",
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert row.previous_hash == first.hash
    assert row.hash == hashlib.sha256((first.hash + canonical).encode("utf-8")).hexdigest()
    message = f"{row.sequence}:{row.hash}".encode()
    assert row.mac == hmac.new(MAC_KEY, message, hashlib.sha256).hexdigest()
    assert audit_chain_verify() is None
