"""Profile 1,000,000 rows x 20 columns, against pandas ``describe()`` of the
same table in the same run.

12 float columns (some missing values), 4 integer columns, 3 categorical
string columns and a binary target; times ``profile_table`` with the target
set, i.e. everything the profile page shows. The baseline is a plain
``DataFrame.describe(include="all")`` of the same table (converted to pandas
once, outside the clock): per-column count, mean, std, quartiles, unique and
top value, no histograms, outliers, duplicates or correlations. The two
alternate, so both see the same load; the ratio is profile / describe.

    .venv/bin/python bench/datasets_profile.py [--rows 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ratios import print_ratio_table  # noqa: E402


def make_table(rows: int) -> pa.Table:
    rng = np.random.default_rng(42)
    columns: dict[str, object] = {}
    for i in range(12):
        values = rng.normal(loc=i, scale=1 + i, size=rows)
        values[rng.random(rows) < 0.02] = np.nan
        columns[f"f{i}"] = values
    for i in range(4):
        columns[f"n{i}"] = rng.integers(0, 1000 * (i + 1), size=rows)
    for i, labels in enumerate((["north", "south", "east", "west"], ["basic", "plus", "pro"])):
        columns[f"c{i}"] = np.array(labels)[rng.integers(0, len(labels), size=rows)]
    columns["c2"] = np.char.add("city-", rng.integers(0, 500, size=rows).astype(str))
    columns["churned"] = np.where(rng.random(rows) < 0.25, "yes", "no")
    return pa.table(columns)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("DJANGO_DEBUG", "true")
    os.environ.setdefault("STAGEGATE_VAR_DIR", tempfile.mkdtemp(prefix="bench-var-"))
    import django

    django.setup()
    from datasets.profiling import profile_table

    table = make_table(args.rows)
    frame = table.to_pandas()
    described = frame.describe(include="all")  # warm-up, untimed
    profile = profile_table(table, target="churned")  # warm-up, untimed
    baseline, measured = [], []
    for _ in range(args.runs):
        start = time.perf_counter()
        described = frame.describe(include="all")
        baseline.append(time.perf_counter() - start)
        start = time.perf_counter()
        profile = profile_table(table, target="churned")
        measured.append(time.perf_counter() - start)
    print(f"table: {table.num_rows:,} rows x {table.num_columns} columns, cores: {os.cpu_count()}")
    print(
        f"describe() columns: {described.shape[1]}, profiled columns: {len(profile['columns'])}, "
        f"duplicated rows: {profile['duplicated_rows']}"
    )
    print_ratio_table(
        baseline_label='pandas describe(include="all")',
        measured_label="profile_table (target set)",
        baseline=baseline,
        measured=measured,
    )
    print("target: profile_table under 10 s on 2 cores")


if __name__ == "__main__":
    main()
