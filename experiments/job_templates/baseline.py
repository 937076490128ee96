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


def build(task: str, family: str, x: pd.DataFrame, library: str = "sklearn") -> Pipeline:
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
    estimator = _lightgbm(task) if library == "lightgbm" else MODELS[(task, family)]()
    return Pipeline([("prepare", prepare), ("model", estimator)])


def read(variable: str) -> pd.DataFrame:
    path = os.environ.get(variable)
    if not path:
        raise SystemExit(f"{variable} is not set: the job has no such input.")
    return pd.read_parquet(path)


def log_to_tracking(
    params: dict[str, Any], metric: str, value: float, model: Pipeline, example: pd.DataFrame
) -> None:
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    run_id = os.environ["MLFLOW_RUN_ID"]
    with mlflow.start_run(run_id=run_id):
        mlflow.log_params(params)
        mlflow.log_metric(metric, value)
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
    args = parser.parse_args(argv)

    train, test = read("SG_INPUT_TRAIN"), read("SG_INPUT_TEST")
    if args.target not in train.columns:
        raise SystemExit(f"The split has no column {args.target!r} (the charter's target).")
    x_train, y_train = train.drop(columns=[args.target]), train[args.target]
    x_test, y_test = test.drop(columns=[args.target]), test[args.target]
    print(f"train: {len(train)} rows, test: {len(test)} rows, {x_train.shape[1]} features")

    if args.model == "lightgbm" and args.family != "gbm":
        raise SystemExit("LightGBM is gradient boosting: use --family gbm.")
    model = build(args.task, args.family, x_train, args.model)
    model.fit(x_train, y_train)
    value = score(args.metric, model, x_test, y_test)
    print(f"{args.metric} on the test part: {value:.6g}")

    params = {
        "task": args.task,
        "target": args.target,
        "family": args.family,
        "library": args.model,
        "estimator": type(model.named_steps["model"]).__name__,
    }
    output = Path(os.environ.get("SG_OUTPUT_DIR", "."))
    (output / "metrics.json").write_text(
        json.dumps({"params": params, "metrics": {args.metric: value}}, default=float)
    )
    if os.environ.get("MLFLOW_TRACKING_URI"):
        log_to_tracking(params, args.metric, value, model, x_test.head(5))
        print("logged to the tracking server")
    else:
        print("no tracking server given: the result is in metrics.json only")
    return 0 if np.isfinite(value) else 1


if __name__ == "__main__":
    sys.exit(main())
