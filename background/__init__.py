"""What every app's Celery tasks share: options, backoff, and claiming a row.

Imports no app. See docs/architecture.md ("Background work").
"""

from __future__ import annotations

import random
from typing import Any

from django.db.models import QuerySet


def task_options(
    *, soft_time_limit: int, time_limit: int, max_retries: int | None = 4
) -> dict[str, Any]:
    """Options for ``shared_task``: bound, acknowledged late, given back to the
    broker when the worker dies, with soft and hard time limits."""
    return {
        "bind": True,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "max_retries": max_retries,
        "soft_time_limit": soft_time_limit,
        "time_limit": time_limit,
    }


def backoff_seconds(attempt: int, *, base: float, cap: float = 3600.0) -> float:
    """Exponential backoff with jitter: between ``base / 2`` and
    ``base * 2**attempt`` (at most ``cap``), so retries spread out."""
    high = min(cap, base * 2**attempt)
    return random.uniform(min(base / 2, high), high)  # noqa: S311 - jitter, not crypto


def claim(rows: QuerySet[Any], **changes: Any) -> bool:
    """Claim work with one conditional UPDATE: ``rows`` names the row *and* the
    states it may be claimed from (``filter(pk=..., status=PENDING)``), and
    ``changes`` moves it on. True when this caller got it; a duplicate or
    redelivered task gets False and does nothing."""
    return rows.update(**changes) > 0
