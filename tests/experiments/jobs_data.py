"""A ready split of a small churn table, made through the datasets services
(the upload and the split run in this process), and a size of the seeded
catalog, for the training job tests."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
from django.apps import apps as django_apps
from django.core.files.uploadedfile import SimpleUploadedFile

from compute.models import ComputeSize
from datasets import services as data_services
from datasets.models import Split, SplitStatus
from portal.celery import app


def churn_csv(rows: int = 300, seed: int = 0) -> bytes:
    """Customers with a churn label that their tenure and charges predict."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, rows)
    charges = rng.normal(70, 20, rows).round(2)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    risk = -0.08 * tenure + 0.03 * charges + rng.normal(0, 0.5, rows)
    churned = np.where(risk > np.median(risk), "yes", "no")
    lines = ["tenure,charges,plan,churned"] + [
        f"{t},{c},{p},{y}" for t, c, p, y in zip(tenure, charges, plan, churned, strict=True)
    ]
    return ("\n".join(lines) + "\n").encode()


def size(name: str = "Standard_D2s_v3") -> ComputeSize:
    """A size of the seeded catalog (seeded again after a transactional test
    flushed it); Standard_D2s_v3 has 2 vCPUs."""
    importlib.import_module("compute.migrations.0002_seed_compute_catalog").seed(django_apps, None)
    return ComputeSize.objects.get(name=name)


def ready_split(
    *,
    project: Any,
    actor: Any,
    name: str = "Customers",
    callbacks: Callable[..., Any] | None = None,
) -> Split:
    """Upload the table to a new source of ``project`` and split it (20 % test).

    The queued ingestion and split run eagerly, in this process: pass
    ``django_capture_on_commit_callbacks`` as ``callbacks`` in a test inside a
    transaction (with a transactional database they run at commit anyway)."""

    def step() -> Any:
        return callbacks(execute=True) if callbacks else contextlib.nullcontext()

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    try:
        with step():
            source = data_services.source_create(
                actor=actor, project=project, name=name, kind="upload", location="on_prem"
            )
        with step():
            data_services.snapshot_upload(
                actor=actor,
                source=source,
                upload=SimpleUploadedFile("customers.csv", churn_csv(), content_type="text/csv"),
            )
        snapshot = source.snapshots.get()
        with step():
            split = data_services.split_create(
                actor=actor, snapshot=snapshot, test_fraction=0.2, seed=1
            )
    finally:
        app.conf.task_always_eager = False
        app.conf.task_eager_propagates = False
    split.refresh_from_db()
    assert split.status == SplitStatus.READY, split.error
    return split
