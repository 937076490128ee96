"""Writes to sweeps and AutoML runs, each a transaction with its audit event.

A sweep (Optuna) or an AutoML run (FLAML) is carried out by ONE training job
(``experiments.jobs.job_create`` with the ``sweep`` or ``automl`` template):
the charter gate, the quota and an admin's approval over it, cancel, lease
recovery, logs and cost are the job's. These services check the search's
configuration (each mistake a message under its field), make the job with it
and record the ``Sweep`` row beside it.
"""

from __future__ import annotations

import hashlib
import math
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import User
from audit.services import audit_record
from charter.gates import require_signed_charter
from charter.rules import METRICS, Direction
from compute.models import ComputeSize
from datasets.models import Split
from experiments import job_code, jobs
from experiments.job_models import JobKind
from experiments.sweep_models import Sweep, SweepKind
from projects.models import Project

# What the baseline template lets a sweep tune, per model family (the same
# names as ``job_templates/baseline.py``'s HYPERPARAMETERS): name -> (integer?, low, high).
HYPERPARAMETERS: dict[str, dict[str, tuple[bool, float, float]]] = {
    "gbm": {
        "learning_rate": (False, 1e-6, 1.0),
        "max_iter": (True, 10, 2000),
        "max_depth": (True, 1, 64),
        "max_leaf_nodes": (True, 2, 1024),
        "min_samples_leaf": (True, 1, 100_000),
        "l2_regularization": (False, 0.0, 1e6),
    },
    "linear": {"C": (False, 1e-8, 1e8), "alpha": (False, 1e-8, 1e8)},
}
SPACE_TYPES = ("choice", "uniform", "loguniform", "int")
SAMPLERS = {"grid": "Grid", "random": "Random", "tpe": "Bayesian (TPE)"}
POLICIES = {
    "none": "None",
    "median": "Median stopping",
    "halving": "Successive halving",
}
DIRECTIONS = ("maximize", "minimize")
# The metrics the baseline template computes (its ``score``).
BASELINE_METRICS = (
    "accuracy",
    "f1",
    "precision",
    "recall",
    "roc_auc",
    "log_loss",
    "rmse",
    "mae",
    "mape",
    "r2",
)
# A sweep over the user's own code: any parameter and metric name the
# script takes (``--name=value``) and logs; string choices allowed.
USER_PARAMETER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
USER_METRIC_RE = re.compile(r"^[A-Za-z0-9_.\-/ ]{1,250}$")
USER_CHOICE_MAX_CHARS = 200
USER_BOUNDS = 1e300
MAX_TRIALS = 500
MAX_CHOICES = 50
GRID_MAX_POINTS = 10_000
TIME_BUDGET_RANGE = (30, 7 * 24 * 3600)
# The charter's metrics FLAML can optimise (see job_templates/automl.py).
AUTOML_METRICS = ("accuracy", "roc_auc", "f1", "log_loss", "rmse", "mae", "mape", "r2")
AUTOML_FAMILIES = {
    "lgbm": ("LightGBM", ("classification", "regression")),
    "xgboost": ("XGBoost", ("classification", "regression")),
    "rf": ("Random forest", ("classification", "regression")),
    "extra_tree": ("Extra trees", ("classification", "regression")),
    "histgb": ("Histogram gradient boosting", ("classification", "regression")),
    "lrl1": ("Logistic regression (L1)", ("classification",)),
    "lrl2": ("Logistic regression (L2)", ("classification",)),
    "enet": ("Elastic net", ("regression",)),
}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _check_dimension(
    name: str, spec: Any, bounds: tuple[bool, float, float], sampler: str
) -> tuple[dict[str, Any], str | None]:
    """One parameter's distribution, cleaned, or the reason it is refused."""
    integer, low_limit, high_limit = bounds
    if not isinstance(spec, dict):
        return {}, f"{name}: give an object with a type."
    kind = spec.get("type")
    if kind not in SPACE_TYPES:
        return {}, f"{name}: the type must be one of {', '.join(SPACE_TYPES)}."
    extra = set(spec) - ({"type", "values"} if kind == "choice" else {"type", "low", "high"})
    if extra:
        return {}, f"{name}: unknown key {sorted(extra)[0]!r} for a {kind} distribution."
    if kind == "choice":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            return {}, f"{name}: a choice needs a non-empty list of values."
        if len(values) > MAX_CHOICES:
            return {}, f"{name}: at most {MAX_CHOICES} values."
        numbers = [_number(v) for v in values]
        if any(n is None for n in numbers):
            return {}, f"{name}: every value must be a number."
        if integer and any(n != int(n) for n in numbers if n is not None):
            return {}, f"{name}: takes whole numbers."
        if any(not low_limit <= n <= high_limit for n in numbers if n is not None):
            return {}, f"{name}: values must lie between {low_limit:g} and {high_limit:g}."
        if len(set(numbers)) != len(numbers):
            return {}, f"{name}: the values repeat."
        cleaned = [int(n) if integer else n for n in numbers if n is not None]
        return {"type": "choice", "values": cleaned}, None
    if sampler == "grid" and kind != "int":
        return {}, f"{name}: a grid takes choice or int distributions only."
    low, high = _number(spec.get("low")), _number(spec.get("high"))
    if low is None or high is None:
        return {}, f"{name}: low and high must be numbers."
    if not low < high:
        return {}, f"{name}: low must be below high."
    if kind == "int" and not integer:
        return {}, f"{name}: is not an integer; use uniform or loguniform."
    if kind in ("uniform", "loguniform") and integer:
        return {}, f"{name}: is an integer; use int or choice."
    if kind == "int" and (low != int(low) or high != int(high)):
        return {}, f"{name}: low and high of an int distribution are whole numbers."
    if kind == "loguniform" and low <= 0:
        return {}, f"{name}: a log-uniform distribution needs low above 0."
    if low < low_limit or high > high_limit:
        return {}, f"{name}: must lie between {low_limit:g} and {high_limit:g}."
    if kind == "int":
        return {"type": "int", "low": int(low), "high": int(high)}, None
    return {"type": kind, "low": low, "high": high}, None


def _check_user_dimension(name: str, spec: Any, sampler: str) -> tuple[dict[str, Any], str | None]:
    """One parameter of the user's script: numbers within any finite bounds,
    whole numbers for ``int``, or a choice of numbers or words."""
    if not USER_PARAMETER_RE.match(name):
        return {}, (
            f"{name[:80]!r}: a parameter name is a letter or _ followed by letters, digits "
            "or _ (at most 64), as the script's --name=value option."
        )
    if isinstance(spec, dict) and spec.get("type") == "choice":
        values = spec.get("values")
        if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
            if set(spec) != {"type", "values"}:
                return {}, f"{name}: a choice has only a type and values."
            if len(values) > MAX_CHOICES:
                return {}, f"{name}: at most {MAX_CHOICES} values."
            if any(not v or len(v) > USER_CHOICE_MAX_CHARS or "\x00" in v for v in values):
                return {}, f"{name}: each value has 1 to {USER_CHOICE_MAX_CHARS} characters."
            if len(set(values)) != len(values):
                return {}, f"{name}: the values repeat."
            return {"type": "choice", "values": list(values)}, None
    integer = isinstance(spec, dict) and spec.get("type") == "int"
    return _check_dimension(name, spec, (integer, -USER_BOUNDS, USER_BOUNDS), sampler)


def sweep_config_clean(
    *,
    space: Any,
    family: str,
    sampler: str,
    max_trials: int,
    parallel: int,
    size: ComputeSize,
    metric: str,
    direction: str,
    early_termination: str,
    time_budget_minutes: int,
    seed: int = 0,
    user_code: bool = False,
) -> dict[str, Any]:
    """The sweep's configuration as the runner reads it, or a ValidationError
    whose messages name each field and parameter at fault.

    Over the baseline template the space names the model family's
    hyperparameters within their bounds and the metric is one the baseline
    computes; over the user's own code (``user_code``) any parameter name the
    script takes and any metric name it logs will do."""
    errors: dict[str, list[str]] = {}
    if not user_code and family not in HYPERPARAMETERS:
        errors.setdefault("family", []).append("Choose gbm (gradient boosting) or linear.")
    if sampler not in SAMPLERS:
        errors.setdefault("sampler", []).append(f"Choose one of {', '.join(SAMPLERS)}.")
    cleaned: dict[str, Any] = {}
    if not isinstance(space, dict) or not space:
        errors.setdefault("space", []).append(
            "Give at least one parameter: an object of name to distribution."
        )
    elif user_code:
        for name, spec in space.items():
            dimension, problem = _check_user_dimension(str(name), spec, sampler)
            if problem:
                errors.setdefault("space", []).append(problem)
            else:
                cleaned[str(name)] = dimension
    elif family in HYPERPARAMETERS:
        known = HYPERPARAMETERS[family]
        for name, spec in space.items():
            if name not in known:
                errors.setdefault("space", []).append(
                    f"{name}: the {family} model has no such parameter "
                    f"(it has {', '.join(sorted(known))})."
                )
                continue
            dimension, problem = _check_dimension(name, spec, known[name], sampler)
            if problem:
                errors.setdefault("space", []).append(problem)
            else:
                cleaned[name] = dimension
    if sampler == "grid" and cleaned and "space" not in errors:
        points = 1
        for dimension in cleaned.values():
            points *= (
                len(dimension["values"])
                if dimension["type"] == "choice"
                else dimension["high"] - dimension["low"] + 1
            )
        if points > GRID_MAX_POINTS:
            errors.setdefault("space", []).append(
                f"The grid has {points} points; at most {GRID_MAX_POINTS}."
            )
    if not 1 <= max_trials <= MAX_TRIALS:
        errors.setdefault("max_trials", []).append(f"Between 1 and {MAX_TRIALS}.")
    if not 1 <= parallel <= size.vcpus:
        errors.setdefault("parallel", []).append(
            f"Between 1 and {size.vcpus}: the {size.name} size has {size.vcpus} vCPUs."
        )
    elif parallel > max_trials >= 1:
        errors.setdefault("parallel", []).append("No more than the number of trials.")
    if user_code and not USER_METRIC_RE.match(metric):
        errors.setdefault("metric", []).append(
            "Name the metric the script logs: letters, digits, _ - . / and spaces."
        )
    elif not user_code and metric not in BASELINE_METRICS:
        errors.setdefault("metric", []).append(f"The baseline cannot compute “{metric}”.")
    if direction not in DIRECTIONS:
        errors.setdefault("direction", []).append("Choose maximize or minimize.")
    if early_termination not in POLICIES:
        errors.setdefault("early_termination", []).append(f"Choose one of {', '.join(POLICIES)}.")
    low, high = TIME_BUDGET_RANGE
    if not low <= time_budget_minutes * 60 <= high:
        errors.setdefault("time_budget_minutes", []).append(f"Between 1 and {high // 60} minutes.")
    if errors:
        raise ValidationError(errors)
    return {
        "space": cleaned,
        **({} if user_code else {"family": family}),
        "sampler": sampler,
        "seed": int(seed),
        "objective": {"metric": metric, "direction": direction},
        "max_trials": int(max_trials),
        "parallel": int(parallel),
        "early_termination": {"policy": early_termination},
        "time_budget_seconds": int(time_budget_minutes) * 60,
    }


def _charter_objective(project: Project) -> tuple[str, str, str]:
    charter = require_signed_charter(project, purpose="starting a sweep")
    metric = charter.success_metric
    known = METRICS.get(metric)
    direction = charter.direction or (known.direction if known else Direction.HIGHER)
    return (
        charter.question_type,
        metric,
        "maximize" if direction == Direction.HIGHER else "minimize",
    )


def _provider_refusal(job: Any) -> None:
    """A search the job's provider runs natively (Azure ML) is checked when
    it is made, not when its job is submitted: what the provider cannot run is
    a 400 with the reason, and nothing is written (the caller's transaction)."""
    if job.provider != "azure":
        return
    from cloud.azure_jobs import automl_refusal, sweep_refusal
    from experiments.tasks import search_specs

    sweep, automl = search_specs(job)
    reason = ""
    if sweep is not None:
        reason = sweep_refusal(sweep)
    elif automl is not None:
        reason = automl_refusal(automl, {"train": "split"})
    if reason:
        raise ValidationError({"provider": f"On Azure ML: {reason}"})


def _record(*, actor: User, project: Project, job: Any, kind: str, config: dict[str, Any]) -> Sweep:
    _provider_refusal(job)
    sweep = Sweep.objects.create(project=project, job=job, kind=kind, config=config)
    audit_record(
        action=f"{kind}.created",
        actor=actor,
        project=project,
        obj=sweep,
        payload={"job": job.pk, "config": config},
    )
    return sweep


def sweep_create(
    *,
    actor: User,
    project: Project,
    split: Split,
    size: ComputeSize,
    space: Any,
    family: str = "gbm",
    sampler: str = "tpe",
    max_trials: int = 20,
    parallel: int = 1,
    metric: str = "",
    direction: str = "",
    early_termination: str = "median",
    time_budget_minutes: int = 30,
    seed: int = 0,
    wall_clock_minutes: int = 60,
    experiment_name: str = "",
    name: str = "",
    kind: str = JobKind.TEMPLATE,
    repository_url: str = "",
    repository_ref: str = "",
    archive: IO[bytes] | None = None,
    command: str = "",
    requirements: Sequence[str] | str = (),
) -> Sweep:
    """A sweep run by one job: over the baseline template's hyperparameters
    (``kind`` template), or over the user's own code, from a git repository or
    an uploaded archive, whose ``command`` each trial runs with its parameters
    appended as ``--name=value`` options, logging the objective's metric into
    its child run (``MLFLOW_RUN_ID``; see job_templates/sweep_runner.py).

    The objective defaults to the charter's success metric and its direction;
    trials in parallel are bounded by the size's vCPUs (the job's quota)."""
    jobs._require_writer(actor, project)
    user_code = kind != JobKind.TEMPLATE
    _, charter_metric, charter_direction = _charter_objective(project)
    config = sweep_config_clean(
        user_code=user_code,
        space=space,
        family=family,
        sampler=sampler,
        max_trials=max_trials,
        parallel=parallel,
        size=size,
        metric=metric or charter_metric,
        direction=direction or charter_direction,
        early_termination=early_termination,
        time_budget_minutes=time_budget_minutes,
        seed=seed,
    )
    if config["time_budget_seconds"] > wall_clock_minutes * 60:
        raise ValidationError(
            {"time_budget_minutes": "At most the job's wall-clock limit (stop after)."}
        )
    with transaction.atomic():
        job = jobs.job_create(
            actor=actor,
            project=project,
            split=split,
            size=size,
            template="sweep",
            family=family,
            wall_clock_minutes=wall_clock_minutes,
            experiment_name=experiment_name or "sweeps",
            name=name or (f"sweep ({family})" if not user_code else ""),
            config=config,
            kind=kind,
            repository_url=repository_url,
            repository_ref=repository_ref,
            archive=archive,
            command=command,
            requirements=requirements,
        )
        return _record(
            actor=actor, project=project, job=job, kind=SweepKind.SWEEP, config=job_config(job)
        )


def sweep_code_folder(digest: str) -> Path:
    """The user's code of ``digest`` with the sweep runner beside it (under
    ``jobs.SWEEP_RUNNER_NAME``), made once per code and runner version."""
    runner = jobs.template_path("sweep")
    runner_sha = hashlib.sha256(runner.read_bytes()).hexdigest()[:16]
    code = job_code.code_folder(digest)
    folder = code.parent / f"sweep-{digest}-{runner_sha}"
    if folder.is_dir():
        return folder
    with job_code.folder_made(folder, prefix=".sweep-") as scratch:
        shutil.copytree(code, scratch, symlinks=True, dirs_exist_ok=True)
        shutil.copyfile(runner, scratch / jobs.SWEEP_RUNNER_NAME)
    return folder


def job_config(job: Any) -> dict[str, Any]:
    """The configuration as the job keeps it (over user code, with its command)."""
    return dict(job.parameters.get("config") or {})


def automl_config_clean(
    *, task: str, metric: str, families: list[str], time_budget_seconds: int, seed: int = 0
) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    if metric not in AUTOML_METRICS:
        errors.setdefault("metric", []).append(
            f"AutoML cannot optimise the charter's metric “{metric}”; "
            f"it optimises {', '.join(AUTOML_METRICS)}."
        )
    allowed = [f for f, (_, tasks) in AUTOML_FAMILIES.items() if task in tasks]
    chosen = list(dict.fromkeys(families or allowed))
    wrong = [f for f in chosen if f not in allowed]
    if wrong:
        errors.setdefault("families", []).append(
            f"“{wrong[0]}” is not a model family for {task}; choose from {', '.join(allowed)}."
        )
    low, high = TIME_BUDGET_RANGE
    if not low <= time_budget_seconds <= high:
        errors.setdefault("time_budget_seconds", []).append(f"Between {low} and {high} seconds.")
    if errors:
        raise ValidationError(errors)
    return {
        "families": chosen,
        "time_budget_seconds": int(time_budget_seconds),
        "seed": int(seed),
        "metric": metric,
    }


def automl_create(
    *,
    actor: User,
    project: Project,
    split: Split,
    size: ComputeSize,
    time_budget_seconds: int = 300,
    families: list[str] | None = None,
    seed: int = 0,
    wall_clock_minutes: int = 60,
    experiment_name: str = "",
    name: str = "",
) -> Sweep:
    """An AutoML search (FLAML) for the charter's question, run by one job."""
    jobs._require_writer(actor, project)
    task, metric, _ = _charter_objective(project)
    config = automl_config_clean(
        task=task,
        metric=metric,
        families=list(families or []),
        time_budget_seconds=time_budget_seconds,
        seed=seed,
    )
    if time_budget_seconds + 60 > wall_clock_minutes * 60:
        raise ValidationError(
            {"time_budget_seconds": "Leave the job a minute beyond the time budget (stop after)."}
        )
    with transaction.atomic():
        job = jobs.job_create(
            actor=actor,
            project=project,
            split=split,
            size=size,
            template="automl",
            wall_clock_minutes=wall_clock_minutes,
            experiment_name=experiment_name or "automl",
            name=name or "automl",
            config=config,
        )
        return _record(actor=actor, project=project, job=job, kind=SweepKind.AUTOML, config=config)


def sweep_cancel(*, actor: User, sweep: Sweep) -> Sweep:
    """Cancel the sweep's (or AutoML run's) job: its trials die with it."""
    jobs.job_cancel(actor=actor, job=sweep.job)
    return sweep
