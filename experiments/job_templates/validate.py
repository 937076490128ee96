"""Validation of a registered model version against the charter, as a job.

Runs inside the job's sandbox, with the job's Python:

    python validate.py --task classification --target churned --metric roc_auc \
        --model-uri models:/churn/3 --champion-uri models:/churn/2 --segments plan \
        --train-sha256 ... --test-sha256 ...

Reads the split's held-out (test) part from ``SG_INPUT_TEST`` and checks that
both parts are the files the portal pinned (their sha256). Downloads the
version (and the champion, if any) from the tracking server, pins each by the
sha256 of its files, and:

- scores the charter's metric on the test part, for the version and the
  champion, on the same rows;
- scores it per value of each segment column, with the gap between the best
  and the worst segment;
- checks, in a fresh Python process, that the version loads from its MLflow
  artifact, that its signature names the split's columns, and that it answers
  a sample within the latency budget.

Writes everything to ``$SG_OUTPUT_DIR/validation.json`` and logs that file
into the job's run as the artifact ``validation.json``; the portal reads it
back. The models are loaded here, in the job, never in the portal.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

MIN_SEGMENT_ROWS = 5
MAX_SEGMENTS = 30
SAMPLE_ROWS = 20
LATENCY_PASSES = 5


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_folder(folder: Path) -> str:
    """One digest over every file of a model folder (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


class Scorer:
    """A model loaded from its folder: scikit-learn's flavour when it has one
    (probabilities for roc_auc and log_loss), else the generic pyfunc."""

    def __init__(self, folder: Path) -> None:
        import mlflow.pyfunc

        self.pyfunc = mlflow.pyfunc.load_model(str(folder))
        self.flavors = set(self.pyfunc.metadata.flavors)
        self.model: Any = self.pyfunc
        if "sklearn" in self.flavors:
            import mlflow.sklearn

            self.model = mlflow.sklearn.load_model(str(folder))

    def score(self, metric: str, x: pd.DataFrame, y: pd.Series) -> float | None:
        from baseline import score

        try:
            return finite(score(metric, self.model, x, y))
        except (ValueError, AttributeError, SystemExit) as exc:
            print(f"{metric} could not be computed on {len(x)} rows: {exc}")
            return None


def segments(
    scorer: Scorer, metric: str, x: pd.DataFrame, y: pd.Series, columns: list[str]
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for column in columns:
        if column not in x.columns:
            found.append({"column": column, "error": "The split has no such column.", "rows": []})
            continue
        values = x[column].astype("string").fillna("(missing)")
        counts = values.value_counts().head(MAX_SEGMENTS)
        rows: list[dict[str, Any]] = []
        scored: list[float] = []
        for value, count in counts.items():
            if count < MIN_SEGMENT_ROWS:
                continue
            mask = values == value
            measured = scorer.score(metric, x[mask], y[mask])
            rows.append({"value": str(value), "rows": int(count), "value_metric": measured})
            if measured is not None:
                scored.append(measured)
        gap = (max(scored) - min(scored)) if len(scored) >= 2 else None
        found.append({"column": column, "rows": rows, "gap": gap})
    return found


def integration(folder: Path, sample: Path, columns: list[str], budget_ms: float) -> dict[str, Any]:
    """Load and answer in a fresh process; see ``integration_main``."""
    started = time.monotonic()
    done = subprocess.run(  # noqa: S603 - this script, no shell
        [sys.executable, __file__, "--integration", str(folder), str(sample), str(budget_ms)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        return {"ok": False, "error": (done.stderr or done.stdout)[-2000:], "seconds": seconds}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    expected, declared = sorted(columns), sorted(result.get("signature_inputs") or [])
    result["expected_inputs"] = expected
    result["signature_matches"] = declared == expected
    result["within_budget"] = result["latency_ms_p95"] <= budget_ms
    result["ok"] = bool(
        result["signature_matches"] and result["within_budget"] and result["answered"]
    )
    return result


def integration_main(folder: str, sample: str, budget_ms: str) -> int:
    """In a fresh process: load the model, read its signature, answer a
    sample row by row; print one JSON line."""
    started = time.monotonic()
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(folder)
    load_seconds = time.monotonic() - started
    signature = model.metadata.signature
    inputs = [c.name for c in signature.inputs.inputs] if signature else None
    rows = pd.read_parquet(sample)
    latencies = []
    answered = True
    if len(rows):
        model.predict(rows.iloc[[0]])  # the first call pays for lazy imports: not timed
    # Every row, LATENCY_PASSES times: the 95th percentile of that many calls
    # measures the model, not one stall of a busy machine.
    for _ in range(LATENCY_PASSES):
        for i in range(len(rows)):
            t = time.perf_counter()
            out = model.predict(rows.iloc[[i]])
            latencies.append((time.perf_counter() - t) * 1000)
            answered = answered and len(out) == 1
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else 0.0
    print(
        json.dumps(
            {
                "load_seconds": round(load_seconds, 3),
                "signature_inputs": inputs,
                "sample_rows": len(rows),
                "latency_ms_p50": round(latencies[len(latencies) // 2], 3) if latencies else 0.0,
                "latency_ms_p95": round(p95, 3),
                "budget_ms": float(budget_ms),
                "answered": answered,
            }
        )
    )
    return 0


def download(uri: str, into: Path) -> Path:
    import mlflow

    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(into)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["classification", "regression"], required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--metric", required=True)
    parser.add_argument("--family", default="")  # the job's common options; unused here
    parser.add_argument("--model-uri", required=True)
    parser.add_argument("--champion-uri", default="")
    parser.add_argument("--segments", default="")
    parser.add_argument("--train-sha256", required=True)
    parser.add_argument("--test-sha256", required=True)
    parser.add_argument("--latency-budget-ms", type=float, default=200.0)
    args = parser.parse_args(argv)

    report: dict[str, Any] = {"metric": args.metric, "task": args.task, "target": args.target}
    for part, expected in (("train", args.train_sha256), ("test", args.test_sha256)):
        path = os.environ.get(f"SG_INPUT_{part.upper()}")
        if not path:
            raise SystemExit(f"SG_INPUT_{part.upper()} is not set: the job has no such input.")
        actual = sha256_file(path)
        if actual != expected:
            raise SystemExit(f"The {part} part is not the pinned file ({actual} != {expected}).")
        report[f"{part}_sha256"] = actual
    test = pd.read_parquet(os.environ["SG_INPUT_TEST"])
    if args.target not in test.columns:
        raise SystemExit(f"The split has no column {args.target!r} (the charter's target).")
    x, y = test.drop(columns=[args.target]), test[args.target]
    report["rows"] = len(test)
    print(f"test: {len(test)} rows, {x.shape[1]} features")

    work = Path(tempfile.mkdtemp(prefix="validate-"))
    folder = download(args.model_uri, work / "candidate")
    report["model_sha256"] = sha256_folder(folder)
    candidate = Scorer(folder)
    report["flavors"] = sorted(candidate.flavors)
    report["value"] = candidate.score(args.metric, x, y)
    print(f"{args.metric} of the version on the test part: {report['value']}")

    if args.champion_uri:
        champion_folder = download(args.champion_uri, work / "champion")
        report["champion_sha256"] = sha256_folder(champion_folder)
        report["champion_value"] = Scorer(champion_folder).score(args.metric, x, y)
        print(f"{args.metric} of the champion on the same rows: {report['champion_value']}")

    columns = [c for c in args.segments.split(",") if c]
    report["segments"] = segments(candidate, args.metric, x, y, columns)

    sample = work / "sample.parquet"
    x.head(SAMPLE_ROWS).to_parquet(sample)
    report["integration"] = integration(folder, sample, list(x.columns), args.latency_budget_ms)
    print(f"integration check: {'passed' if report['integration']['ok'] else 'failed'}")

    output = Path(os.environ.get("SG_OUTPUT_DIR", "."))
    (output / "validation.json").write_text(json.dumps(report, default=float))
    if os.environ.get("MLFLOW_TRACKING_URI") and os.environ.get("MLFLOW_RUN_ID"):
        import mlflow

        with mlflow.start_run(run_id=os.environ["MLFLOW_RUN_ID"]):
            if report["value"] is not None:
                mlflow.log_metric(args.metric, report["value"])
            mlflow.log_artifact(str(output / "validation.json"))
        print("report logged to the tracking server")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--integration":
        sys.exit(integration_main(*sys.argv[2:]))
    sys.exit(main())
