"""Thin Celery tasks on the ``data`` queue: keyword-only ids, claim the row
and its lease with a conditional update, keep the lease alive while the work
runs, call one service, record failures. Work whose lease runs out (its
worker died, its message was lost) is sent again by the recovery beat
(``background.leases``; the kinds are registered in ``datasets.apps``)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import ValidationError
from django.utils import timezone

from background import backoff_seconds, task_options
from background.leases import lease_claim, lease_kept, lease_owner_for
from datasets import services
from datasets.models import (
    ConnectionStatus,
    DataSource,
    Ingestion,
    IngestionStatus,
    Profile,
    ProfileStatus,
    Split,
    SplitStatus,
    Trigger,
)

logger = logging.getLogger(__name__)

TASK_OPTIONS = task_options(soft_time_limit=55 * 60, time_limit=60 * 60, max_retries=4)


def _backoff(retries: int) -> float:
    """Up to 10 s, 20 s, 40 s, ... with jitter."""
    return backoff_seconds(retries, base=10)


@shared_task(**TASK_OPTIONS)
def ingestion_run(self: Any, *, ingestion_id: int) -> None:
    """Pull or parse one ingestion into a snapshot."""
    owner = lease_owner_for(self)
    claimed = lease_claim(
        Ingestion.objects.filter(pk=ingestion_id, status=IngestionStatus.PENDING),
        owner=owner,
        status=IngestionStatus.RUNNING,
        started_at=timezone.now(),
    )
    if not claimed:
        return
    try:
        with lease_kept(Ingestion, ingestion_id, owner=owner):
            services.ingestion_execute(ingestion_id=ingestion_id)
    except services.TransientSourceError as exc:
        if self.request.retries >= self.max_retries:
            services.ingestion_mark_failed(
                ingestion_id=ingestion_id,
                error=f"Gave up after {self.request.retries + 1} attempts: {exc}",
            )
            return
        countdown = _backoff(self.request.retries)
        attempt = self.request.retries + 1
        services.ingestion_release(
            ingestion_id=ingestion_id,
            delay=countdown,
            reason=f"Retrying in {countdown:.0f} s (attempt {attempt} of "
            f"{self.max_retries + 1} failed): {exc}",
        )
        raise self.retry(exc=exc, countdown=countdown) from None
    except SoftTimeLimitExceeded:
        services.ingestion_mark_failed(ingestion_id=ingestion_id, error="Took too long.")
    except Exception as exc:
        # Log the type only: a message might quote a connection string.
        logger.error("ingestion %s failed: %s", ingestion_id, type(exc).__name__)
        services.ingestion_mark_failed(
            ingestion_id=ingestion_id, error=f"Internal error ({type(exc).__name__})."
        )


@shared_task(**TASK_OPTIONS)
def profile_run(self: Any, *, snapshot_id: int) -> None:
    """Compute one snapshot's profile."""
    owner = lease_owner_for(self)
    claimed = lease_claim(
        Profile.objects.filter(snapshot_id=snapshot_id, status=ProfileStatus.PENDING),
        owner=owner,
        status=ProfileStatus.RUNNING,
    )
    if not claimed:
        return
    profile_id = Profile.objects.values_list("pk", flat=True).get(snapshot_id=snapshot_id)
    try:
        with lease_kept(Profile, profile_id, owner=owner):
            services.profile_execute(snapshot_id=snapshot_id)
    except OSError as exc:
        if self.request.retries >= self.max_retries:
            services.profile_mark_failed(snapshot_id=snapshot_id, error=str(exc))
            return
        countdown = _backoff(self.request.retries)
        services.profile_release(snapshot_id=snapshot_id, delay=countdown)
        raise self.retry(exc=exc, countdown=countdown) from None
    except Exception as exc:
        logger.error("profile of snapshot %s failed: %s", snapshot_id, type(exc).__name__)
        services.profile_mark_failed(snapshot_id=snapshot_id, error=type(exc).__name__)


@shared_task(**TASK_OPTIONS)
def split_run(self: Any, *, split_id: int) -> None:
    """Compute one train/test split."""
    owner = lease_owner_for(self)
    claimed = lease_claim(
        Split.objects.filter(pk=split_id, status=SplitStatus.PENDING),
        owner=owner,
        status=SplitStatus.RUNNING,
    )
    if not claimed:
        return
    try:
        with lease_kept(Split, split_id, owner=owner):
            services.split_execute(split_id=split_id)
    except ValidationError as exc:
        services.split_mark_failed(split_id=split_id, error="; ".join(exc.messages))
    except OSError as exc:
        if self.request.retries >= self.max_retries:
            services.split_mark_failed(split_id=split_id, error=str(exc))
            return
        countdown = _backoff(self.request.retries)
        services.split_release(split_id=split_id, delay=countdown)
        raise self.retry(exc=exc, countdown=countdown) from None
    except Exception as exc:
        logger.error("split %s failed: %s", split_id, type(exc).__name__)
        services.split_mark_failed(
            split_id=split_id, error=f"Internal error ({type(exc).__name__})."
        )


@shared_task(**TASK_OPTIONS)
def snapshot_validate(self: Any, *, snapshot_id: int, actor_id: int | None = None) -> None:
    """Check an existing version against its source's current rules."""
    try:
        services.snapshot_validate_execute(snapshot_id=snapshot_id, actor_id=actor_id)
    except OSError as exc:
        if self.request.retries >= self.max_retries:
            logger.error("validation of snapshot %s failed: %s", snapshot_id, exc)
            return
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from None


@shared_task(**task_options(soft_time_limit=60, time_limit=90, max_retries=0))
def source_test(self: Any, *, source_id: int) -> None:
    """Test the connection to one source."""
    owner = lease_owner_for(self)
    claimed = lease_claim(
        DataSource.objects.filter(pk=source_id, test_status=ConnectionStatus.PENDING),
        owner=owner,
        test_status=ConnectionStatus.RUNNING,
    )
    if not claimed:
        return
    try:
        with lease_kept(DataSource, source_id, owner=owner):
            services.source_test_execute(source_id=source_id)
    except SoftTimeLimitExceeded:
        DataSource.objects.filter(pk=source_id).update(
            test_status=ConnectionStatus.FAILED, test_message="Timed out.", tested_at=timezone.now()
        )


@shared_task(**task_options(soft_time_limit=60, time_limit=90, max_retries=0))
def source_refresh(self: Any, *, source_id: int) -> None:
    """The scheduled pull of one source (from django-celery-beat)."""
    source = DataSource.objects.filter(pk=source_id).first()
    if source is None:
        return
    services.source_pull_request(actor=None, source=source, trigger=Trigger.SCHEDULE)
