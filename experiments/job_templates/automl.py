"""AutoML with FLAML, run as one training job's command.

Runs inside the job's sandbox, with the job's Python:

    python automl.py --task classification --target churned --metric roc_auc \
        --config '{"time_budget_seconds": 60, "families": ["lgbm", "rf"], "seed": 0}'

Reads the split's train and test parts like the baseline template, lets
FLAML search the allowed model families for the charter's metric (mapped to
FLAML's name for it, ``FLAML_METRICS``) within the time budget, and logs:

- one child run of the job's run (``MLFLOW_RUN_ID``, tag ``mlflow.parentRunId``)
  per model FLAML tried, with its family, hyperparameters and validation
  score: the leaderboard;
- on the job's run, the best model in MLflow format with its signature and an
  input example, the charter's metric of it on the test part, its family and
  hyperparameters.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
from baseline import score

# The charter's metric -> FLAML's metric (binary, multi-class).
FLAML_METRICS = {
    "accuracy": ("accuracy", "accuracy"),
    "roc_auc": ("roc_auc", "roc_auc_ovr"),
    "f1": ("f1", "macro_f1"),
    "log_loss": ("log_loss", "log_loss"),
    "rmse": ("rmse", "rmse"),
    "mae": ("mae", "mae"),
    "mape": ("mape", "mape"),
    "r2": ("r2", "r2"),
}
# FLAML reports a loss: 1 - score for these, the metric itself for the rest.
SCORE_METRICS = {"accuracy", "roc_auc", "roc_auc_ovr", "f1", "macro_f1", "r2"}
FAMILIES = {
    "classification": ("lgbm", "xgboost", "rf", "extra_tree", "histgb", "lrl1", "lrl2"),
    "regression": ("lgbm", "xgboost", "rf", "extra_tree", "histgb", "enet"),
}
PARENT_TAG = "mlflow.parentRunId"
MAX_CHILD_RUNS = 200


def metric_value(flaml_metric: str, loss: float) -> float:
    return 1.0 - loss if flaml_metric in SCORE_METRICS else loss


def read(variable: str) -> pd.DataFrame:
    path = os.environ.get(variable)
    if not path:
        raise SystemExit(f"{variable} is not set: the job has no such input.")
    return pd.read_parquet(path)


def trials_from_log(path: Path) -> list[dict[str, Any]]:
    """FLAML's search log: one JSON object per model tried."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "learner" in record and "validation_loss" in record:
            found.append(record)
    return found


def log_leaderboard(
    client: Any, trials: list[dict[str, Any]], metric: str, flaml_metric: str
) -> list[str]:
    """One finished child run per model tried (the first MAX_CHILD_RUNS)."""
    from mlflow.entities import Metric, Param

    parent = os.environ["MLFLOW_RUN_ID"]
    experiment = os.environ["MLFLOW_EXPERIMENT_ID"]
    ids = []
    now = int(time.time() * 1000)
    for number, record in enumerate(trials[:MAX_CHILD_RUNS]):
        run = client.create_run(
            experiment,
            run_name=f"{record['learner']} {number}",
            tags={PARENT_TAG: parent, "stagegate.automl.trial": str(number)},
        )
        run_id = run.info.run_id
        loss = float(record["validation_loss"])
        params = [Param("family", str(record["learner"]))] + [
            Param(str(k)[:250], str(v)[:500]) for k, v in sorted(record["config"].items())
        ]
        points = [
            Metric("validation_loss", loss, now, 0),
            Metric("trial_seconds", float(record.get("trial_time", 0.0)), now, 0),
        ]
        value = metric_value(flaml_metric, loss)
        if math.isfinite(value):
            points.append(Metric(f"validation_{metric}", value, now, 0))
        client.log_batch(run_id, metrics=points, params=params)
        client.set_terminated(run_id, "FINISHED")
        ids.append(run_id)
    return ids


def main(argv: list[str] | None = None) -> int:
    from flaml import AutoML

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["classification", "regression"], required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--metric", required=True)
    parser.add_argument("--config", required=True, help="the search, a JSON object")
    args = parser.parse_args(argv)
    config = json.loads(args.config)
    # The job's log is for people: no tracking URLs after every run.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if args.metric not in FLAML_METRICS:
        raise SystemExit(f"AutoML cannot optimise the metric {args.metric!r}.")

    train, test = read("SG_INPUT_TRAIN"), read("SG_INPUT_TEST")
    if args.target not in train.columns:
        raise SystemExit(f"The split has no column {args.target!r} (the charter's target).")
    x_train, y_train = train.drop(columns=[args.target]), train[args.target]
    x_test, y_test = test.drop(columns=[args.target]), test[args.target]
    binary = args.task == "regression" or y_train.nunique() <= 2
    flaml_metric = FLAML_METRICS[args.metric][0 if binary else 1]
    families = [
        f for f in config.get("families") or FAMILIES[args.task] if f in FAMILIES[args.task]
    ]
    budget = int(config.get("time_budget_seconds", 60))
    output = Path(os.environ.get("SG_OUTPUT_DIR", "."))
    log_file = output / "flaml.log"
    print(
        f"AutoML: {args.task}, {args.metric} (FLAML: {flaml_metric}), {budget} s, "
        f"families {', '.join(families)}; train: {len(train)} rows, test: {len(test)} rows",
        flush=True,
    )
    automl = AutoML()
    automl.fit(
        x_train,
        y_train,
        task=args.task,
        metric=flaml_metric,
        time_budget=budget,
        estimator_list=families,
        log_file_name=str(log_file),
        log_type="all",
        seed=int(config.get("seed", 0)),
        n_jobs=int(config.get("n_jobs", 1)),
        verbose=0,
        mlflow_logging=False,
    )
    if automl.best_estimator is None:
        print("no model was trained within the time budget", flush=True)
        return 1
    value = score(args.metric, automl, x_test, y_test)
    trials = trials_from_log(log_file)
    print(f"models tried: {len(trials)}", flush=True)
    print(f"best: {automl.best_estimator} {json.dumps(automl.best_config, default=str)}")
    print(f"{args.metric} on the test part: {value:.6g}", flush=True)
    params = {
        "task": args.task,
        "target": args.target,
        "best_family": automl.best_estimator,
        **{f"best_{k}"[:250]: str(v)[:500] for k, v in (automl.best_config or {}).items()},
    }
    (output / "metrics.json").write_text(
        json.dumps({"params": params, "metrics": {args.metric: value}}, default=float)
    )
    if os.environ.get("MLFLOW_TRACKING_URI") and os.environ.get("MLFLOW_RUN_ID"):
        import mlflow
        import mlflow.sklearn
        from mlflow import MlflowClient
        from mlflow.models import infer_signature

        ids = log_leaderboard(MlflowClient(), trials, args.metric, flaml_metric)
        example = x_test.head(5)
        with mlflow.start_run(run_id=os.environ["MLFLOW_RUN_ID"]):
            mlflow.log_params(params)
            mlflow.log_metric(args.metric, value)
            mlflow.log_metric("models_tried", len(trials))
            mlflow.set_tag("stagegate.automl.best_family", automl.best_estimator)
            if ids:
                best = min(range(len(ids)), key=lambda i: float(trials[i]["validation_loss"]))
                mlflow.set_tag("stagegate.automl.best_run_id", ids[best])
            mlflow.sklearn.log_model(
                automl,
                name="model",
                signature=infer_signature(example, automl.predict(example)),
                input_example=example,
                # The model is loaded by the client, never by the portal.
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            )
        print("logged to the tracking server", flush=True)
    return 0 if math.isfinite(value) else 1


if __name__ == "__main__":
    sys.exit(main())
