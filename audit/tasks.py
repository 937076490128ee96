"""Periodic work on the audit trail (scheduled by beat, CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from audit.services import audit_chain_report, audit_checkpoint_write
from background import task_options

log = logging.getLogger(__name__)


@shared_task(**task_options(soft_time_limit=1800, time_limit=1900, max_retries=0))
def audit_checkpoint(self: Any) -> int | None:
    """Verify the chain and, when intact, sign its head into the checkpoint
    store; a broken chain is logged as an error and never signed."""
    report = audit_chain_report()
    if not report.intact:
        log.error(
            "audit chain broken at sequence %s: %s",
            report.first_broken,
            "; ".join(str(p) for p in report.problems[:20]),
        )
        return None
    checkpoint = audit_checkpoint_write(report=report)
    return checkpoint.sequence if checkpoint else None
