"""The MLflow REST API of one project (``/mlflow/<slug>/api/2.0/mlflow/...``)
and its artifact proxy (``.../api/2.0/mlflow-artifacts/artifacts/...``).

Plain Django views rather than DRF: the protocol, its JSON shapes and its
error bodies are MLflow's, so each endpoint reads its fields explicitly with
``Body`` and answers MLflow's JSON. Authentication is the personal access
token the client sends as ``Authorization: Bearer`` (MLFLOW_TRACKING_TOKEN).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import AuthenticationFailed

from accounts.authentication import user_for_token
from accounts.models import User
from experiments import selectors, services
from experiments.artifacts import ArtifactStore, clean_path
from experiments.errors import MlflowError, invalid, not_found
from experiments.models import (
    Experiment,
    Lifecycle,
    LoggedModel,
    Metric,
    ModelAlias,
    RegisteredModel,
    Run,
)
from experiments.permissions import get_tracking_project_for_user
from experiments.search import apply_order, filter_to_q, page_token_decode, page_token_encode
from projects.models import PROJECT_TOKEN_PREFIX, Project
from projects.tokens import project_token_user

MAX_BATCH_BYTES = 1024 * 1024
MAX_RUN_RESULTS = 50000
MAX_EXPERIMENT_RESULTS = 50000
FLOAT_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class Body:
    """The request's fields: JSON for writes, the query string for reads."""

    def __init__(self, request: HttpRequest) -> None:
        self.multi: dict[str, list[str]] = {}
        if request.method == "GET":
            self.data: dict[str, Any] = {k: request.GET.get(k) for k in request.GET}
            self.multi = {k: request.GET.getlist(k) for k in request.GET}
            return
        try:
            raw = request.body
        except RequestDataTooBig:
            raise invalid("The request body is too large.") from None
        self.size = len(raw)
        if not raw.strip():
            self.data = {}
            return
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise MlflowError("Malformed JSON in the request body.", "BAD_REQUEST") from None
        if not isinstance(data, dict):
            raise MlflowError("The request body must be a JSON object.", "BAD_REQUEST")
        self.data = data

    def _get(self, name: str, required: bool) -> Any:
        value = self.data.get(name)
        if value is None and required:
            raise invalid(f"Missing value for required parameter '{name}'.")
        return value

    def string(self, name: str, *, required: bool = False, default: str = "") -> str:
        value = self._get(name, required)
        if value is None:
            return default
        if not isinstance(value, str) or "\x00" in value:
            raise invalid(f"Invalid value {json.dumps(value)} for parameter '{name}' supplied.")
        if required and value == "":
            raise invalid(f"Missing value for required parameter '{name}'.")
        return value

    def integer(self, name: str, *, required: bool = False) -> int | None:
        value = self._get(name, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise invalid(f"Invalid value {json.dumps(value)} for parameter '{name}' supplied.")
        try:
            number = int(value)
        except ValueError:
            raise invalid(f"Invalid value {value!r} for parameter '{name}' supplied.") from None
        if not -(2**63) <= number < 2**63:
            raise invalid(f"Parameter '{name}' is out of range.")
        return number

    def number(self, name: str, *, required: bool = False) -> float:
        return parse_float(self._get(name, required), name)

    def array(self, name: str) -> list[Any]:
        if self.multi:
            return self.multi.get(name, [])
        value = self.data.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise invalid(f"Invalid value {json.dumps(value)} for parameter '{name}' supplied.")
        return value


def parse_float(value: Any, name: str) -> float:
    if isinstance(value, str) and value in FLOAT_WORDS:
        return FLOAT_WORDS[value]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise invalid(f"Invalid value {json.dumps(value)} for parameter '{name}' supplied.")
    try:
        return float(value)
    except ValueError:
        raise invalid(f"Invalid value {value!r} for parameter '{name}' supplied.") from None


def _pairs(items: list[Any], name: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict):
            raise invalid(f"Invalid value {json.dumps(item)} in '{name}'.")
        key, value = item.get("key"), item.get("value", "")
        if not isinstance(key, str) or not isinstance(value, str) or "\x00" in key + value:
            raise invalid(
                f"Invalid value {json.dumps(item)} in '{name}': key and value are strings."
            )
        out[key] = value
    return out


def _metric(item: Any, ts_default: int | None = None) -> services.MetricPoint:
    if not isinstance(item, dict):
        raise invalid(f"Invalid value {json.dumps(item)} in 'metrics'.")
    key = item.get("key")
    if not isinstance(key, str) or "\x00" in key:
        raise invalid("Missing value for required parameter 'key'.")
    value = parse_float(item.get("value"), "value") if "value" in item else None
    if value is None:
        raise invalid("Missing value for required parameter 'value'.")
    stamps = []
    for field in ("timestamp", "step"):
        raw = item.get(field, 0 if field == "step" else ts_default)
        if raw is None:
            raise invalid(f"Missing value for required parameter '{field}'.")
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise invalid(f"Invalid value {json.dumps(raw)} for parameter '{field}' supplied.")
        try:
            stamps.append(int(raw))
        except ValueError:
            raise invalid(f"Invalid value {raw!r} for parameter '{field}' supplied.") from None
    return services.MetricPoint(key=key, value=value, timestamp=stamps[0], step=stamps[1])


def _user(request: HttpRequest, slug: str) -> User:
    """Who the request acts as: a personal access token's owner, or the user
    a token scoped to project ``slug`` acts for (a workspace's or a job's).
    A project token of another project is no token at all here."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MlflowError(
            "Authenticate with a personal access token (MLFLOW_TRACKING_TOKEN).",
            "UNAUTHENTICATED",
        )
    raw = token.strip()
    if raw.startswith(PROJECT_TOKEN_PREFIX):
        scoped = project_token_user(raw, slug=slug)
        if scoped is None:
            raise MlflowError(
                "Invalid, expired or revoked token for this project.", "UNAUTHENTICATED"
            )
        return scoped
    try:
        found = user_for_token(raw)
    except AuthenticationFailed as exc:
        raise MlflowError(str(exc.detail), "UNAUTHENTICATED") from None
    if found is None:
        raise MlflowError("Invalid or revoked token.", "UNAUTHENTICATED")
    return found[0]


class RawJson(str):
    """A response body already in JSON (built by the database)."""


def _error(exc: MlflowError) -> JsonResponse:
    return JsonResponse(exc.as_json(), status=exc.status)


Handler = Callable[[User, Project, Body], Any]


# --- experiments ----------------------------------------------------------


def experiments_create(user: User, project: Project, body: Body) -> Any:
    e = services.experiment_create(
        actor=user,
        project=project,
        name=body.string("name", required=True),
        artifact_location=body.string("artifact_location"),
        tags=_pairs(body.array("tags"), "tags"),
    )
    return {"experiment_id": str(e.pk)}


def experiments_get(user: User, project: Project, body: Body) -> Any:
    e = selectors.experiment_get(project, body.string("experiment_id", required=True))
    return {"experiment": selectors.experiment_json(e)}


def experiments_get_by_name(user: User, project: Project, body: Body) -> Any:
    name = body.string("experiment_name", required=True)
    e = Experiment.objects.filter(project=project, name=name).first()
    if e is None:
        raise not_found(f"Could not find experiment with name '{name}'")
    return {"experiment": selectors.experiment_json(e)}


def experiments_search(user: User, project: Project, body: Body) -> Any:
    max_results = body.integer("max_results") or 1000
    if not 0 < max_results <= MAX_EXPERIMENT_RESULTS:
        raise invalid(f"Invalid value {max_results} for parameter 'max_results' supplied.")
    view = body.string("view_type", default="ACTIVE_ONLY")
    experiments = Experiment.objects.filter(project=project)
    if view == "ACTIVE_ONLY":
        experiments = experiments.filter(lifecycle_stage=Lifecycle.ACTIVE)
    elif view == "DELETED_ONLY":
        experiments = experiments.filter(lifecycle_stage=Lifecycle.DELETED)
    filter_text = body.string("filter").strip()
    if filter_text:
        match = re.match(r"^(?:attributes\.)?name\s*(=|LIKE|ILIKE)\s*'([^']*)'$", filter_text, re.I)
        if not match:
            raise invalid(
                f"Invalid filter '{filter_text}': experiments filter by "
                "name = / LIKE / ILIKE '<value>'."
            )
        op, value = match.group(1).upper(), match.group(2)
        from experiments.search import like_to_regex

        if op == "=":
            experiments = experiments.filter(name=value)
        else:
            lookup = "name__regex" if op == "LIKE" else "name__iregex"
            experiments = experiments.filter(**{lookup: like_to_regex(value)})
    offset = page_token_decode(body.string("page_token"))
    page = list(experiments.order_by("-creation_time", "-id")[offset : offset + max_results + 1])
    out: dict[str, Any] = {
        "experiments": [selectors.experiment_json(e) for e in page[:max_results]]
    }
    if len(page) > max_results:
        out["next_page_token"] = page_token_encode(offset + max_results)
    return out


def _experiment(project: Project, body: Body) -> Experiment:
    return selectors.experiment_get(project, body.string("experiment_id", required=True))


def experiments_update(user: User, project: Project, body: Body) -> Any:
    e = _experiment(project, body)
    new_name = body.string("new_name")
    if new_name:
        services.experiment_rename(actor=user, experiment=e, new_name=new_name)
    return {}


def experiments_delete(user: User, project: Project, body: Body) -> Any:
    services.experiment_delete(actor=user, experiment=_experiment(project, body))
    return {}


def experiments_restore(user: User, project: Project, body: Body) -> Any:
    services.experiment_restore(actor=user, experiment=_experiment(project, body))
    return {}


def experiments_set_tag(user: User, project: Project, body: Body) -> Any:
    services.experiment_tag_set(
        actor=user,
        experiment=_experiment(project, body),
        key=body.string("key", required=True),
        value=body.string("value"),
    )
    return {}


def experiments_delete_tag(user: User, project: Project, body: Body) -> Any:
    services.experiment_tag_delete(
        actor=user, experiment=_experiment(project, body), key=body.string("key", required=True)
    )
    return {}


# --- runs -----------------------------------------------------------------


def _run(project: Project, body: Body) -> Run:
    run_id = body.string("run_id") or body.string("run_uuid")
    if not run_id:
        raise invalid("Missing value for required parameter 'run_id'.")
    return selectors.run_get(project, run_id)


def _run_to_log(project: Project, body: Body) -> Run:
    run_id = body.string("run_id") or body.string("run_uuid")
    if not run_id:
        raise invalid("Missing value for required parameter 'run_id'.")
    return selectors.run_get(project, run_id, with_data=False)


def runs_create(user: User, project: Project, body: Body) -> Any:
    e = _experiment(project, body)
    run = services.run_create(
        actor=user,
        experiment=e,
        run_name=body.string("run_name"),
        start_time=body.integer("start_time"),
        tags=_pairs(body.array("tags"), "tags"),
    )
    return {"run": selectors.run_json(selectors.run_get(project, run.uuid))}


def runs_get(user: User, project: Project, body: Body) -> Any:
    return {"run": selectors.run_json(_run(project, body))}


def runs_update(user: User, project: Project, body: Body) -> Any:
    run = services.run_update(
        actor=user,
        run=_run(project, body),
        status=body.string("status") or None,
        end_time=body.integer("end_time"),
        run_name=body.string("run_name") or None,
    )
    return {"run_info": selectors.run_info_json(run)}


def runs_delete(user: User, project: Project, body: Body) -> Any:
    services.run_delete(actor=user, run=_run(project, body))
    return {}


def runs_restore(user: User, project: Project, body: Body) -> Any:
    services.run_restore(actor=user, run=_run(project, body))
    return {}


def runs_log_metric(user: User, project: Project, body: Body) -> Any:
    point = _metric(body.data)
    services.run_log_batch(
        actor=user, run=_run_to_log(project, body), metrics=[point], params={}, tags={}
    )
    return {}


def runs_log_parameter(user: User, project: Project, body: Body) -> Any:
    key = body.string("key", required=True)
    services.run_log_batch(
        actor=user,
        run=_run_to_log(project, body),
        metrics=[],
        params={key: body.string("value")},
        tags={},
    )
    return {}


def runs_set_tag(user: User, project: Project, body: Body) -> Any:
    key = body.string("key", required=True)
    services.run_log_batch(
        actor=user,
        run=_run_to_log(project, body),
        metrics=[],
        params={},
        tags={key: body.string("value")},
    )
    return {}


def runs_delete_tag(user: User, project: Project, body: Body) -> Any:
    services.run_tag_delete(
        actor=user, run=_run(project, body), key=body.string("key", required=True)
    )
    return {}


def runs_log_batch(user: User, project: Project, body: Body) -> Any:
    if getattr(body, "size", 0) > MAX_BATCH_BYTES:
        raise invalid(f"The batch request is larger than {MAX_BATCH_BYTES} bytes.")
    metrics_raw = body.array("metrics")
    if len(metrics_raw) > services.MAX_METRICS_PER_BATCH:
        raise invalid(
            f"A batch logging request can contain at most {services.MAX_METRICS_PER_BATCH} "
            f"metrics. Got {len(metrics_raw)} metrics."
        )
    params_raw, tags_raw = body.array("params"), body.array("tags")
    params: dict[str, str] = {}
    for key, value in _pairs(params_raw, "params").items():
        params[key] = value
    if len(params) != len(params_raw):
        raise invalid("Duplicate parameter keys in the batch.")
    services.run_log_batch(
        actor=user,
        run=_run_to_log(project, body),
        metrics=[_metric(m) for m in metrics_raw],
        params=params,
        tags=_pairs(tags_raw, "tags"),
    )
    return {}


def runs_log_inputs(user: User, project: Project, body: Body) -> Any:
    datasets = []
    for item in body.array("datasets"):
        if not isinstance(item, dict) or not isinstance(item.get("dataset"), dict):
            raise invalid("Each item of 'datasets' needs a 'dataset'.")
        ds = item["dataset"]
        fields = {}
        for field, limit in (
            ("name", 500),
            ("digest", 64),
            ("source_type", 36),
            ("source", 65535),
            ("schema", 1048575),
            ("profile", 16384),
        ):
            value = ds.get(field, "")
            if not isinstance(value, str) or len(value) > limit:
                raise invalid(f"Invalid dataset field '{field}'.")
            if field in ("name", "digest", "source_type", "source") and not value:
                raise invalid(f"Missing value for required parameter 'dataset.{field}'.")
            fields[field] = value
        context = _pairs(item.get("tags") or [], "tags").get("mlflow.data.context", "")
        fields["context"] = context[:250]
        datasets.append(fields)
    services.run_log_inputs(actor=user, run=_run(project, body), datasets=datasets)
    return {}


def runs_log_model(user: User, project: Project, body: Body) -> Any:
    # Older clients record the model's MLmodel here; the logged model itself
    # (MLflow 3) carries it, so only the run's access is checked.
    run = _run(project, body)
    get_tracking_project_for_user(user, project.slug, write=True)
    body.string("model_json", required=True)
    services._active_run(run)
    return {}


def runs_outputs(user: User, project: Project, body: Body) -> Any:
    run = _run(project, body)
    get_tracking_project_for_user(user, project.slug, write=True)
    for item in body.array("models"):
        if not isinstance(item, dict) or not isinstance(item.get("model_id"), str):
            raise invalid("Each item of 'models' needs a 'model_id'.")
        selectors.logged_model_get(project, item["model_id"])
    services._active_run(run)
    return {}


def runs_search(user: User, project: Project, body: Body) -> Any:
    max_results = body.integer("max_results")
    max_results = 1000 if max_results is None else max_results
    if not 0 < max_results <= MAX_RUN_RESULTS:
        raise invalid(
            f"Invalid value {max_results} for parameter 'max_results' supplied. "
            f"It must be at most {MAX_RUN_RESULTS}."
        )
    ids = body.array("experiment_ids")
    if not all(isinstance(i, str) and i.isdigit() and len(i) < 19 for i in ids):
        raise invalid("Invalid value for parameter 'experiment_ids': a list of ids.")
    order_by = body.array("order_by")
    if not all(isinstance(o, str) for o in order_by):
        raise invalid("Invalid value for parameter 'order_by': a list of strings.")
    runs = Run.objects.filter(experiment__project=project, experiment_id__in=[int(i) for i in ids])
    runs = selectors.run_view_filter(runs, body.string("run_view_type", default="ACTIVE_ONLY"))
    runs = apply_order(runs.filter(filter_to_q(body.string("filter"))), order_by)
    offset = page_token_decode(body.string("page_token"))
    # The page's ids (filtered and ordered), then its JSON built in one query:
    # no run, param, tag or metric instance for a thousand runs.
    ids = list(runs.values_list("pk", flat=True)[offset : offset + max_results + 1])
    text = '{"runs": ' + selectors.runs_json_text(ids[:max_results])
    if len(ids) > max_results:
        text += ', "next_page_token": ' + json.dumps(page_token_encode(offset + max_results))
    return RawJson(text + "}")


def metrics_get_history(user: User, project: Project, body: Body) -> Any:
    run = _run(project, body)
    key = body.string("metric_key", required=True)
    max_results = body.integer("max_results") or 25000
    offset = page_token_decode(body.string("page_token"))
    points = list(
        Metric.objects.filter(run=run, key__name=key)
        .order_by("step", "timestamp", "id")
        .values_list("value", "timestamp", "step")[offset : offset + max_results + 1]
    )
    out: dict[str, Any] = {
        "metrics": [
            {"key": key, "value": selectors.float_json(v), "timestamp": t, "step": s}
            for v, t, s in points[:max_results]
        ]
    }
    if len(points) > max_results:
        out["next_page_token"] = page_token_encode(offset + max_results)
    return out


def metrics_get_history_bulk_interval(user: User, project: Project, body: Body) -> Any:
    run_ids = body.array("run_ids")
    if not run_ids or len(run_ids) > 100:
        raise invalid("'run_ids' needs between 1 and 100 run ids.")
    key = body.string("metric_key", required=True)
    max_results = min(body.integer("max_results") or 320, 1000)
    start, end = body.integer("start_step"), body.integer("end_step")
    runs = {r.pk: r.uuid for r in Run.objects.filter(uuid__in=run_ids, experiment__project=project)}
    points = Metric.objects.filter(run_id__in=runs, key__name=key)
    if start is not None:
        points = points.filter(step__gte=start)
    if end is not None:
        points = points.filter(step__lte=end)
    rows = points.order_by("run_id", "step", "timestamp").values_list(
        "run_id", "value", "timestamp", "step"
    )
    out, per_run = [], dict.fromkeys(runs, 0)
    for run_pk, value, stamp, step in rows:
        if per_run[run_pk] < max_results:
            per_run[run_pk] += 1
            out.append(
                {
                    "key": key,
                    "value": selectors.float_json(value),
                    "timestamp": stamp,
                    "step": step,
                    "run_id": runs[run_pk],
                }
            )
    return {"metrics": out}


# --- logged models --------------------------------------------------------


def logged_models_create(user: User, project: Project, body: Body) -> Any:
    e = _experiment(project, body)
    run_id = body.string("source_run_id")
    run = selectors.run_get(project, run_id) if run_id else None
    model = services.logged_model_create(
        actor=user,
        experiment=e,
        name=body.string("name"),
        model_type=body.string("model_type"),
        source_run=run,
        params=_pairs(body.array("params"), "params"),
        tags=_pairs(body.array("tags"), "tags"),
    )
    return {"model": selectors.logged_model_json(model)}


LOGGED_MODEL_FILTER_RE = re.compile(r"^\s*(name|source_run_id)\s*=\s*'([^']*)'\s*$")


def logged_models_search(user: User, project: Project, body: Body) -> Any:
    """Search by ``name = '...'`` and ``source_run_id = '...'``, joined by AND."""
    ids = body.array("experiment_ids")
    if not all(isinstance(i, str) and i.isdigit() and len(i) < 19 for i in ids):
        raise invalid("Invalid value for parameter 'experiment_ids': a list of ids.")
    models = LoggedModel.objects.filter(
        experiment__project=project,
        experiment_id__in=[int(i) for i in ids],
        lifecycle_stage=Lifecycle.ACTIVE,
    ).select_related("source_run")
    filter_text = body.string("filter").strip()
    for clause in re.split(r"\s+AND\s+", filter_text, flags=re.I) if filter_text else []:
        match = LOGGED_MODEL_FILTER_RE.match(clause)
        if not match:
            raise invalid(
                f"Invalid filter '{filter_text}': logged models filter by "
                "name = '...' and source_run_id = '...'."
            )
        field = "name" if match.group(1) == "name" else "source_run__uuid"
        models = models.filter(**{field: match.group(2)})
    max_results = body.integer("max_results") or 100
    if not 0 < max_results <= 1000:
        raise invalid(f"Invalid value {max_results} for parameter 'max_results' supplied.")
    offset = page_token_decode(body.string("page_token"))
    page = list(models.order_by("-creation_time", "-id")[offset : offset + max_results + 1])
    out: dict[str, Any] = {"models": [selectors.logged_model_json(m) for m in page[:max_results]]}
    if len(page) > max_results:
        out["next_page_token"] = page_token_encode(offset + max_results)
    return out


def logged_model_detail(user: User, project: Project, body: Body, model_id: str) -> Any:
    model = selectors.logged_model_get(project, model_id)
    return {"model": selectors.logged_model_json(model)}


def logged_model_finalize(user: User, project: Project, body: Body, model_id: str) -> Any:
    model = services.logged_model_update(
        actor=user,
        model=selectors.logged_model_get(project, model_id),
        status=body.string("status", required=True),
    )
    return {"model": selectors.logged_model_json(model)}


def logged_model_delete(user: User, project: Project, body: Body, model_id: str) -> Any:
    services.logged_model_delete(actor=user, model=selectors.logged_model_get(project, model_id))
    return {}


def logged_model_tags(user: User, project: Project, body: Body, model_id: str) -> Any:
    services.logged_model_update(
        actor=user,
        model=selectors.logged_model_get(project, model_id),
        tags=_pairs(body.array("tags"), "tags"),
    )
    return {}


def logged_model_params(user: User, project: Project, body: Body, model_id: str) -> Any:
    services.logged_model_update(
        actor=user,
        model=selectors.logged_model_get(project, model_id),
        params=_pairs(body.array("params"), "params"),
    )
    return {}


# --- registry -------------------------------------------------------------


def _registered(project: Project, body: Body) -> RegisteredModel:
    return selectors.registered_model_get(project, body.string("name", required=True))


def registered_create(user: User, project: Project, body: Body) -> Any:
    model = services.registered_model_create(
        actor=user,
        project=project,
        name=body.string("name", required=True),
        description=body.string("description"),
        tags=_pairs(body.array("tags"), "tags"),
    )
    return {"registered_model": selectors.registered_model_json(model)}


def registered_get(user: User, project: Project, body: Body) -> Any:
    return {"registered_model": selectors.registered_model_json(_registered(project, body))}


def registered_rename(user: User, project: Project, body: Body) -> Any:
    model = services.registered_model_update(
        actor=user,
        model=_registered(project, body),
        new_name=body.string("new_name", required=True),
    )
    return {"registered_model": selectors.registered_model_json(model)}


def registered_update(user: User, project: Project, body: Body) -> Any:
    model = services.registered_model_update(
        actor=user, model=_registered(project, body), description=body.string("description")
    )
    return {"registered_model": selectors.registered_model_json(model)}


def registered_delete(user: User, project: Project, body: Body) -> Any:
    services.registered_model_delete(actor=user, model=_registered(project, body))
    return {}


def registered_search(user: User, project: Project, body: Body) -> Any:
    max_results = body.integer("max_results") or 100
    if not 0 < max_results <= 1000:
        raise invalid(f"Invalid value {max_results} for parameter 'max_results' supplied.")
    models = RegisteredModel.objects.filter(project=project).order_by("name")
    filter_text = body.string("filter").strip()
    if filter_text:
        match = re.match(r"^name\s*(=|LIKE|ILIKE)\s*'([^']*)'$", filter_text, re.I)
        if not match:
            raise invalid(f"Invalid filter '{filter_text}': filter by name = / LIKE / ILIKE.")
        from experiments.search import like_to_regex

        op, value = match.group(1).upper(), match.group(2)
        if op == "=":
            models = models.filter(name=value)
        else:
            lookup = "name__regex" if op == "LIKE" else "name__iregex"
            models = models.filter(**{lookup: like_to_regex(value)})
    offset = page_token_decode(body.string("page_token"))
    page = list(models[offset : offset + max_results + 1])
    out: dict[str, Any] = {
        "registered_models": [selectors.registered_model_json(m) for m in page[:max_results]]
    }
    if len(page) > max_results:
        out["next_page_token"] = page_token_encode(offset + max_results)
    return out


def registered_set_tag(user: User, project: Project, body: Body) -> Any:
    key = body.string("key", required=True)
    services.validate_key("tag", key)
    services.registered_model_update(
        actor=user, model=_registered(project, body), set_tags={key: body.string("value")}
    )
    return {}


def registered_delete_tag(user: User, project: Project, body: Body) -> Any:
    services.registered_model_update(
        actor=user, model=_registered(project, body), delete_tag=body.string("key", required=True)
    )
    return {}


def registered_alias(user: User, project: Project, body: Body) -> Any:
    model = _registered(project, body)
    alias = body.string("alias", required=True)
    found = (
        ModelAlias.objects.filter(registered_model=model, alias=alias)
        .select_related("version")
        .first()
    )
    if found is None:
        raise not_found(f"Registered model alias {alias} not found.")
    version = selectors.model_version_get(project, model.name, str(found.version.version))
    return {"model_version": selectors.model_version_json(version)}


def registered_alias_set(user: User, project: Project, body: Body) -> Any:
    model = _registered(project, body)
    version = selectors.model_version_get(
        project, model.name, body.string("version", required=True)
    )
    services.alias_set(actor=user, version=version, alias=body.string("alias", required=True))
    return {}


def registered_alias_delete(user: User, project: Project, body: Body) -> Any:
    services.alias_delete(
        actor=user, model=_registered(project, body), alias=body.string("alias", required=True)
    )
    return {}


def registered_latest_versions(user: User, project: Project, body: Body) -> Any:
    model = _registered(project, body)
    latest = model.versions.order_by("-version").first()
    versions = (
        [selectors.model_version_get(project, model.name, str(latest.version))] if latest else []
    )
    return {"model_versions": [selectors.model_version_json(v) for v in versions]}


def _version(project: Project, body: Body) -> Any:
    return selectors.model_version_get(
        project, body.string("name", required=True), body.string("version", required=True)
    )


def versions_create(user: User, project: Project, body: Body) -> Any:
    model = _registered(project, body)
    run_id = body.string("run_id")
    model_id = body.string("model_id")
    version = services.model_version_create(
        actor=user,
        model=model,
        source=body.string("source", required=True),
        run=selectors.run_get(project, run_id) if run_id else None,
        logged_model=selectors.logged_model_get(project, model_id) if model_id else None,
        description=body.string("description"),
        run_link=body.string("run_link"),
        tags=_pairs(body.array("tags"), "tags"),
    )
    version = selectors.model_version_get(project, model.name, str(version.version))
    return {"model_version": selectors.model_version_json(version)}


def versions_get(user: User, project: Project, body: Body) -> Any:
    return {"model_version": selectors.model_version_json(_version(project, body))}


def versions_update(user: User, project: Project, body: Body) -> Any:
    version = services.model_version_update(
        actor=user, version=_version(project, body), description=body.string("description")
    )
    return (
        {"model_version": selectors.model_version_json(_version(project, body))} if version else {}
    )


def versions_transition(user: User, project: Project, body: Body) -> Any:
    stage = body.string("stage", required=True)
    if stage.lower() not in ("none", "staging", "production", "archived"):
        raise invalid(f"Invalid Model Version stage: {stage}.")
    services.model_version_update(
        actor=user, version=_version(project, body), stage=stage.capitalize()
    )
    return {"model_version": selectors.model_version_json(_version(project, body))}


def versions_delete(user: User, project: Project, body: Body) -> Any:
    services.model_version_delete(actor=user, version=_version(project, body))
    return {}


def versions_search(user: User, project: Project, body: Body) -> Any:
    from experiments.models import ModelVersion

    versions = (
        ModelVersion.objects.filter(registered_model__project=project)
        .select_related("registered_model", "run", "logged_model", "user")
        .prefetch_related("aliases")
        .order_by("registered_model__name", "-version")
    )
    filter_text = body.string("filter").strip()
    if filter_text:
        match = re.match(r"^(name|run_id)\s*=\s*'([^']*)'$", filter_text)
        if not match:
            raise invalid(f"Invalid filter '{filter_text}': filter by name = or run_id =.")
        field = "registered_model__name" if match.group(1) == "name" else "run__uuid"
        versions = versions.filter(**{field: match.group(2)})
    max_results = body.integer("max_results") or 1000
    if not 0 < max_results <= 200000:
        raise invalid(f"Invalid value {max_results} for parameter 'max_results' supplied.")
    offset = page_token_decode(body.string("page_token"))
    page = list(versions[offset : offset + max_results + 1])
    out: dict[str, Any] = {
        "model_versions": [selectors.model_version_json(v) for v in page[:max_results]]
    }
    if len(page) > max_results:
        out["next_page_token"] = page_token_encode(offset + max_results)
    return out


def versions_download_uri(user: User, project: Project, body: Body) -> Any:
    return {"artifact_uri": _version(project, body).storage_location}


def versions_set_tag(user: User, project: Project, body: Body) -> Any:
    key = body.string("key", required=True)
    services.validate_key("tag", key)
    services.model_version_update(
        actor=user, version=_version(project, body), set_tags={key: body.string("value")}
    )
    return {}


def versions_delete_tag(user: User, project: Project, body: Body) -> Any:
    services.model_version_update(
        actor=user, version=_version(project, body), delete_tag=body.string("key", required=True)
    )
    return {}


# (method, path) -> (handler, writes)
ROUTES: dict[tuple[str, str], tuple[Handler, bool]] = {
    ("POST", "experiments/create"): (experiments_create, True),
    ("GET", "experiments/get"): (experiments_get, False),
    ("GET", "experiments/get-by-name"): (experiments_get_by_name, False),
    ("POST", "experiments/search"): (experiments_search, False),
    ("GET", "experiments/search"): (experiments_search, False),
    ("POST", "experiments/update"): (experiments_update, True),
    ("POST", "experiments/delete"): (experiments_delete, True),
    ("POST", "experiments/restore"): (experiments_restore, True),
    ("POST", "experiments/set-experiment-tag"): (experiments_set_tag, True),
    ("POST", "experiments/delete-experiment-tag"): (experiments_delete_tag, True),
    ("POST", "runs/create"): (runs_create, True),
    ("GET", "runs/get"): (runs_get, False),
    ("POST", "runs/update"): (runs_update, True),
    ("POST", "runs/delete"): (runs_delete, True),
    ("POST", "runs/restore"): (runs_restore, True),
    ("POST", "runs/log-metric"): (runs_log_metric, True),
    ("POST", "runs/log-parameter"): (runs_log_parameter, True),
    ("POST", "runs/set-tag"): (runs_set_tag, True),
    ("POST", "runs/delete-tag"): (runs_delete_tag, True),
    ("POST", "runs/log-batch"): (runs_log_batch, True),
    ("POST", "runs/log-inputs"): (runs_log_inputs, True),
    ("POST", "runs/log-model"): (runs_log_model, True),
    ("POST", "runs/outputs"): (runs_outputs, True),
    ("POST", "runs/search"): (runs_search, False),
    ("GET", "metrics/get-history"): (metrics_get_history, False),
    ("GET", "metrics/get-history-bulk-interval"): (metrics_get_history_bulk_interval, False),
    ("POST", "logged-models"): (logged_models_create, True),
    ("POST", "logged-models/search"): (logged_models_search, False),
    ("POST", "registered-models/create"): (registered_create, True),
    ("GET", "registered-models/get"): (registered_get, False),
    ("POST", "registered-models/rename"): (registered_rename, True),
    ("PATCH", "registered-models/update"): (registered_update, True),
    ("DELETE", "registered-models/delete"): (registered_delete, True),
    ("GET", "registered-models/search"): (registered_search, False),
    ("POST", "registered-models/get-latest-versions"): (registered_latest_versions, False),
    ("POST", "registered-models/set-tag"): (registered_set_tag, True),
    ("DELETE", "registered-models/delete-tag"): (registered_delete_tag, True),
    ("GET", "registered-models/alias"): (registered_alias, False),
    ("POST", "registered-models/alias"): (registered_alias_set, True),
    ("DELETE", "registered-models/alias"): (registered_alias_delete, True),
    ("POST", "model-versions/create"): (versions_create, True),
    ("GET", "model-versions/get"): (versions_get, False),
    ("PATCH", "model-versions/update"): (versions_update, True),
    ("POST", "model-versions/transition-stage"): (versions_transition, True),
    ("DELETE", "model-versions/delete"): (versions_delete, True),
    ("GET", "model-versions/search"): (versions_search, False),
    ("GET", "model-versions/get-download-uri"): (versions_download_uri, False),
    ("POST", "model-versions/set-tag"): (versions_set_tag, True),
    ("DELETE", "model-versions/delete-tag"): (versions_delete_tag, True),
}

LOGGED_MODEL_RE = re.compile(r"^logged-models/(?P<id>m-[0-9a-f]{32})(?P<rest>/tags|/params)?$")
LOGGED_MODEL_ROUTES: dict[tuple[str, str], tuple[Callable[..., Any], bool]] = {
    ("GET", ""): (logged_model_detail, False),
    ("PATCH", ""): (logged_model_finalize, True),
    ("DELETE", ""): (logged_model_delete, True),
    ("PATCH", "/tags"): (logged_model_tags, True),
    ("POST", "/params"): (logged_model_params, True),
}


def _no_endpoint(request: HttpRequest, endpoint: str) -> MlflowError:
    return MlflowError(
        f"Endpoint {request.method} {endpoint} is not supported by this tracking server.",
        "ENDPOINT_NOT_FOUND",
    )


@csrf_exempt
def mlflow_api(request: HttpRequest, slug: str, endpoint: str) -> HttpResponse:
    """One project's MLflow REST endpoints."""
    method = request.method or "GET"
    try:
        user = _user(request, slug)
        match = LOGGED_MODEL_RE.match(endpoint)
        extra: tuple[str, ...] = ()
        if (method, endpoint) in ROUTES:
            handler, writes = ROUTES[(method, endpoint)]
        elif match and (method, match.group("rest") or "") in LOGGED_MODEL_ROUTES:
            handler, writes = LOGGED_MODEL_ROUTES[(method, match.group("rest") or "")]
            extra = (match.group("id"),)
        else:
            # Outsiders learn nothing, not even which endpoints exist.
            get_tracking_project_for_user(user, slug)
            raise _no_endpoint(request, endpoint)
        project = get_tracking_project_for_user(user, slug, write=writes)
        result = handler(user, project, Body(request), *extra)
    except MlflowError as exc:
        return _error(exc)
    if isinstance(result, RawJson):
        return HttpResponse(result, content_type="application/json")
    return JsonResponse(result)


# --- artifact proxy -------------------------------------------------------


@csrf_exempt
def artifacts_api(request: HttpRequest, slug: str, path: str = "") -> HttpResponseBase:
    """GET a file, PUT a file, DELETE a file or folder; GET without a path
    lists ``?path=``."""
    method = request.method or "GET"
    try:
        user = _user(request, slug)
        if method not in ("GET", "PUT", "DELETE"):
            get_tracking_project_for_user(user, slug)
            raise _no_endpoint(request, "mlflow-artifacts/artifacts")
        project = get_tracking_project_for_user(user, slug, write=method != "GET")
        store = ArtifactStore(project.pk)
        if method == "GET" and not path:
            listing = list(store.list(request.GET.get("path", "")))
            return JsonResponse({"files": listing})
        clean = clean_path(path)
        if method == "GET":
            return FileResponse(store.open(clean), as_attachment=False)
        if method == "PUT":
            store.write(clean, request, max_bytes=settings.DATA_UPLOAD_MAX_BYTES)
            return JsonResponse({})
        store.delete(clean)
        return JsonResponse({})
    except MlflowError as exc:
        return _error(exc)


# What this server offers, in the shape of MLflow's `/api/3.0/mlflow/server-info`:
# the 3.x client asks before it downloads an artifact (and before uploading
# one of 500 MB or more) whether to split the transfer into parts. Artifacts
# go through the proxy in one request each, so both answers are no.
SERVER_INFO = {
    "store_type": "SqlStore",
    "workspaces_enabled": False,
    "trace_archival_enabled": False,
    "multipart_uploads_enabled": False,
    "multipart_downloads_enabled": False,
    "presigned_upload_run_id_supported": False,
    "presigned_upload_model_id_supported": False,
    "features_enabled": {"gateway": False},
}


@csrf_exempt
def server_info(request: HttpRequest, slug: str) -> HttpResponse:
    """The tracking server's capabilities, for the project's members."""
    try:
        user = _user(request, slug)
        get_tracking_project_for_user(user, slug)
        if request.method != "GET":
            raise _no_endpoint(request, "server-info")
    except MlflowError as exc:
        return _error(exc)
    return JsonResponse(SERVER_INFO)
