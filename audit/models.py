from __future__ import annotations

import hashlib
import json
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder
    )


class AuditChainHead(models.Model):
    """One row holding the end of the chain; writers lock it to append in turn."""

    last_sequence = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self) -> str:
        return f"audit head at #{self.last_sequence}"


class AuditEvent(models.Model):
    """One entry of the tamper-evident, append-only audit trail.

    ``hash`` is sha256 over ``previous_hash`` and the canonical encoding of the
    event's fields, so changing, removing or reordering any row breaks the chain
    from that row on. The database rejects UPDATE and DELETE (see migration 0002).
    """

    sequence = models.BigIntegerField(unique=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    # Kept as written so the record stays readable if the user is renamed.
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=100, db_index=True)
    project = models.ForeignKey(
        "projects.Project",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=100, blank=True)
    payload = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    # HMAC-SHA256 of sequence and hash with a key the database does not hold
    # (audit/keys.py). Null only for events written before MACs existed;
    # nullable so that adding it cannot make SQLite rebuild the table (and drop
    # the append-only triggers).
    mac = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001

    class Meta:
        ordering = ["-sequence"]
        indexes = [models.Index(fields=["project", "-sequence"])]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action}"

    def canonical(self) -> str:
        return canonical_json(
            {
                "sequence": self.sequence,
                "created_at": self.created_at.isoformat(),
                "actor_id": self.actor_id,
                "actor_username": self.actor_username,
                "action": self.action,
                "project_id": self.project_id,
                "object_type": self.object_type,
                "object_id": self.object_id,
                "payload": self.payload,
                "ip_address": self.ip_address,
            }
        )

    def compute_hash(self) -> str:
        return hashlib.sha256((self.previous_hash + self.canonical()).encode()).hexdigest()
