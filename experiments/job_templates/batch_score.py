"""Batch scoring of a dataset snapshot by a registered model version, as a job.

Runs inside the job's sandbox, with the job's Python:

    python batch_score.py --task classification --target churned --metric roc_auc \
        --model-uri models:/churn/3 --snapshot-sha256 ... --format csv --delimiter ,

Reads the snapshot from ``SG_INPUT_SNAPSHOT`` and checks that it is the file
the portal pinned (its sha256). Downloads the version from the tracking
server, loads it with MLflow's pyfunc flavour (here, in the job: the portal
never loads a model), and predicts every row of the snapshot (less the
charter's target, when the snapshot has it).

Writes ``$SG_OUTPUT_DIR/predictions.parquet`` (``row_number``, ``prediction``)
and ``$SG_OUTPUT_DIR/batch.json`` (rows, digests) and logs both into the
job's run; the portal's worker reads them back (plain Parquet and JSON) and
writes the rows into the reporting database.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

# The validation template's digests, so a batch's model digest is a validation's.
from validate import sha256_file, sha256_folder

PREDICTIONS = "predictions.parquet"
SUMMARY = "batch.json"


def read_snapshot(path: str, data_format: str, delimiter: str, encoding: str) -> Any:
    """The snapshot as a pandas frame, read the way the data stage read it."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if data_format == "parquet":
        return pq.read_table(path).to_pandas()
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(encoding=encoding or "utf-8"),
        parse_options=pacsv.ParseOptions(delimiter=delimiter or ","),
    )
    return table.to_pandas()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="")
    parser.add_argument("--target", default="")
    parser.add_argument("--metric", default="")
    parser.add_argument("--family", default="")  # the job's common options; unused here
    parser.add_argument("--model-uri", required=True)
    parser.add_argument("--snapshot-sha256", required=True)
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    parser.add_argument("--delimiter", default=",")
    parser.add_argument("--encoding", default="utf-8")
    args = parser.parse_args(argv)

    path = os.environ.get("SG_INPUT_SNAPSHOT")
    if not path:
        raise SystemExit("SG_INPUT_SNAPSHOT is not set: the job has no snapshot to score.")
    actual = sha256_file(path)
    if actual != args.snapshot_sha256:
        raise SystemExit(
            f"The snapshot is not the pinned file ({actual} != {args.snapshot_sha256})."
        )
    frame = read_snapshot(path, args.format, args.delimiter, args.encoding)
    if args.target and args.target in frame.columns:
        frame = frame.drop(columns=[args.target])
    print(f"snapshot: {len(frame)} rows, {frame.shape[1]} columns")

    import mlflow
    import mlflow.pyfunc
    import pandas as pd

    work = Path(tempfile.mkdtemp(prefix="batch-"))
    folder = Path(
        mlflow.artifacts.download_artifacts(artifact_uri=args.model_uri, dst_path=str(work))
    )
    model = mlflow.pyfunc.load_model(str(folder))
    predicted = model.predict(frame)
    if isinstance(predicted, pd.DataFrame):
        predicted = predicted.iloc[:, 0]
    values = pd.Series(list(predicted))
    if len(values) != len(frame):
        raise SystemExit(f"The model answered {len(values)} rows for {len(frame)}.")
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    out = pd.DataFrame(
        {
            "row_number": range(len(values)),
            "prediction": values.astype("float64") if numeric else values.astype("string"),
        }
    )
    output = Path(os.environ.get("SG_OUTPUT_DIR", "."))
    out.to_parquet(output / PREDICTIONS, index=False)
    summary = {
        "rows": len(out),
        "snapshot_sha256": actual,
        "model_sha256": sha256_folder(folder),
        "numeric": bool(numeric),
    }
    (output / SUMMARY).write_text(json.dumps(summary))
    print(f"{len(out)} predictions written")
    if os.environ.get("MLFLOW_TRACKING_URI") and os.environ.get("MLFLOW_RUN_ID"):
        with mlflow.start_run(run_id=os.environ["MLFLOW_RUN_ID"]):
            mlflow.log_metric("rows_scored", len(out))
            mlflow.log_artifact(str(output / PREDICTIONS))
            mlflow.log_artifact(str(output / SUMMARY))
        print("predictions logged to the tracking server")
    return 0


if __name__ == "__main__":
    sys.exit(main())
