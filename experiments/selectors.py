"""Reads of tracking data, with their joins done, and their MLflow JSON."""

from __future__ import annotations

import json
import math
from typing import Any

from django.db import connection
from django.db.models import Prefetch, QuerySet

from experiments.errors import not_found
from experiments.models import (
    Experiment,
    LatestMetric,
    Lifecycle,
    LoggedModel,
    ModelVersion,
    RegisteredModel,
    Run,
)
from projects.models import Project


def float_json(value: float) -> float | str:
    """Floats as protobuf's JSON writes them: NaN and ±Infinity as strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _kv(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items()]


def experiment_get(project: Project, experiment_id: str) -> Experiment:
    experiment = (
        Experiment.objects.filter(project=project, pk=int(experiment_id)).first()
        if experiment_id.isdigit() and len(experiment_id) < 19
        else None
    )
    if experiment is None:
        raise not_found(f"No Experiment with id={experiment_id} exists")
    return experiment


def experiment_json(e: Experiment) -> dict[str, Any]:
    return {
        "experiment_id": str(e.pk),
        "name": e.name,
        "artifact_location": e.artifact_location,
        "lifecycle_stage": e.lifecycle_stage,
        "creation_time": e.creation_time,
        "last_update_time": e.last_update_time,
        "tags": _kv(e.tags),
    }


def runs_with_data(runs: QuerySet[Run]) -> QuerySet[Run]:
    return runs.select_related("experiment").prefetch_related(
        "params",
        "tags",
        "inputs",
        Prefetch("latest_metrics", queryset=LatestMetric.objects.select_related("key")),
    )


def run_get(project: Project, run_id: str, *, with_data: bool = True) -> Run:
    """One run of the project; ``with_data=False`` skips its params, tags,
    inputs and metrics (the logging endpoints need only the row)."""
    runs = Run.objects.filter(uuid=run_id, experiment__project=project)
    runs = runs_with_data(runs) if with_data else runs.select_related("experiment__project")
    run = runs.first()
    if run is None:
        raise not_found(f"Run with id={run_id} not found")
    return run


def run_info_json(run: Run) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_id": run.uuid,
        "run_uuid": run.uuid,
        "run_name": run.name,
        "experiment_id": str(run.experiment_id),
        "user_id": run.user_id_text,
        "status": run.status,
        "artifact_uri": run.artifact_uri,
        "lifecycle_stage": run.lifecycle_stage,
    }
    if run.start_time is not None:
        info["start_time"] = run.start_time
    if run.end_time is not None:
        info["end_time"] = run.end_time
    return info


def run_json(run: Run) -> dict[str, Any]:
    return {
        "info": run_info_json(run),
        "data": {
            "metrics": [
                {
                    "key": m.key.name,
                    "value": float_json(m.value),
                    "timestamp": m.timestamp,
                    "step": m.step,
                }
                for m in run.latest_metrics.all()
            ],
            "params": [{"key": p.key, "value": p.value} for p in run.params.all()],
            "tags": [{"key": t.key, "value": t.value} for t in run.tags.all()],
        },
        "inputs": {
            "dataset_inputs": [
                {
                    "tags": [{"key": "mlflow.data.context", "value": i.context}]
                    if i.context
                    else [],
                    "dataset": {
                        "name": i.name,
                        "digest": i.digest,
                        "source_type": i.source_type,
                        "source": i.source,
                        "schema": i.schema,
                        "profile": i.profile,
                    },
                }
                for i in run.inputs.all()
            ]
        },
    }


# The ``run_json`` of many runs, built by PostgreSQL in one query: the page's
# ids in order, each run's latest metrics, params, tags and inputs in a
# correlated subquery on their (run, ...) index. Floats come out as float8's
# shortest exact text (-0 as -0.0, keeping its sign through a JSON parser) and
# NaN / ±Infinity as the strings protobuf's JSON uses.
_RUNS_JSON_SQL = """
SELECT coalesce(json_agg(j ORDER BY ord), '[]')::text FROM (
SELECT u.ord, json_build_object(
  'info', json_strip_nulls(json_build_object(
    'run_id', r.uuid, 'run_uuid', r.uuid, 'run_name', r.name,
    'experiment_id', r.experiment_id::text, 'user_id', r.user_id_text, 'status', r.status,
    'artifact_uri', r.artifact_uri, 'lifecycle_stage', r.lifecycle_stage,
    'start_time', r.start_time, 'end_time', r.end_time)),
  'data', json_build_object(
    'metrics', coalesce((
      SELECT json_agg(json_build_object(
        'key', k.name,
        'value', CASE WHEN m.value = 0 AND m.value::text = '-0' THEN '-0.0'::json ELSE to_json(m.value) END,
        'timestamp', m.timestamp, 'step', m.step) ORDER BY m.id)
      FROM experiments_latestmetric m JOIN experiments_metrickey k ON k.id = m.key_id
      WHERE m.run_id = r.id), '[]'),
    'params', coalesce((
      SELECT json_agg(json_build_object('key', p.key, 'value', p.value) ORDER BY p.id)
      FROM experiments_param p WHERE p.run_id = r.id), '[]'),
    'tags', coalesce((
      SELECT json_agg(json_build_object('key', t.key, 'value', t.value) ORDER BY t.id)
      FROM experiments_runtag t WHERE t.run_id = r.id), '[]')),
  'inputs', json_build_object('dataset_inputs', coalesce((
    SELECT json_agg(json_build_object(
      'tags', CASE WHEN i.context <> ''
        THEN json_build_array(json_build_object('key', 'mlflow.data.context', 'value', i.context))
        ELSE '[]' END,
      'dataset', json_build_object(
        'name', i.name, 'digest', i.digest, 'source_type', i.source_type, 'source', i.source,
        'schema', i.schema, 'profile', i.profile)) ORDER BY i.id)
    FROM experiments_runinput i WHERE i.run_id = r.id), '[]'))
) AS j
FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(id, ord) JOIN experiments_run r ON r.id = u.id
) page
"""


def runs_json_text(run_ids: list[int]) -> str:
    """The JSON array of ``run_json`` of the runs, in the order of ``run_ids``:
    on PostgreSQL one query, and no model instance built."""
    if not run_ids:
        return "[]"
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_RUNS_JSON_SQL, [run_ids])
            row = cursor.fetchone()
        return str(row[0])
    by_id = {r.pk: r for r in runs_with_data(Run.objects.filter(pk__in=run_ids))}
    return json.dumps([run_json(by_id[pk]) for pk in run_ids if pk in by_id])


def run_view_filter(runs: QuerySet[Run], view_type: str) -> QuerySet[Run]:
    if view_type == "DELETED_ONLY":
        return runs.filter(lifecycle_stage=Lifecycle.DELETED)
    if view_type == "ALL":
        return runs
    return runs.filter(lifecycle_stage=Lifecycle.ACTIVE)


def logged_model_get(project: Project, model_id: str) -> LoggedModel:
    model = (
        LoggedModel.objects.select_related("experiment__project", "source_run")
        .filter(model_id=model_id, experiment__project=project)
        .first()
    )
    if model is None:
        raise not_found(f"Logged model with ID '{model_id}' not found.")
    return model


def logged_model_json(m: LoggedModel) -> dict[str, Any]:
    return {
        "info": {
            "model_id": m.model_id,
            "experiment_id": str(m.experiment_id),
            "name": m.name,
            "creation_timestamp_ms": m.creation_time,
            "last_updated_timestamp_ms": m.last_update_time,
            "artifact_uri": m.artifact_location,
            "status": m.status,
            "creator_id": m.creator_id or 0,
            "model_type": m.model_type,
            "source_run_id": m.source_run.uuid if m.source_run else "",
            "status_message": m.status_message,
            "tags": _kv(m.tags),
        },
        "data": {"params": _kv(m.params), "metrics": []},
    }


def registered_model_get(project: Project, name: str) -> RegisteredModel:
    model = RegisteredModel.objects.filter(project=project, name=name).first()
    if model is None:
        raise not_found(f"Registered Model with name={name} not found")
    return model


def model_version_get(project: Project, name: str, version: str) -> ModelVersion:
    found = (
        ModelVersion.objects.select_related(
            "registered_model__project", "run", "logged_model", "user"
        )
        .prefetch_related("aliases")
        .filter(
            registered_model__project=project,
            registered_model__name=name,
            version=int(version) if str(version).isdigit() and len(str(version)) < 10 else -1,
        )
        .first()
    )
    if found is None:
        raise not_found(f"Model Version (name={name}, version={version}) not found")
    return found


def model_version_json(v: ModelVersion) -> dict[str, Any]:
    return {
        "name": v.registered_model.name,
        "version": str(v.version),
        "creation_timestamp": v.creation_time,
        "last_updated_timestamp": v.last_update_time,
        "user_id": v.user.get_username() if v.user else "",
        "current_stage": v.current_stage,
        "description": v.description,
        "source": v.source,
        "run_id": v.run.uuid if v.run else "",
        "status": "READY",
        "tags": _kv(v.tags),
        "run_link": v.run_link,
        "aliases": [a.alias for a in v.aliases.all()],
        "model_id": v.logged_model.model_id if v.logged_model else "",
    }


def registered_model_json(m: RegisteredModel) -> dict[str, Any]:
    versions = list(
        m.versions.select_related("run", "logged_model", "user", "registered_model")
        .prefetch_related("aliases")
        .order_by("-version")[:1]
    )
    return {
        "name": m.name,
        "creation_timestamp": m.creation_time,
        "last_updated_timestamp": m.last_update_time,
        "description": m.description,
        "tags": _kv(m.tags),
        "aliases": [
            {"alias": a.alias, "version": str(a.version.version)}
            for a in m.aliases.select_related("version")
        ],
        "latest_versions": [model_version_json(v) for v in versions],
    }
