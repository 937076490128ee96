"""Leases on background work: claim, heartbeat, and recovery of lost work.

The database row, not the broker, is the truth about a piece of background
work. Each kind of work (an ingestion, a profile, ...) registers itself here
as a ``LeasedWork``, the way an approval kind registers with governance; one
beat task (``portal.leases_recover``) calls ``recover_all`` on any broker.

Imports no app. See docs/architecture.md ("Background work").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Min, Model, Q, QuerySet
from django.utils import timezone

logger = logging.getLogger(__name__)

# How many expired rows of one kind one recovery pass handles.
RECOVER_BATCH = 200


def lease_seconds() -> float:
    return float(settings.BACKGROUND_LEASE_SECONDS)


def dispatch_grace_seconds() -> float:
    return float(settings.BACKGROUND_DISPATCH_GRACE_SECONDS)


def lease_waiting(*, now: datetime | None = None, delay: float = 0.0) -> dict[str, Any]:
    """Field values for work sent (or about to be sent) to the broker: no
    owner, and a lease that runs out if no worker claims it in time. ``delay``
    is a retry's countdown, during which nobody is expected to claim it."""
    now = now or timezone.now()
    return {
        "lease_owner": "",
        "dispatched_at": now,
        "heartbeat_at": None,
        "lease_expires_at": now + timedelta(seconds=delay + dispatch_grace_seconds()),
    }


def lease_owner_for(task: Any) -> str:
    """Who claims: the worker's name and the task's id."""
    request = task.request
    return f"{request.hostname or 'local'}:{request.id or ''}"[:255]


def lease_claim(rows: QuerySet[Any], *, owner: str, **changes: Any) -> bool:
    """Claim work with one conditional UPDATE and take its lease: ``rows``
    names the row and the states it may be claimed from, ``changes`` moves it
    on. Counts an attempt. False when someone else has it."""
    now = timezone.now()
    return (
        rows.update(
            lease_owner=owner,
            heartbeat_at=now,
            lease_expires_at=now + timedelta(seconds=lease_seconds()),
            attempts=F("attempts") + 1,
            **changes,
        )
        > 0
    )


def heartbeat(model: type[Model], pk: Any, *, owner: str) -> bool:
    """Extend the lease of work this owner holds; False if it holds it no more."""
    now = timezone.now()
    return (
        model._default_manager.filter(pk=pk, lease_owner=owner).update(
            heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_seconds())
        )
        > 0
    )


@contextmanager
def lease_kept(model: type[Model], pk: Any, *, owner: str) -> Iterator[None]:
    """Keep the lease alive while the block runs: a thread beats every third
    of the lease. If the process dies (kill -9, out of memory, a lost
    machine), the beats stop and the lease runs out; a task that hangs is
    ended by its time limit, which kills the beats with it."""
    stop = threading.Event()
    interval = max(0.05, lease_seconds() / 3)

    def beat() -> None:
        try:
            while not stop.wait(interval):
                if not heartbeat(model, pk, owner=owner):
                    return
        except Exception as exc:  # a missed beat is no reason to fail the work
            logger.warning("heartbeat of %s %s failed: %s", model.__name__, pk, type(exc).__name__)
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"lease-{model.__name__}-{pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval)


@dataclass(frozen=True)
class LeasedWork:
    """One kind of background work, as recovery needs to know it.

    ``active`` lists the rows not finished yet (waiting or running);
    ``requeue`` are the changes that put one back in the queue (its state);
    ``redispatch`` sends its task again; ``fail`` records why it was given
    up (and removes what it left behind); ``cleanup``, if given, runs after
    each recovery pass (e.g. orphaned staging files).
    """

    name: str
    model: type[Model]
    active: Callable[[], QuerySet[Any]]
    requeue: dict[str, Any]
    redispatch: Callable[[Any], None]
    fail: Callable[[Any, str], None]
    max_attempts: int | None = None
    cleanup: Callable[[], Any] | None = None

    @property
    def attempts_limit(self) -> int:
        return self.max_attempts or int(settings.BACKGROUND_MAX_ATTEMPTS)


_registry: dict[str, LeasedWork] = {}


def register(work: LeasedWork) -> None:
    """Make a kind of work recoverable (from its app's ``ready()``)."""
    _registry[work.name] = work


def registered() -> list[LeasedWork]:
    return list(_registry.values())


def expired(
    work: LeasedWork, *, now: datetime, within: QuerySet[Any] | None = None
) -> QuerySet[Any]:
    rows = work.active() if within is None else within & work.active()
    return rows.filter(Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True))


def give_up_reason(row: Any) -> str:
    return (
        f"Gave up after {row.attempts} attempts: the worker running it was lost, "
        "or its task never reached a worker."
    )


def lease_recover(
    work: LeasedWork, *, now: datetime | None = None, within: QuerySet[Any] | None = None
) -> dict[str, list[Any]]:
    """Re-dispatch or fail the work whose lease ran out, whatever its state.

    A row that was claimed lost its worker; a row that was waiting lost its
    message (a broker that does not redeliver, or a message held by a worker
    that died during a retry's countdown). Either way, while attempts remain,
    it goes back to the queue with a fresh lease and its task is sent again
    (after commit); each lost delivery counts as an attempt, and the grace
    doubles with each, so a long queue is not flooded. After the last
    attempt, ``work.fail`` records why. The conditional update makes two
    concurrent recoveries (or a worker that comes back) harmless.
    """
    now = now or timezone.now()
    report: dict[str, list[Any]] = {"redispatched": [], "failed": []}
    for row in expired(work, now=now, within=within)[:RECOVER_BATCH]:
        if row.attempts >= work.attempts_limit:
            work.fail(row, give_up_reason(row))
            report["failed"].append(row.pk)
            continue
        lost_delivery = 0 if row.lease_owner else 1
        changes = lease_waiting(now=now)
        changes["lease_expires_at"] = now + timedelta(
            seconds=dispatch_grace_seconds() * 2 ** min(row.attempts, 6)
        )
        with transaction.atomic():
            taken = (
                work.active()
                .filter(
                    pk=row.pk, lease_owner=row.lease_owner, lease_expires_at=row.lease_expires_at
                )
                .update(**work.requeue, **changes, attempts=F("attempts") + lost_delivery)
            )
            if taken:
                transaction.on_commit(partial(work.redispatch, row))
        if taken:
            logger.warning(
                "%s %s: lease expired (%s), sent again",
                work.name,
                row.pk,
                f"held by {row.lease_owner}" if row.lease_owner else "never claimed",
            )
            report["redispatched"].append(row.pk)
    return report


def recover_all(*, now: datetime | None = None) -> dict[str, dict[str, list[Any]]]:
    """Recover every registered kind of work, then run their cleanups."""
    now = now or timezone.now()
    reports = {}
    for work in registered():
        report = lease_recover(work, now=now)
        if work.cleanup is not None:
            report["cleaned"] = list(work.cleanup() or [])
        reports[work.name] = report
    return reports


def waiting(*, now: datetime | None = None) -> dict[str, Any]:
    """How much work waits for a worker (sent, not claimed), and how long
    the oldest has waited, in seconds; per kind and in all."""
    now = now or timezone.now()
    kinds: dict[str, Any] = {}
    oldest: datetime | None = None
    total = 0
    for work in registered():
        rows = work.active().filter(lease_owner="")
        summary = rows.aggregate(oldest=Min("dispatched_at"))
        count = rows.count()
        kind_oldest = summary["oldest"]
        kinds[work.name] = {
            "waiting": count,
            "oldest_seconds": round((now - kind_oldest).total_seconds(), 1)
            if kind_oldest
            else None,
        }
        total += count
        if kind_oldest and (oldest is None or kind_oldest < oldest):
            oldest = kind_oldest
    return {
        "waiting": total,
        "oldest_seconds": round((now - oldest).total_seconds(), 1) if oldest else None,
        "kinds": kinds,
    }
