"""Reads for the experiments and registry pages: each answers in a fixed
number of queries, however many runs, points or versions there are."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.db.models import Case, Count, F, IntegerField, Max, Q, QuerySet, Value, When, Window
from django.db.models.functions import Greatest, Mod, RowNumber
from django.urls import reverse

from accounts.models import User
from datasets.models import Snapshot, Split
from experiments.artifacts import artifact_path_of
from experiments.errors import MlflowError
from experiments.models import (
    Experiment,
    LatestMetric,
    Lifecycle,
    Metric,
    ModelVersion,
    Param,
    RegisteredModel,
    Run,
    RunInput,
    RunTag,
)
from experiments.selectors import runs_with_data
from projects.models import Membership, Project

MAX_POINTS = 1000
SPLIT_TAG = "stagegate.split"
SPLIT_TAG_RE = re.compile(r"^(?P<source>\d{1,12})/v(?P<version>\d{1,9})/(?P<number>\d{1,9})$")


def experiment_projects(*, user: User) -> list[dict[str, Any]]:
    """Every project the user is in, with its experiments and runs counted and
    what to do next (one query): the rows of ``partials/project_cta_list.html``."""
    memberships = (
        Membership.objects.filter(user=user)
        .select_related("project")
        .annotate(
            n_experiments=Count(
                "project__experiments",
                filter=Q(project__experiments__lifecycle_stage=Lifecycle.ACTIVE),
                distinct=True,
            ),
            n_models=Count("project__registered_models", distinct=True),
        )
        .order_by("project__name")
    )
    rows = []
    for m in memberships:
        here = reverse("experiments:list", kwargs={"slug": m.project.slug})
        n, models = m.n_experiments, m.n_models  # type: ignore[attr-defined]
        if n:
            cta = "Open its experiments"
        elif m.can_write:
            cta = "Log your first run"
        else:
            cta = "See its experiments"
        rows.append(
            {
                "project": m.project,
                "url": here,
                "summary": (
                    f"{n} experiment{'' if n == 1 else 's'}, "
                    f"{models} registered model{'' if models == 1 else 's'}"
                ),
                "cta_text": cta,
                "cta_url": here,
            }
        )
    return rows


def experiments_for_project(*, project: Project) -> QuerySet[Experiment]:
    """The project's active experiments with their runs counted and last activity."""
    active_runs = Q(runs__lifecycle_stage=Lifecycle.ACTIVE)
    return (
        Experiment.objects.filter(project=project, lifecycle_stage=Lifecycle.ACTIVE)
        .annotate(
            run_count=Count("runs", filter=active_runs),
            last_activity=Greatest(
                F("last_update_time"),
                Max("runs__start_time", filter=active_runs),
                Max("runs__end_time", filter=active_runs),
            ),
        )
        .order_by("-last_update_time", "-id")
    )


def experiment_for_project(*, project: Project, experiment_id: int) -> Experiment | None:
    return Experiment.objects.filter(
        project=project, pk=experiment_id, lifecycle_stage=Lifecycle.ACTIVE
    ).first()


def experiment_keys(*, experiment: Experiment) -> dict[str, list[str]]:
    """The param and metric keys present in the experiment's active runs (two queries)."""
    runs = Run.objects.filter(experiment=experiment, lifecycle_stage=Lifecycle.ACTIVE)
    params = (
        Param.objects.filter(run__in=runs).values_list("key", flat=True).distinct().order_by("key")
    )
    metrics = (
        LatestMetric.objects.filter(run__in=runs)
        .values_list("key__name", flat=True)
        .distinct()
        .order_by("key__name")
    )
    return {"params": list(params), "metrics": list(metrics)}


def experiment_runs(*, experiment: Experiment) -> QuerySet[Run]:
    return Run.objects.filter(experiment=experiment, lifecycle_stage=Lifecycle.ACTIVE)


def runs_with_values(runs: Iterable[Run]) -> list[Run]:
    """The runs with their params, tags, inputs and latest metrics loaded
    (a fixed number of queries), each with ``param_map`` and ``metric_map``."""
    ids = [r.pk for r in runs]
    loaded = {r.pk: r for r in runs_with_data(Run.objects.filter(pk__in=ids))}
    out = []
    for pk in ids:
        run = loaded[pk]
        run.param_map = {p.key: p.value for p in run.params.all()}  # type: ignore[attr-defined]
        run.metric_map = {m.key.name: m.value for m in run.latest_metrics.all()}  # type: ignore[attr-defined]
        out.append(run)
    return out


def run_for_project(*, project: Project, run_uuid: str) -> Run | None:
    return (
        runs_with_data(Run.objects.filter(uuid=run_uuid, experiment__project=project))
        .select_related("user")
        .first()
    )


def run_artifact_root(run: Run) -> str | None:
    """The folder of the run's artifacts in the project's store: the path of its
    ``mlflow-artifacts:/<experiment>/<run>/artifacts`` URI, or None when the run
    keeps them elsewhere."""
    try:
        return artifact_path_of(run.artifact_uri)
    except MlflowError:
        return None


def finite(value: float) -> float | None:
    """A value JSON can carry: NaN and ±Infinity become gaps."""
    return value if math.isfinite(value) else None


def metric_histories(*, run: Run, max_points: int = MAX_POINTS) -> dict[str, dict[str, Any]]:
    """Each metric's points over steps, at most ``max_points`` per series: a
    long series keeps every n-th point (two queries for any number of keys)."""
    counts = {
        row["key_id"]: (row["key__name"], row["n"])
        for row in Metric.objects.filter(run=run)
        .values("key_id", "key__name")
        .annotate(n=Count("id"))
    }
    if not counts:
        return {}
    strides = {key_id: max(1, math.ceil(n / max_points)) for key_id, (_, n) in counts.items()}
    stride = Case(
        *[When(key_id=key_id, then=Value(s)) for key_id, s in strides.items()],
        default=Value(1),
        output_field=IntegerField(),
    )
    points = (
        Metric.objects.filter(run=run)
        .annotate(
            rn=Window(
                RowNumber(),
                partition_by=[F("key_id")],
                order_by=[F("step").asc(), F("timestamp").asc(), F("id").asc()],
            )
        )
        .annotate(keep=Mod(F("rn") - 1, stride))
        .filter(keep=0)
        .order_by("key_id", "rn")
        .values_list("key_id", "step", "value")
    )
    series: dict[str, dict[str, Any]] = {
        name: {"steps": [], "values": [], "total": n, "stride": strides[key_id]}
        for key_id, (name, n) in sorted(counts.items(), key=lambda kv: kv[1][0])
    }
    for key_id, step, value in points:
        entry = series[counts[key_id][0]]
        entry["steps"].append(step)
        entry["values"].append(finite(value))
    return series


def split_of_tag(value: str) -> tuple[int, int, int] | None:
    """``<source id>/v<version>/<split number>`` as numbers, or None."""
    match = SPLIT_TAG_RE.match(value.strip())
    if not match:
        return None
    return int(match["source"]), int(match["version"]), int(match["number"])


def snapshots_by_digest(*, project: Project, digests: Iterable[str]) -> dict[str, Snapshot]:
    """The project's snapshots whose sha256 is one of the digests (one query)."""
    wanted = {d for d in digests if d}
    if not wanted:
        return {}
    found = Snapshot.objects.filter(source__project=project, sha256__in=wanted).select_related(
        "source"
    )
    return {s.sha256: s for s in found.order_by("source_id", "version")}


def run_lineage(*, project: Project, run: Run) -> dict[str, Any]:
    """The run's dataset inputs, each with the snapshot it names when the digest
    matches one of the project's, its split, and the model versions made from it."""
    inputs = list(run.inputs.all())
    snapshots = snapshots_by_digest(project=project, digests=[i.digest for i in inputs])
    split = None
    tag = next((t.value for t in run.tags.all() if t.key == SPLIT_TAG), None)
    parsed = split_of_tag(tag) if tag else None
    if parsed:
        split = (
            Split.objects.filter(
                parent__source__project=project,
                parent__source_id=parsed[0],
                parent__version=parsed[1],
                number=parsed[2],
            )
            .select_related("parent__source")
            .first()
        )
    versions = list(
        ModelVersion.objects.filter(run=run)
        .select_related("registered_model")
        .prefetch_related("aliases")
        .order_by("registered_model__name", "-version")
    )
    return {
        "inputs": [(i, snapshots.get(i.digest)) for i in inputs],
        "split_tag": tag,
        "split": split,
        "versions": versions,
    }


def registered_models(*, project: Project) -> QuerySet[RegisteredModel]:
    return (
        RegisteredModel.objects.filter(project=project)
        .annotate(version_count=Count("versions", distinct=True), latest=Max("versions__version"))
        .prefetch_related("aliases__version")
        .order_by("name")
    )


def registered_model(*, project: Project, name: str) -> RegisteredModel | None:
    return RegisteredModel.objects.filter(project=project, name=name).first()


def versions_with_lineage(
    *, project: Project, versions: QuerySet[ModelVersion]
) -> list[ModelVersion]:
    """The versions, each with ``snapshots``: the project's snapshots its run
    used (a fixed number of queries)."""
    loaded = list(
        versions.select_related("run__experiment", "user", "registered_model").prefetch_related(
            "aliases"
        )
    )
    run_ids = [v.run_id for v in loaded if v.run_id]
    digests: dict[int, list[str]] = defaultdict(list)
    for run_id, digest in RunInput.objects.filter(run_id__in=run_ids).values_list(
        "run_id", "digest"
    ):
        digests[run_id].append(digest)
    snapshots = snapshots_by_digest(
        project=project, digests=[d for ds in digests.values() for d in ds]
    )
    for v in loaded:
        seen: list[Snapshot] = []
        for d in digests.get(v.run_id or 0, []):
            s = snapshots.get(d)
            if s is not None and s not in seen:
                seen.append(s)
        v.snapshots = seen  # type: ignore[attr-defined]
    return loaded


def model_version(*, project: Project, name: str, version: int) -> ModelVersion | None:
    found = versions_with_lineage(
        project=project,
        versions=ModelVersion.objects.filter(
            registered_model__project=project, registered_model__name=name, version=version
        ),
    )
    return found[0] if found else None


def snapshot_runs(*, snapshot: Snapshot) -> dict[str, Any]:
    """The runs that used the snapshot (an input with its digest, or a split of
    it named by the ``stagegate.split`` tag) and the model versions made from them."""
    project_id = snapshot.source.project_id
    split_values = [
        f"{snapshot.source_id}/v{snapshot.version}/{n}"
        for n in Split.objects.filter(parent=snapshot).values_list("number", flat=True)
    ]
    runs = list(
        Run.objects.filter(experiment__project_id=project_id, lifecycle_stage=Lifecycle.ACTIVE)
        .filter(
            Q(pk__in=RunInput.objects.filter(digest=snapshot.sha256).values("run_id"))
            | Q(pk__in=RunTag.objects.filter(key=SPLIT_TAG, value__in=split_values).values("run"))
        )
        .select_related("experiment")
        .order_by(F("start_time").desc(nulls_last=True))[:100]
    )
    versions = list(
        ModelVersion.objects.filter(run__in=[r.pk for r in runs])
        .select_related("registered_model", "run")
        .prefetch_related("aliases")
        .order_by("registered_model__name", "-version")
    )
    return {"runs": runs, "versions": versions}
