"""A same-run baseline and a ratio, printed as a table (used by the benchmarks)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def print_ratio_table(
    *,
    baseline_label: str,
    measured_label: str,
    baseline: Sequence[float],
    measured: Sequence[float],
) -> float:
    """Print median/min/max of both and their ratios; return the ratio of the medians.

    Runs are paired in order (baseline i ran just before measured i), so the
    per-run ratios compare times taken under the same load.
    """
    if not baseline or len(baseline) != len(measured):
        raise ValueError("need as many baseline runs as measured runs, at least one")
    ratio = statistics.median(measured) / statistics.median(baseline)
    width = max(len(baseline_label), len(measured_label), len("ratio (measured / baseline)"))
    print(f"| {'':{width}} | median    | min       | max       | runs |")
    print(f"|{'-' * (width + 2)}|-----------|-----------|-----------|------|")
    for label, values in ((baseline_label, baseline), (measured_label, measured)):
        print(
            f"| {label:{width}} | {statistics.median(values):7.3f} s | {min(values):7.3f} s "
            f"| {max(values):7.3f} s | {len(values):4} |"
        )
    per_run = [m / b for b, m in zip(baseline, measured, strict=True)]
    print(
        f"| {'ratio (measured / baseline)':{width}} | {ratio:8.2f}x | {min(per_run):8.2f}x "
        f"| {max(per_run):8.2f}x | {len(per_run):4} |"
    )
    print("per-run ratios: " + ", ".join(f"{r:.2f}" for r in per_run))
    return ratio
