"""Drift of 1,000,000 logged rows x 20 features against a training split of
the same size.

14 float features (2% missing), 3 integer features and 3 categorical ones;
half of the float features are shifted in the window, so the report has
alerts to find. Times, separately:

- profiling the training split (``reference_profile``: sorting, deciles,
  category counts; done once per split and kept),
- the report (``drift_report``: PSI, Jensen-Shannon, normalised Wasserstein
  per feature, and the predictions),
- reading the window's sample log (JSON lines, the scoring process's
  shape) into a frame: ``samples_read`` (Arrow's JSON reader) and, for
  comparison, ``json.loads`` per line and ``samples_frame`` (``--json-rows``
  lines, scaled to 1M rows in the output).

    .venv/bin/python bench/drift.py [--rows 1000000] [--runs 3] [--json-rows 200000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deployments import drift  # noqa: E402


def make_frame(rows: int, seed: int, *, shift: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    for i in range(14):
        values = rng.normal(
            loc=i + (0.5 * (1 + i) if shift and i % 2 else 0), scale=1 + i, size=rows
        )
        values[rng.random(rows) < 0.02] = np.nan
        columns[f"f{i}"] = values
    for i in range(3):
        columns[f"n{i}"] = rng.integers(0, 1000 * (i + 1), size=rows)
    columns["region"] = np.array(["north", "south", "east", "west"])[rng.integers(0, 4, rows)]
    columns["plan"] = np.array(["basic", "plus", "pro"])[rng.integers(0, 3, rows)]
    columns["city"] = np.char.add("city-", rng.integers(0, 500, size=rows).astype(str))
    columns["churned"] = np.where(rng.random(rows) < (0.5 if shift else 0.25), "yes", "no")
    return pd.DataFrame(columns)


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def summary(name: str, times: list[float], scale: float = 1.0) -> str:
    scaled = [t * scale for t in times]
    return (
        f"| {name} | {statistics.median(scaled):.2f} s | {min(scaled):.2f} s "
        f"| {max(scaled):.2f} s | {len(times)} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json-rows", type=int, default=200_000)
    args = parser.parse_args()

    training = make_frame(args.rows, 1, shift=False)
    window = make_frame(args.rows, 2, shift=True)
    predictions = window.pop("churned")
    features = training.shape[1] - 1
    lines = [  # the sample log's lines
        json.dumps({"ts": 0.0, "deployment": "blue", "input": row, "prediction": p})
        for row, p in zip(
            json.loads(window.iloc[: args.json_rows].to_json(orient="records")),
            predictions.iloc[: args.json_rows],
            strict=True,
        )
    ]

    data = "".join(line + "\n" for line in lines).encode()
    profile_times, report_times, read_times, parse_times = [], [], [], []
    report = None
    for _ in range(args.runs):
        elapsed, reference = timed(lambda: drift.reference_profile(training, target="churned"))
        profile_times.append(elapsed)
        elapsed, report = timed(
            lambda ref=reference: drift.drift_report(ref, window, predictions=predictions)
        )
        report_times.append(elapsed)
        elapsed, (read, _) = timed(lambda: drift.samples_read(data))
        read_times.append(elapsed)
        assert read.shape == (args.json_rows, features)
        elapsed, _ = timed(lambda: drift.samples_frame(json.loads(line) for line in lines))
        parse_times.append(elapsed)

    assert report is not None
    print(f"{args.rows:,} rows x {features} features, {args.runs} runs")
    print(
        f"drifted features: {report.drifted_features}/{report.judged_features}, "
        f"dataset drift: {report.dataset_drift}, predictions: "
        f"{report.prediction.status if report.prediction else '-'}"
    )
    print("| step | median | min | max | runs |")
    print("|---|---|---|---|---|")
    print(summary("profile the training split", profile_times))
    print(summary("drift report", report_times))
    print(
        summary(
            f"sample log to a frame, samples_read (per 1M rows, from {args.json_rows:,})",
            read_times,
            scale=1_000_000 / args.json_rows,
        )
    )
    print(
        summary(
            f"the same, json.loads per line (per 1M rows, from {args.json_rows:,})",
            parse_times,
            scale=1_000_000 / args.json_rows,
        )
    )


if __name__ == "__main__":
    main()
