"""Every write to tracking data and the registry. Each function takes the
project the caller may write to (checked again here), runs in one
transaction and records its audit event in it; single metric points, params
and tags are not audited."""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError

from accounts.models import User
from audit.services import audit_record
from experiments.artifacts import ARTIFACT_SCHEME, artifact_path_of, clean_path
from experiments.errors import MlflowError, invalid, not_found
from experiments.models import (
    Experiment,
    LatestMetric,
    Lifecycle,
    LoggedModel,
    LoggedModelStatus,
    Metric,
    MetricKey,
    ModelAlias,
    ModelVersion,
    Param,
    RegisteredModel,
    Run,
    RunInput,
    RunStatus,
    RunTag,
)
from projects.models import Project
from projects.permissions import get_membership

MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_EXPERIMENT_TAG_VALUE = 5000
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_EXPERIMENT_NAME = 500
MAX_MODEL_NAME = 256
KEY_RE = re.compile(r"^[/\w.\- :]*$")
RUN_NAME_TAG = "mlflow.runName"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    timestamp: int
    step: int


def _writable(actor: User, project: Project) -> None:
    """The check of ``get_tracking_project_for_user(write=True)`` on a project
    already in hand: the membership alone, one query."""
    membership = get_membership(actor, project)
    if membership is None and not getattr(actor, "is_staff", False):
        raise MlflowError(f"Project '{project.slug}' does not exist.", "RESOURCE_DOES_NOT_EXIST")
    if membership is None or not membership.can_write:
        raise MlflowError("Your role in this project is read-only.", "PERMISSION_DENIED")


def validate_key(kind: str, key: str) -> str:
    if not key:
        raise invalid(f"Missing value for required parameter '{kind} key'.")
    if len(key) > MAX_KEY:
        raise invalid(
            f"{kind.capitalize()} key '{key[:40]}...' had length {len(key)}, "
            f"which exceeded length limit of {MAX_KEY}."
        )
    parts = key.split("/")
    if not KEY_RE.match(key) or key.startswith("/") or any(p in (".", "..") for p in parts):
        raise invalid(
            f"Invalid {kind} name: '{key}'. Names may only contain alphanumerics, "
            "underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/), "
            "and may not be an absolute or relative path."
        )
    return key


def _validate_value(kind: str, key: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise invalid(
            f"{kind.capitalize()} value '{value[:40]}...' for key '{key}' had length "
            f"{len(value)}, which exceeded length limit of {limit}."
        )


# --- experiments ----------------------------------------------------------


def _experiment_name(name: str) -> str:
    if not name or not name.strip():
        raise invalid("Invalid experiment name: ''. Experiment names must be non-empty.")
    if len(name) > MAX_EXPERIMENT_NAME:
        raise invalid(f"Experiment name exceeds the maximum length of {MAX_EXPERIMENT_NAME}.")
    return name


def experiment_create(
    *,
    actor: User,
    project: Project,
    name: str,
    artifact_location: str = "",
    tags: dict[str, str] | None = None,
) -> Experiment:
    _writable(actor, project)
    name = _experiment_name(name)
    if artifact_location and artifact_path_of(artifact_location) is None:
        raise invalid(
            f"Artifact location '{artifact_location}' is not allowed: experiments of this "
            f"portal keep their artifacts under '{ARTIFACT_SCHEME}/'."
        )
    for key, value in (tags or {}).items():
        validate_key("tag", key)
        _validate_value("tag", key, value, MAX_EXPERIMENT_TAG_VALUE)
    stamp = now_ms()
    try:
        with transaction.atomic():
            experiment = Experiment.objects.create(
                project=project,
                name=name,
                tags=tags or {},
                creation_time=stamp,
                last_update_time=stamp,
            )
            experiment.artifact_location = artifact_location or f"{ARTIFACT_SCHEME}/{experiment.pk}"
            experiment.save(update_fields=["artifact_location"])
            audit_record(
                action="experiment.created",
                actor=actor,
                project=project,
                obj=experiment,
                payload={"name": name},
            )
    except IntegrityError:
        raise MlflowError(
            f"Experiment '{name}' already exists.", "RESOURCE_ALREADY_EXISTS"
        ) from None
    return experiment


def _experiment_lifecycle(
    *, actor: User, experiment: Experiment, stage: str, action: str
) -> Experiment:
    _writable(actor, experiment.project)
    with transaction.atomic():
        experiment.lifecycle_stage = stage
        experiment.last_update_time = now_ms()
        experiment.save(update_fields=["lifecycle_stage", "last_update_time"])
        Run.objects.filter(experiment=experiment).update(
            lifecycle_stage=stage,
            deleted_time=now_ms() if stage == Lifecycle.DELETED else None,
        )
        audit_record(
            action=action, actor=actor, project=experiment.project, obj=experiment, payload={}
        )
    return experiment


def experiment_delete(*, actor: User, experiment: Experiment) -> Experiment:
    return _experiment_lifecycle(
        actor=actor, experiment=experiment, stage=Lifecycle.DELETED, action="experiment.deleted"
    )


def experiment_restore(*, actor: User, experiment: Experiment) -> Experiment:
    return _experiment_lifecycle(
        actor=actor, experiment=experiment, stage=Lifecycle.ACTIVE, action="experiment.restored"
    )


def experiment_rename(*, actor: User, experiment: Experiment, new_name: str) -> Experiment:
    _writable(actor, experiment.project)
    new_name = _experiment_name(new_name)
    old = experiment.name
    try:
        with transaction.atomic():
            experiment.name = new_name
            experiment.last_update_time = now_ms()
            experiment.save(update_fields=["name", "last_update_time"])
            audit_record(
                action="experiment.renamed",
                actor=actor,
                project=experiment.project,
                obj=experiment,
                payload={"from": old, "to": new_name},
            )
    except IntegrityError:
        raise MlflowError(
            f"Experiment '{new_name}' already exists.", "RESOURCE_ALREADY_EXISTS"
        ) from None
    return experiment


def experiment_tag_set(*, actor: User, experiment: Experiment, key: str, value: str) -> None:
    _writable(actor, experiment.project)
    validate_key("tag", key)
    _validate_value("tag", key, value, MAX_EXPERIMENT_TAG_VALUE)
    with transaction.atomic():
        locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
        locked.tags[key] = value
        locked.save(update_fields=["tags"])


def experiment_tag_delete(*, actor: User, experiment: Experiment, key: str) -> None:
    _writable(actor, experiment.project)
    with transaction.atomic():
        locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if key not in locked.tags:
            raise not_found(f"No tag with name: {key} in experiment {experiment.pk}.")
        del locked.tags[key]
        locked.save(update_fields=["tags"])


# --- runs -----------------------------------------------------------------


def _active_run(run: Run) -> None:
    if run.lifecycle_stage != Lifecycle.ACTIVE:
        raise MlflowError(
            f"The run {run.uuid} must be in the 'active' state. "
            f"Current state is {run.lifecycle_stage}.",
            "INVALID_STATE",
        )


def run_create(
    *,
    actor: User,
    experiment: Experiment,
    run_name: str = "",
    start_time: int | None = None,
    tags: dict[str, str] | None = None,
) -> Run:
    _writable(actor, experiment.project)
    if experiment.lifecycle_stage != Lifecycle.ACTIVE:
        raise MlflowError(
            f"The experiment {experiment.pk} must be in the 'active' state. "
            f"Current state is {experiment.lifecycle_stage}.",
            "INVALID_STATE",
        )
    tags = dict(tags or {})
    for key, value in tags.items():
        validate_key("tag", key)
        _validate_value("tag", key, value, MAX_TAG_VALUE)
    name = run_name or tags.get(RUN_NAME_TAG, "")
    if run_name and tags.get(RUN_NAME_TAG, run_name) != run_name:
        raise invalid(
            f"Both 'run_name' argument and 'mlflow.runName' tag are specified, but with "
            f"different values (run_name='{run_name}', mlflow.runName='{tags[RUN_NAME_TAG]}')."
        )
    run_uuid = uuid.uuid4().hex
    name = (name or f"run-{run_uuid[:8]}")[:MAX_KEY]
    tags[RUN_NAME_TAG] = name
    with transaction.atomic():
        run = Run.objects.create(
            uuid=run_uuid,
            experiment=experiment,
            user=actor,
            user_id_text=actor.get_username(),
            name=name,
            status=RunStatus.RUNNING,
            start_time=start_time if start_time is not None else now_ms(),
            artifact_uri=f"{experiment.artifact_location.rstrip('/')}/{run_uuid}/artifacts",
        )
        RunTag.objects.bulk_create([RunTag(run=run, key=k, value=v) for k, v in tags.items()])
        audit_record(
            action="run.created",
            actor=actor,
            project=experiment.project,
            obj=run,
            payload={"run_id": run_uuid, "experiment_id": experiment.pk, "name": name},
        )
    return run


def run_update(
    *,
    actor: User,
    run: Run,
    status: str | None = None,
    end_time: int | None = None,
    run_name: str | None = None,
) -> Run:
    _writable(actor, run.experiment.project)
    _active_run(run)
    fields = []
    if status:
        if status not in RunStatus.values:
            raise invalid(f"Invalid value '{status}' for parameter 'status'.")
        run.status = status
        fields.append("status")
    if end_time is not None:
        run.end_time = end_time
        fields.append("end_time")
    with transaction.atomic():
        if run_name:
            if len(run_name) > MAX_KEY:
                raise invalid(f"Run name exceeds the maximum length of {MAX_KEY}.")
            run.name = run_name
            fields.append("name")
            RunTag.objects.update_or_create(run=run, key=RUN_NAME_TAG, defaults={"value": run_name})
        if fields:
            run.save(update_fields=fields)
    return run


def _run_lifecycle(*, actor: User, run: Run, stage: str, action: str) -> Run:
    _writable(actor, run.experiment.project)
    with transaction.atomic():
        run.lifecycle_stage = stage
        run.deleted_time = now_ms() if stage == Lifecycle.DELETED else None
        run.save(update_fields=["lifecycle_stage", "deleted_time"])
        audit_record(
            action=action,
            actor=actor,
            project=run.experiment.project,
            obj=run,
            payload={"run_id": run.uuid},
        )
    return run


def run_delete(*, actor: User, run: Run) -> Run:
    return _run_lifecycle(actor=actor, run=run, stage=Lifecycle.DELETED, action="run.deleted")


def run_restore(*, actor: User, run: Run) -> Run:
    return _run_lifecycle(actor=actor, run=run, stage=Lifecycle.ACTIVE, action="run.restored")


def _metric_keys(names: Iterable[str]) -> dict[str, MetricKey]:
    wanted = set(names)
    found = {k.name: k for k in MetricKey.objects.filter(name__in=wanted)}
    missing = wanted - found.keys()
    if missing:
        MetricKey.objects.bulk_create(
            [MetricKey(name=n) for n in sorted(missing)], ignore_conflicts=True
        )
        found = {k.name: k for k in MetricKey.objects.filter(name__in=wanted)}
    return found


def _order(point: MetricPoint) -> tuple[int, int, float]:
    value = point.value
    return (point.step, point.timestamp, -math.inf if math.isnan(value) else value)


# A run's latest point per key: the highest (step, timestamp, value), NaN
# counting as the lowest value (``_order``), the first of equals in a batch;
# and the key's lowest and highest value (NaN left out) moved outwards.
_NEWER = """(EXCLUDED.step, EXCLUDED.timestamp,
       CASE WHEN EXCLUDED.value = 'NaN' THEN '-Infinity'::float8 ELSE EXCLUDED.value END)
   >= (old.step, old.timestamp,
       CASE WHEN old.value = 'NaN' THEN '-Infinity'::float8 ELSE old.value END)"""
_POINTS_SQL = """
WITH pts AS (
    SELECT * FROM unnest(%(keys)s::bigint[], %(steps)s::bigint[], %(stamps)s::bigint[],
                         %(values)s::float8[]) WITH ORDINALITY AS p(key_id, step, ts, value, ord)
), appended AS (
    INSERT INTO {metric} (run_id, key_id, step, timestamp, value)
    SELECT %(run)s, key_id, step, ts, value FROM pts
), newest AS (
    SELECT DISTINCT ON (key_id) key_id, step, ts, value FROM pts
    ORDER BY key_id, step DESC, ts DESC,
             CASE WHEN value = 'NaN' THEN '-Infinity'::float8 ELSE value END DESC, ord
), bounds AS (
    SELECT key_id, min(value) FILTER (WHERE value <> 'NaN') AS low,
           max(value) FILTER (WHERE value <> 'NaN') AS high
    FROM pts GROUP BY key_id
)
INSERT INTO {latest} AS old (run_id, key_id, step, timestamp, value, low, high)
SELECT %(run)s, n.key_id, n.step, n.ts, n.value, b.low, b.high
FROM newest n JOIN bounds b ON b.key_id = n.key_id
ON CONFLICT (run_id, key_id) DO UPDATE
SET step = CASE WHEN {newer} THEN EXCLUDED.step ELSE old.step END,
    timestamp = CASE WHEN {newer} THEN EXCLUDED.timestamp ELSE old.timestamp END,
    value = CASE WHEN {newer} THEN EXCLUDED.value ELSE old.value END,
    low = LEAST(old.low, EXCLUDED.low),
    high = GREATEST(old.high, EXCLUDED.high)
"""


def _metric_points_write(run: Run, keys: dict[str, MetricKey], points: list[MetricPoint]) -> None:
    """Append the points and move the run's latest point of each key forward.

    Metric points are the bulk of the tracking server's writes: on PostgreSQL
    both happen in one statement (atomic on its own), the points passed as
    four arrays, so a batch of 1,000 costs one round trip and builds no model
    instance; elsewhere the same in Python."""
    key_ids = {name: k.pk for name, k in keys.items()}
    if connection.vendor == "postgresql":
        sql = _POINTS_SQL.format(
            metric=connection.ops.quote_name(Metric._meta.db_table),
            latest=connection.ops.quote_name(LatestMetric._meta.db_table),
            newer=_NEWER,
        )
        with connection.cursor() as cursor:
            cursor.execute(
                sql,
                {
                    "run": run.pk,
                    "keys": [key_ids[p.key] for p in points],
                    "steps": [p.step for p in points],
                    "stamps": [p.timestamp for p in points],
                    "values": [p.value for p in points],
                },
            )
        return
    Metric.objects.bulk_create(
        [
            Metric(
                run=run, key_id=key_ids[p.key], step=p.step, timestamp=p.timestamp, value=p.value
            )
            for p in points
        ]
    )
    newest: dict[str, MetricPoint] = {}
    bounds: dict[str, tuple[float | None, float | None]] = {}
    for point in points:
        if point.key not in newest or _order(point) > _order(newest[point.key]):
            newest[point.key] = point
        low, high = bounds.get(point.key, (None, None))
        bounds[point.key] = _widened(low, high, point.value)
    current = {
        lm.key_id: lm
        for lm in LatestMetric.objects.filter(run=run, key_id__in=[key_ids[k] for k in newest])
    }
    rows = []
    for name, point in newest.items():
        latest = current.get(key_ids[name])
        low, high = bounds[name]
        if latest is not None:
            low, high = _widened(*_widened(low, high, latest.low), latest.high)
            if _order(point) < _order(
                MetricPoint(name, latest.value, latest.timestamp, latest.step)
            ):
                point = MetricPoint(name, latest.value, latest.timestamp, latest.step)
        rows.append(
            LatestMetric(
                run=run,
                key_id=key_ids[name],
                step=point.step,
                timestamp=point.timestamp,
                value=point.value,
                low=low,
                high=high,
            )
        )
    LatestMetric.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["run", "key"],
        update_fields=["step", "timestamp", "value", "low", "high"],
    )


def _widened(
    low: float | None, high: float | None, value: float | None
) -> tuple[float | None, float | None]:
    """The bounds with ``value`` in them (``None`` and NaN leave them as they are)."""
    if value is None or math.isnan(value):
        return low, high
    return (value if low is None else min(low, value)), (
        value if high is None else max(high, value)
    )


def run_log_batch(
    *,
    actor: User,
    run: Run,
    metrics: list[MetricPoint],
    params: dict[str, str],
    tags: dict[str, str],
) -> None:
    """Params are write-once, metrics append, tags overwrite (MLflow's rules)."""
    _writable(actor, run.experiment.project)
    _active_run(run)
    if len(metrics) > MAX_METRICS_PER_BATCH:
        raise invalid(
            f"A batch logging request can contain at most {MAX_METRICS_PER_BATCH} metrics. "
            f"Got {len(metrics)} metrics."
        )
    if len(params) > MAX_PARAMS_TAGS_PER_BATCH or len(tags) > MAX_PARAMS_TAGS_PER_BATCH:
        raise invalid(
            f"A batch logging request can contain at most {MAX_PARAMS_TAGS_PER_BATCH} params "
            f"and {MAX_PARAMS_TAGS_PER_BATCH} tags."
        )
    if len(metrics) + len(params) + len(tags) > MAX_ENTITIES_PER_BATCH:
        raise invalid(
            f"A batch logging request can contain at most {MAX_ENTITIES_PER_BATCH} "
            "metrics, params and tags in total."
        )
    for key in dict.fromkeys(p.key for p in metrics):
        validate_key("metric", key)
    for key, value in params.items():
        validate_key("param", key)
        _validate_value("param", key, value, MAX_PARAM_VALUE)
    for key, value in tags.items():
        validate_key("tag", key)
        _validate_value("tag", key, value, MAX_TAG_VALUE)
    if not params and not tags:
        # Metrics alone: one statement, a transaction of its own.
        if metrics:
            _metric_points_write(run, _metric_keys(p.key for p in metrics), metrics)
        return
    with transaction.atomic():
        Run.objects.select_for_update().filter(pk=run.pk).first()
        if params:
            existing = dict(
                Param.objects.filter(run=run, key__in=params).values_list("key", "value")
            )
            for key, value in params.items():
                if key in existing and existing[key] != value:
                    raise invalid(
                        "Changing param values is not allowed. Param with key="
                        f"'{key}' was already logged with value='{existing[key]}' for run "
                        f"ID='{run.uuid}'. Attempted logging new value '{value}'."
                    )
            Param.objects.bulk_create(
                [Param(run=run, key=k, value=v) for k, v in params.items() if k not in existing]
            )
        if tags:
            RunTag.objects.bulk_create(
                [RunTag(run=run, key=k, value=v) for k, v in tags.items()],
                update_conflicts=True,
                unique_fields=["run", "key"],
                update_fields=["value"],
            )
            if RUN_NAME_TAG in tags:
                run.name = tags[RUN_NAME_TAG][:MAX_KEY]
                run.save(update_fields=["name"])
        if metrics:
            _metric_points_write(run, _metric_keys(p.key for p in metrics), metrics)


def run_tag_delete(*, actor: User, run: Run, key: str) -> None:
    _writable(actor, run.experiment.project)
    _active_run(run)
    deleted, _ = RunTag.objects.filter(run=run, key=key).delete()
    if not deleted:
        raise not_found(f"No tag with name: {key} in run with id {run.uuid}")


def run_log_inputs(*, actor: User, run: Run, datasets: list[dict[str, Any]]) -> None:
    _writable(actor, run.experiment.project)
    _active_run(run)
    with transaction.atomic():
        for item in datasets:
            RunInput.objects.get_or_create(
                run=run,
                name=item["name"],
                digest=item["digest"],
                context=item.get("context", ""),
                defaults={
                    "source_type": item["source_type"],
                    "source": item["source"],
                    "schema": item.get("schema", ""),
                    "profile": item.get("profile", ""),
                },
            )


# --- logged models (MLflow 3) ---------------------------------------------


def logged_model_create(
    *,
    actor: User,
    experiment: Experiment,
    name: str,
    model_type: str = "",
    source_run: Run | None = None,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
) -> LoggedModel:
    _writable(actor, experiment.project)
    model_id = f"m-{uuid.uuid4().hex}"
    stamp = now_ms()
    if len(name) > MAX_KEY:
        raise invalid(f"Model name exceeds the maximum length of {MAX_KEY}.")
    with transaction.atomic():
        model = LoggedModel.objects.create(
            model_id=model_id,
            experiment=experiment,
            name=name or model_id,
            model_type=model_type[:100],
            source_run=source_run,
            artifact_location=(
                f"{experiment.artifact_location.rstrip('/')}/models/{model_id}/artifacts"
            ),
            creator=actor,
            params=params or {},
            tags=tags or {},
            creation_time=stamp,
            last_update_time=stamp,
        )
        audit_record(
            action="logged_model.created",
            actor=actor,
            project=experiment.project,
            obj=model,
            payload={"model_id": model_id, "name": model.name},
        )
    return model


def logged_model_update(
    *,
    actor: User,
    model: LoggedModel,
    status: str | None = None,
    tags: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    delete_tag: str | None = None,
) -> LoggedModel:
    _writable(actor, model.experiment.project)
    with transaction.atomic():
        locked = LoggedModel.objects.select_for_update().get(pk=model.pk)
        if status:
            if status not in LoggedModelStatus.values:
                raise invalid(f"Invalid value '{status}' for parameter 'status'.")
            locked.status = status
        locked.tags.update(tags or {})
        for key, value in (params or {}).items():
            locked.params.setdefault(key, value)
        if delete_tag is not None:
            locked.tags.pop(delete_tag, None)
        locked.last_update_time = now_ms()
        locked.save()
    return locked


def logged_model_delete(*, actor: User, model: LoggedModel) -> None:
    _writable(actor, model.experiment.project)
    with transaction.atomic():
        model.lifecycle_stage = Lifecycle.DELETED
        model.save(update_fields=["lifecycle_stage"])
        audit_record(
            action="logged_model.deleted",
            actor=actor,
            project=model.experiment.project,
            obj=model,
            payload={"model_id": model.model_id},
        )


# --- registry -------------------------------------------------------------


def _model_name(name: str) -> str:
    if not name:
        raise invalid("Missing value for required parameter 'name'.")
    if len(name) > MAX_MODEL_NAME or "/" in name or ":" in name or "%" in name:
        raise invalid(
            f"Invalid model name: '{name}'. Names are at most {MAX_MODEL_NAME} characters "
            "and contain no '/', ':' or '%'."
        )
    return name


def registered_model_create(
    *,
    actor: User,
    project: Project,
    name: str,
    description: str = "",
    tags: dict[str, str] | None = None,
) -> RegisteredModel:
    _writable(actor, project)
    name = _model_name(name)
    stamp = now_ms()
    try:
        with transaction.atomic():
            model = RegisteredModel.objects.create(
                project=project,
                name=name,
                description=description,
                tags=tags or {},
                creation_time=stamp,
                last_update_time=stamp,
            )
            audit_record(
                action="registered_model.created",
                actor=actor,
                project=project,
                obj=model,
                payload={"name": name},
            )
    except IntegrityError:
        raise MlflowError(
            f"Registered Model (name={name}) already exists.", "RESOURCE_ALREADY_EXISTS"
        ) from None
    return model


def registered_model_update(
    *,
    actor: User,
    model: RegisteredModel,
    new_name: str | None = None,
    description: str | None = None,
    set_tags: dict[str, str] | None = None,
    delete_tag: str | None = None,
) -> RegisteredModel:
    _writable(actor, model.project)
    payload: dict[str, Any] = {}
    try:
        with transaction.atomic():
            locked = RegisteredModel.objects.select_for_update().get(pk=model.pk)
            if new_name is not None:
                payload["renamed"] = {"from": locked.name, "to": _model_name(new_name)}
                locked.name = new_name
            if description is not None:
                locked.description = description
                payload["description"] = True
            locked.tags.update(set_tags or {})
            if delete_tag is not None:
                locked.tags.pop(delete_tag, None)
            locked.last_update_time = now_ms()
            locked.save()
            audit_record(
                action="registered_model.updated",
                actor=actor,
                project=model.project,
                obj=locked,
                payload=payload,
            )
    except IntegrityError:
        raise MlflowError(
            f"Registered Model (name={new_name}) already exists.", "RESOURCE_ALREADY_EXISTS"
        ) from None
    return locked


def registered_model_delete(*, actor: User, model: RegisteredModel) -> None:
    _writable(actor, model.project)
    with transaction.atomic():
        audit_record(
            action="registered_model.deleted",
            actor=actor,
            project=model.project,
            obj=model,
            payload={"name": model.name},
        )
        _delete_unless_in_use(model, f"Registered model '{model.name}'")


def _resolve_source(project: Project, source: str) -> tuple[str, Run | None, LoggedModel | None]:
    """Where a version's files are: an ``mlflow-artifacts:`` URI of this project."""
    if source.startswith("models:/"):
        model_id = source[len("models:/") :].strip("/")
        logged = (
            LoggedModel.objects.select_related("source_run")
            .filter(model_id=model_id, experiment__project=project)
            .first()
        )
        if logged is None:
            raise invalid(f"Invalid model version source: '{source}'.")
        return logged.artifact_location, logged.source_run, logged
    if source.startswith("runs:/"):
        run_uuid, _, sub = source[len("runs:/") :].partition("/")
        run = Run.objects.filter(uuid=run_uuid, experiment__project=project).first()
        if run is None:
            raise invalid(f"Invalid model version source: '{source}'.")
        # MLflow 3 keeps a model logged in a run as a logged model of that name.
        logged = (
            LoggedModel.objects.filter(source_run=run, name=sub.strip("/"))
            .order_by("-creation_time")
            .first()
        )
        if logged is not None:
            return logged.artifact_location, run, logged
        return f"{run.artifact_uri}/{clean_path(sub, allow_empty=True)}".rstrip("/"), run, None
    path = artifact_path_of(source)
    if path is None:
        raise invalid(
            f"Invalid model version source: '{source}'. Use a 'models:/', 'runs:/' or "
            f"'{ARTIFACT_SCHEME}' URI of this project."
        )
    return f"{ARTIFACT_SCHEME}/{path}", None, None


def model_version_create(
    *,
    actor: User,
    model: RegisteredModel,
    source: str,
    run: Run | None = None,
    logged_model: LoggedModel | None = None,
    description: str = "",
    run_link: str = "",
    tags: dict[str, str] | None = None,
) -> ModelVersion:
    _writable(actor, model.project)
    if len(source) > 1000:
        raise invalid("The model version source is longer than 1000 characters.")
    location, source_run, source_model = _resolve_source(model.project, source)
    if logged_model is not None:
        location = logged_model.artifact_location
    if len(location) > 1000:
        raise invalid("The model version source is longer than 1000 characters.")
    run = run or source_run or (logged_model.source_run if logged_model else None)
    stamp = now_ms()
    with transaction.atomic():
        locked = RegisteredModel.objects.select_for_update().get(pk=model.pk)
        last = locked.versions.order_by("-version").values_list("version", flat=True).first()
        version = ModelVersion.objects.create(
            registered_model=locked,
            version=(last or 0) + 1,
            source=source,
            storage_location=location,
            run=run,
            logged_model=logged_model or source_model,
            user=actor,
            description=description,
            run_link=run_link[:500],
            tags=tags or {},
            creation_time=stamp,
            last_update_time=stamp,
        )
        locked.last_update_time = stamp
        locked.save(update_fields=["last_update_time"])
        audit_record(
            action="model_version.created",
            actor=actor,
            project=model.project,
            obj=version,
            payload={"name": locked.name, "version": version.version, "source": source},
        )
    return version


def model_version_update(
    *,
    actor: User,
    version: ModelVersion,
    description: str | None = None,
    set_tags: dict[str, str] | None = None,
    delete_tag: str | None = None,
    stage: str | None = None,
) -> ModelVersion:
    project = version.registered_model.project
    _writable(actor, project)
    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if description is not None:
            locked.description = description
        locked.tags.update(set_tags or {})
        if delete_tag is not None:
            locked.tags.pop(delete_tag, None)
        if stage is not None:
            locked.current_stage = stage
        locked.last_update_time = now_ms()
        locked.save()
        audit_record(
            action="model_version.updated",
            actor=actor,
            project=project,
            obj=locked,
            payload={"version": locked.version, "stage": stage},
        )
    locked.registered_model = version.registered_model
    return locked


def model_version_delete(*, actor: User, version: ModelVersion) -> None:
    project = version.registered_model.project
    _writable(actor, project)
    with transaction.atomic():
        audit_record(
            action="model_version.deleted",
            actor=actor,
            project=project,
            obj=version,
            payload={"name": version.registered_model.name, "version": version.version},
        )
        _delete_unless_in_use(
            version, f"Version {version.version} of '{version.registered_model.name}'"
        )


def _delete_unless_in_use(row: RegisteredModel | ModelVersion, what: str) -> None:
    """Delete ``row``, or refuse with INVALID_STATE while a later stage still
    uses it (a serving endpoint or deployment protects what it serves)."""
    try:
        with transaction.atomic():
            row.delete()
    except ProtectedError as exc:
        raise MlflowError(
            f"{what} is served by a deployment and cannot be deleted.", "INVALID_STATE"
        ) from exc


def alias_set(*, actor: User, version: ModelVersion, alias: str) -> None:
    model = version.registered_model
    _writable(actor, model.project)
    if not alias or len(alias) > MAX_MODEL_NAME or not re.match(r"^[\w\-]+$", alias):
        raise invalid(f"Invalid alias name: '{alias}'.")
    if alias.lower() == "latest" or re.match(r"^v\d+$", alias, re.I):
        raise invalid(f"'{alias}' is reserved and cannot be used as an alias.")
    with transaction.atomic():
        previous = (
            ModelAlias.objects.select_for_update()
            .filter(registered_model=model, alias=alias)
            .select_related("version")
            .first()
        )
        ModelAlias.objects.update_or_create(
            registered_model=model, alias=alias, defaults={"version": version}
        )
        audit_record(
            action="model_alias.set",
            actor=actor,
            project=model.project,
            obj=model,
            payload={
                "alias": alias,
                "version": version.version,
                "previous": previous.version.version if previous else None,
            },
        )


def alias_delete(*, actor: User, model: RegisteredModel, alias: str) -> None:
    _writable(actor, model.project)
    with transaction.atomic():
        deleted, _ = ModelAlias.objects.filter(registered_model=model, alias=alias).delete()
        if deleted:
            audit_record(
                action="model_alias.deleted",
                actor=actor,
                project=model.project,
                obj=model,
                payload={"alias": alias},
            )
