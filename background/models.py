"""The lease every piece of background work carries in its own row.

An abstract model: a stage's model inherits it, and its table gets the
columns. See ``background.leases`` for what sets and reads them.
"""

from __future__ import annotations

from django.db import models


class Leased(models.Model):
    """Who holds the work, since when it was sent, and until when it is held.

    A row waiting for a worker has no owner and expires ``dispatched_at`` plus
    a grace period: if no worker claimed it by then, its message was lost. A
    claimed row names its owner (worker and task id) and is extended by a
    heartbeat while the work runs: if it expires, the worker is gone.
    """

    lease_owner = models.CharField(max_length=255, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True
