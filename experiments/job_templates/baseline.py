"""Baseline model for a charter's question: classification or regression.

Runs as a job's command inside the job's sandbox, with the job's Python:

    python baseline.py --task classification --target churned --metric roc_auc [--model lightgbm]

Reads the split's train and test parts (Parquet) from the paths in
``SG_INPUT_TRAIN`` and ``SG_INPUT_TEST``, trains a scikit-learn pipeline
(numbers scaled, categories one-hot encoded) ending in a scikit-learn
estimator or, with ``--model lightgbm``, LightGBM's, and computes the charter's
metric on the test part. The result is written to ``$SG_OUTPUT_DIR/metrics.json``
and, when ``MLFLOW_TRACKING_URI`` is set, logged into the run ``MLFLOW_RUN_ID``
with the model (its signature and an input example).

A sweep's trial runs it with ``--params`` (a JSON object of the model's
hyperparameters, see ``HYPERPARAMETERS``) and ``--progress FILE``: gradient
boosting then trains in steps of ``STEP_ROUNDS`` boosting rounds and appends
the metric after each step to FILE as a JSON line ``{"step": n, "value": v}``,
which the sweep's pruner reads; ``--no-model`` leaves the model out of the run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

MODELS = {
    ("classification", "linear"): lambda: LogisticRegression(max_iter=1000),
    ("classification", "gbm"): lambda: HistGradientBoostingClassifier(random_state=0),
    ("regression", "linear"): lambda: Ridge(),
    ("regression", "gbm"): lambda: HistGradientBoostingRegressor(random_state=0),
}
# What a sweep may tune, per model family (``experiments.sweeps`` checks the
# same names): the name, and whether it is an integer.
HYPERPARAMETERS: dict[str, dict[str, str]] = {
    "gbm": {
        "learning_rate": "float",
        "max_iter": "int",
        "max_depth": "int",
        "max_leaf_nodes": "int",
        "min_samples_leaf": "int",
        "l2_regularization": "float",
    },
    "linear": {"C": "float", "alpha": "float"},
}
STEP_ROUNDS = 10


def _lightgbm(task: str) -> Any:
    import lightgbm

    # As many threads as the job's CPUs (its affinity), not the machine's.
    threads = len(os.sched_getaffinity(0))
    if task == "classification":
        return lightgbm.LGBMClassifier(random_state=0, n_jobs=threads, verbose=-1)
    return lightgbm.LGBMRegressor(random_state=0, n_jobs=threads, verbose=-1)


def score(metric: str, model: Pipeline, x: pd.DataFrame, y: pd.Series) -> float:
    """The charter's metric of ``model`` on ``x``, ``y``."""
    predicted = model.predict(x)
    if metric == "accuracy":
        return float(skm.accuracy_score(y, predicted))
    if metric in ("f1", "precision", "recall"):
        labels = sorted(pd.unique(y))
        average = "binary" if len(labels) == 2 else "macro"
        positive = labels[-1] if average == "binary" else 1
        fn = {"f1": skm.f1_score, "precision": skm.precision_score, "recall": skm.recall_score}
        return float(fn[metric](y, predicted, average=average, pos_label=positive))
    if metric in ("roc_auc", "log_loss"):
        proba = model.predict_proba(x)
        if metric == "log_loss":
            return float(skm.log_loss(y, proba, labels=model.classes_))
        if proba.shape[1] == 2:
            return float(skm.roc_auc_score(y, proba[:, 1]))
        return float(skm.roc_auc_score(y, proba, multi_class="ovr", labels=model.classes_))
    if metric == "rmse":
        return math.sqrt(float(skm.mean_squared_error(y, predicted)))
    if metric == "mae":
        return float(skm.mean_absolute_error(y, predicted))
    if metric == "mape":
        return float(skm.mean_absolute_percentage_error(y, predicted))
    if metric == "r2":
        return float(skm.r2_score(y, predicted))
    raise SystemExit(f"The baseline cannot compute the metric {metric!r}.")


def build(
    task: str,
    family: str,
    x: pd.DataFrame,
    hyper: dict[str, Any] | None = None,
    library: str = "sklearn",
) -> Pipeline:
    numeric = [c for c in x.columns if pd.api.types.is_numeric_dtype(x[c])]
    other = [c for c in x.columns if c not in numeric]
    prepare = ColumnTransformer(
        [
            ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
            (
                "categories",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore", max_categories=50),
                ),
                other,
            ),
        ]
    )
    if library == "lightgbm":
        if hyper:
            raise SystemExit("Sweeps tune the scikit-learn models; use --model sklearn.")
        return Pipeline([("prepare", prepare), ("model", _lightgbm(task))])
    model = MODELS[(task, family)]()
    hyper = dict(hyper or {})
    if family == "linear":
        # C for the classifier, alpha for the regressor: the other one is ignored.
        hyper.pop("alpha" if task == "classification" else "C", None)
    model.set_params(**hyper)
    return Pipeline([("prepare", prepare), ("model", model)])


def hyperparameters(text: str, family: str) -> dict[str, Any]:
    """The ``--params`` JSON object, checked against ``HYPERPARAMETERS``."""
    try:
        given = json.loads(text or "{}")
    except ValueError as exc:
        raise SystemExit(f"--params is not JSON: {exc}") from exc
    if not isinstance(given, dict):
        raise SystemExit("--params must be a JSON object.")
    known = HYPERPARAMETERS[family]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise SystemExit(f"The {family} model has no hyperparameter {unknown[0]!r}.")
    return {k: int(v) if known[k] == "int" else float(v) for k, v in given.items()}


def fit_in_steps(
    model: Pipeline,
    family: str,
    train: tuple[pd.DataFrame, pd.Series],
    test: tuple[pd.DataFrame, pd.Series],
    metric: str,
    progress: Path | None,
) -> list[tuple[int, float]]:
    """Train ``model``; scikit-learn's gradient boosting in steps of
    ``STEP_ROUNDS`` rounds (warm start), scoring the test part after each.
    Returns (step, value)s, each appended to ``progress`` as it comes."""
    estimator = model.named_steps["model"]
    stepwise = family == "gbm" and "max_iter" in estimator.get_params()
    if not stepwise:
        model.fit(*train)
        rounds = [1]
    else:
        total = int(estimator.get_params()["max_iter"])
        rounds = list(range(STEP_ROUNDS, total, STEP_ROUNDS)) + [total]
        estimator.set_params(warm_start=True)
    history = []
    for step, n in enumerate(rounds, start=1):
        if stepwise:
            estimator.set_params(max_iter=n)
            model.fit(*train)
        value = score(metric, model, *test)
        history.append((step, value))
        if progress is not None:
            with progress.open("a") as out:
                out.write(json.dumps({"step": step, "value": value}) + "\n")
    return history


def read(variable: str) -> pd.DataFrame:
    path = os.environ.get(variable)
    if not path:
        raise SystemExit(f"{variable} is not set: the job has no such input.")
    return pd.read_parquet(path)


def log_to_tracking(
    params: dict[str, Any],
    metric: str,
    value: float,
    model: Pipeline,
    example: pd.DataFrame,
    history: list[tuple[int, float]] | None = None,
    with_model: bool = True,
) -> None:
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    run_id = os.environ["MLFLOW_RUN_ID"]
    with mlflow.start_run(run_id=run_id):
        mlflow.log_params(params)
        for step, point in (history or [])[:-1]:
            mlflow.log_metric(metric, point, step=step)
        mlflow.log_metric(metric, value, step=history[-1][0] if history else 0)
        if not with_model:
            return
        mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            # skops is not installed; the model is loaded by the client, never by the portal.
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["classification", "regression"], required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--metric", required=True)
    parser.add_argument("--family", choices=["linear", "gbm"], default="gbm")
    parser.add_argument("--model", choices=["sklearn", "lightgbm"], default="sklearn")
    parser.add_argument("--params", default="{}", help="hyperparameters, a JSON object")
    parser.add_argument("--progress", type=Path, help="append the metric per step here")
    parser.add_argument("--no-model", action="store_true", help="log no model")
    args = parser.parse_args(argv)
    hyper = hyperparameters(args.params, args.family)

    train, test = read("SG_INPUT_TRAIN"), read("SG_INPUT_TEST")
    if args.target not in train.columns:
        raise SystemExit(f"The split has no column {args.target!r} (the charter's target).")
    x_train, y_train = train.drop(columns=[args.target]), train[args.target]
    x_test, y_test = test.drop(columns=[args.target]), test[args.target]
    print(f"train: {len(train)} rows, test: {len(test)} rows, {x_train.shape[1]} features")

    if args.model == "lightgbm" and args.family != "gbm":
        raise SystemExit("LightGBM is gradient boosting: use --family gbm.")
    model = build(args.task, args.family, x_train, hyper, args.model)
    history = fit_in_steps(
        model, args.family, (x_train, y_train), (x_test, y_test), args.metric, args.progress
    )
    value = history[-1][1]
    print(f"{args.metric} on the test part: {value:.6g}")

    params = {
        "task": args.task,
        "target": args.target,
        "family": args.family,
        "library": args.model,
        "estimator": type(model.named_steps["model"]).__name__,
        **hyper,
    }
    output = Path(os.environ.get("SG_OUTPUT_DIR", "."))
    (output / "metrics.json").write_text(
        json.dumps({"params": params, "metrics": {args.metric: value}}, default=float)
    )
    if os.environ.get("MLFLOW_TRACKING_URI"):
        log_to_tracking(
            params,
            args.metric,
            value,
            model,
            x_test.head(5),
            history=history,
            with_model=not args.no_model,
        )
        print("logged to the tracking server")
    else:
        print("no tracking server given: the result is in metrics.json only")
    return 0 if np.isfinite(value) else 1


if __name__ == "__main__":
    sys.exit(main())
