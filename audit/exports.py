"""Audit exports: CSV safe to open in a spreadsheet, and JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from audit.models import AuditEvent

COLUMNS = [
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
]
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """Keep a spreadsheet from reading a cell as a formula (CSV injection)."""
    return "'" + cell if cell.startswith(FORMULA_PREFIXES) else cell


def event_row(event: AuditEvent) -> dict[str, Any]:
    return {
        "sequence": event.sequence,
        "created_at": event.created_at.isoformat(),
        "actor": event.actor_username,
        "action": event.action,
        "project": event.project.slug if event.project_id and event.project else None,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "ip_address": event.ip_address,
        "payload": event.payload,
        "previous_hash": event.previous_hash,
        "hash": event.hash,
    }


def csv_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        value = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return value

    writer.writerow(COLUMNS)
    yield flush()
    for event in events:
        row = event_row(event)
        row["payload"] = json.dumps(row["payload"], sort_keys=True, cls=DjangoJSONEncoder)
        writer.writerow([neutralise("" if row[c] is None else str(row[c])) for c in COLUMNS])
        yield flush()


def json_chunks(events: Iterable[AuditEvent]) -> Iterator[str]:
    yield "["
    for i, event in enumerate(events):
        yield ("," if i else "") + json.dumps(event_row(event), cls=DjangoJSONEncoder)
    yield "]"
