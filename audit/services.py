"""Writes to the audit trail. Every service that changes something calls
``audit_record`` inside its own transaction."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from audit.checkpoints import Checkpoint, checkpoint_parse, checkpoint_sign, checkpoint_store
from audit.keys import event_mac, mac_valid
from audit.models import GENESIS_HASH, AuditChainHead, AuditEvent

# Payload keys whose values are never written to the trail.
SECRET_KEY_PATTERN = re.compile(r"pass|secret|token|key|sas|credential|authorization", re.I)


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: ("[redacted]" if SECRET_KEY_PATTERN.search(str(k)) else _scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def audit_record(
    *,
    action: str,
    actor: Any = None,
    project: Any = None,
    obj: Any = None,
    object_type: str = "",
    object_id: str | int = "",
    payload: dict[str, Any] | None = None,
    ip_address: str | None = None,
) -> AuditEvent:
    """Append one event to the chain, in the caller's transaction.

    The chain head row is locked (SELECT ... FOR UPDATE on PostgreSQL; SQLite's
    IMMEDIATE transactions already serialise writers), so concurrent writers
    take turns and the chain never forks.
    """
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
    user = actor if getattr(actor, "is_authenticated", False) else None
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
        event = AuditEvent(
            sequence=head.last_sequence + 1,
            actor=user,
            actor_username=user.get_username() if user else "",
            action=action,
            project=project,
            object_type=object_type,
            object_id=str(object_id) if object_id != "" else "",
            payload=json.loads(json.dumps(_scrub(payload or {}), default=str)),
            ip_address=ip_address,
            previous_hash=head.last_hash,
        )
        event.hash = event.compute_hash()
        event.mac = event_mac(event.sequence, event.hash)
        event.save(force_insert=True)
        head.last_sequence = event.sequence
        head.last_hash = event.hash
        head.save(update_fields=["last_sequence", "last_hash"])
    return event


@dataclass(frozen=True)
class Problem:
    sequence: int
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"sequence {self.sequence}: {self.kind}: {self.detail}"


@dataclass
class ChainReport:
    """What ``audit_chain_report`` found: ``problems`` is empty for an intact trail."""

    events: int = 0
    last_sequence: int = 0
    last_hash: str = GENESIS_HASH
    without_mac: int = 0
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def first_broken(self) -> int | None:
        return min((p.sequence for p in self.problems), default=None)


def _signed_heads(report: ChainReport) -> dict[int, Checkpoint]:
    """The store's checkpoints whose signatures hold, by sequence; the others
    are problems (sequence 0: they name no event that can be trusted)."""
    heads: dict[int, Checkpoint] = {}
    for number, line in enumerate(checkpoint_store().lines(), start=1):
        try:
            checkpoint = checkpoint_parse(line)
        except ValueError as exc:
            report.problems.append(Problem(0, "forged checkpoint", f"line {number}: {exc}"))
            continue
        known = heads.get(checkpoint.sequence)
        if known is not None and known.hash != checkpoint.hash:
            report.problems.append(
                Problem(
                    checkpoint.sequence,
                    "conflicting checkpoints",
                    "two signed heads give this event different hashes",
                )
            )
        heads[checkpoint.sequence] = checkpoint
        report.checkpoints += 1
    return heads


def audit_chain_report(*, chunk_size: int = 2000) -> ChainReport:
    """Walk the whole chain in order and check it against its MACs and the
    signed checkpoints outside the database.

    Problems are named: a gap or reordering in the sequence, a broken link
    (``previous_hash``), content that does not give its hash, a forged event
    (a MAC missing or wrong), an event that does not match a signed head,
    truncation (a signed head beyond the last event) and a rewound head (the
    chain head row behind a signed head, or not at the last event).
    """
    report = ChainReport()
    heads = _signed_heads(report)
    problems = report.problems
    expected_previous = GENESIS_HASH
    expected_sequence = 1
    seen_mac = False
    head = None
    # Writers may append while the walk goes on: walk on until the head row,
    # read after the walk, is not ahead of the last event seen.
    for _round in range(10):
        walked = 0
        for event in _iter_events(chunk_size, after=report.last_sequence):
            walked += 1
            if event.sequence != expected_sequence:
                problems.append(
                    Problem(
                        expected_sequence,
                        "sequence gap",
                        f"expected event {expected_sequence}, found {event.sequence}",
                    )
                )
                expected_sequence = event.sequence
            if event.previous_hash != expected_previous:
                problems.append(
                    Problem(event.sequence, "broken link", "previous_hash is not the hash before")
                )
            if event.compute_hash() != event.hash:
                problems.append(
                    Problem(event.sequence, "content changed", "the event does not give its hash")
                )
            if event.mac:
                seen_mac = True
                if not mac_valid(event.sequence, event.hash, event.mac):
                    problems.append(
                        Problem(event.sequence, "forged event", "its MAC does not match")
                    )
            elif seen_mac:
                problems.append(Problem(event.sequence, "forged event", "it carries no MAC"))
            else:
                report.without_mac += 1
            signed = heads.get(event.sequence)
            if signed is not None and signed.hash != event.hash:
                problems.append(
                    Problem(
                        event.sequence,
                        "does not match a signed head",
                        f"checkpoint of {signed.signed_at} signed hash {signed.hash[:12]}…, "
                        f"the event has {event.hash[:12]}…",
                    )
                )
            report.events += 1
            report.last_sequence = event.sequence
            report.last_hash = event.hash
            expected_previous = event.hash
            expected_sequence += 1
        head = AuditChainHead.objects.filter(pk=1).first()
        if not walked or head is None or head.last_sequence <= report.last_sequence:
            break

    newest = max(heads.values(), key=lambda c: c.sequence, default=None)
    if newest is not None and newest.sequence > report.last_sequence:
        problems.append(
            Problem(
                report.last_sequence + 1,
                "truncated",
                f"a checkpoint signed on {newest.signed_at} covers events up to "
                f"{newest.sequence}, the trail ends at {report.last_sequence}",
            )
        )
    head_sequence = head.last_sequence if head else 0
    head_hash = head.last_hash if head else GENESIS_HASH
    if newest is not None and head_sequence < newest.sequence:
        problems.append(
            Problem(
                head_sequence + 1,
                "head rewound",
                f"the chain head is at {head_sequence}, behind the signed head at "
                f"{newest.sequence}",
            )
        )
    elif (head_sequence, head_hash) != (report.last_sequence, report.last_hash):
        problems.append(
            Problem(
                min(head_sequence, report.last_sequence) + 1,
                "head mismatch",
                f"the chain head is at {head_sequence}, the last event at {report.last_sequence}",
            )
        )
    problems.sort(key=lambda p: p.sequence)
    return report


def audit_chain_verify(*, chunk_size: int = 2000) -> int | None:
    """The first broken sequence number, or None when the trail is intact."""
    return audit_chain_report(chunk_size=chunk_size).first_broken


def audit_checkpoint_write(*, report: ChainReport | None = None) -> Checkpoint | None:
    """Sign the head of an intact chain and append it to the checkpoint store.

    Verifies first (unless given the report of a verification just made): a
    trail already tampered with is never signed. Returns None then, and when
    the trail is empty.
    """
    report = report or audit_chain_report()
    if not report.intact or report.events == 0:
        return None
    checkpoint = checkpoint_sign(sequence=report.last_sequence, event_hash=report.last_hash)
    checkpoint_store().append(checkpoint.line())
    return checkpoint


def _iter_events(chunk_size: int, after: int = 0) -> Iterator[AuditEvent]:
    last = after
    while True:
        batch = list(AuditEvent.objects.filter(sequence__gt=last).order_by("sequence")[:chunk_size])
        if not batch:
            return
        yield from batch
        last = batch[-1].sequence


__all__ = [
    "ChainReport",
    "Problem",
    "audit_chain_report",
    "audit_chain_verify",
    "audit_checkpoint_write",
    "audit_record",
]
