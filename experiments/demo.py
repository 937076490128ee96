"""The demo project's experiments: a handful of runs with metric histories,
one registered model with a ``champion`` alias, all through the services."""

from __future__ import annotations

import math

from accounts.models import User
from datasets.models import Ingestion
from experiments.artifacts import ArtifactStore
from experiments.models import Experiment
from experiments.page_selectors import run_artifact_root
from experiments.services import (
    MetricPoint,
    alias_set,
    experiment_create,
    model_version_create,
    now_ms,
    registered_model_create,
    run_create,
    run_log_batch,
    run_log_inputs,
    run_update,
)
from projects.models import Project

DEMO_EXPERIMENT = "wine-quality"
DEMO_MODEL = "wine-classifier"
# (run name, learning rate, depth, final AUC)
DEMO_RUNS = [
    ("baseline", 0.3, 2, 0.78),
    ("deeper", 0.1, 4, 0.86),
    ("slow-and-deep", 0.03, 6, 0.91),
    ("too-deep", 0.1, 10, 0.83),
    ("shallow", 0.1, 1, 0.72),
]
STEPS = 200


def demo_experiments_seed(*, project: Project, actor: User, data_digest: str = "") -> None:
    """Log the demo runs and register the best one as ``champion``, once."""
    if Experiment.objects.filter(project=project, name=DEMO_EXPERIMENT).exists():
        return
    experiment = experiment_create(actor=actor, project=project, name=DEMO_EXPERIMENT)
    start = now_ms() - len(DEMO_RUNS) * 3_600_000
    best = None
    for i, (name, lr, depth, auc) in enumerate(DEMO_RUNS):
        began = start + i * 3_600_000
        run = run_create(actor=actor, experiment=experiment, run_name=name, start_time=began)
        points = []
        for step in range(STEPS):
            progress = 1 - math.exp(-step * lr / 1.5)
            points.append(MetricPoint("auc", 0.5 + (auc - 0.5) * progress, began + step, step))
            points.append(MetricPoint("loss", 0.7 * (1 - progress) + 0.2, began + step, step))
        for chunk in range(0, len(points), 900):
            params = {"learning_rate": str(lr), "max_depth": str(depth)} if chunk == 0 else {}
            tags = {"model_family": "gradient boosting"} if chunk == 0 else {}
            run_log_batch(
                actor=actor, run=run, metrics=points[chunk : chunk + 900], params=params, tags=tags
            )
        if data_digest:
            run_log_inputs(
                actor=actor,
                run=run,
                datasets=[
                    {
                        "name": "wine",
                        "digest": data_digest,
                        "source_type": "stagegate",
                        "source": "Wine measurements (demo)",
                        "context": "training",
                    }
                ],
            )
        root = run_artifact_root(run)
        if root is not None:
            report = f"{name}: learning rate {lr}, depth {depth}, AUC {auc}\n".encode()
            ArtifactStore(project.pk).write(f"{root}/report.txt", _Bytes(report), 1 << 20)
        run_update(actor=actor, run=run, status="FINISHED", end_time=began + 95_000)
        if best is None or auc > best[1]:
            best = (run, auc)
    model = registered_model_create(
        actor=actor, project=project, name=DEMO_MODEL, description="Which wine is which."
    )
    assert best is not None
    first = model_version_create(actor=actor, model=model, source=f"runs:/{best[0].uuid}/model")
    alias_set(actor=actor, version=first, alias="champion")


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, size: int = -1) -> bytes:
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk


def demo_data_digest(*, project: Project) -> str:
    """The sha256 of the demo project's first ingested file, if any."""
    found = (
        Ingestion.objects.filter(source__project=project)
        .exclude(sha256="")
        .order_by("pk")
        .values_list("sha256", flat=True)
        .first()
    )
    return found or ""
