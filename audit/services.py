"""Writes to the audit trail. Every service that changes something calls
``audit_record`` inside its own transaction."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from django.db import transaction

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
        event.save(force_insert=True)
        head.last_sequence = event.sequence
        head.last_hash = event.hash
        head.save(update_fields=["last_sequence", "last_hash"])
    return event


def audit_chain_verify(*, chunk_size: int = 2000) -> int | None:
    """Walk the whole chain in order; return the first broken sequence number."""
    expected_previous = GENESIS_HASH
    expected_sequence = 1
    for event in _iter_events(chunk_size):
        if event.sequence != expected_sequence:
            return expected_sequence
        if event.previous_hash != expected_previous or event.compute_hash() != event.hash:
            return event.sequence
        expected_previous = event.hash
        expected_sequence += 1
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and head.last_sequence != expected_sequence - 1:
        return expected_sequence
    return None


def _iter_events(chunk_size: int) -> Iterator[AuditEvent]:
    last = 0
    while True:
        batch = list(AuditEvent.objects.filter(sequence__gt=last).order_by("sequence")[:chunk_size])
        if not batch:
            return
        yield from batch
        last = batch[-1].sequence


__all__ = ["audit_chain_verify", "audit_record"]
