"""Time a local workspace from create() to its Jupyter server answering.

Usage: .venv/bin/python bench/cloud_local_start.py [--runs 5]

Each run creates a fresh workspace through the LocalProvider (a real
JupyterLab server with limits), measures until GET /api/status with the token
answers 200, then stops and deletes it, timing those too. Needs no database.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud.base import ResourceState, SizeSpec, WorkspaceSpec  # noqa: E402
from cloud.local import LocalProvider  # noqa: E402


def answers(url: str) -> bool:
    status_url = url.replace("/lab?token=", "/api/status?token=")
    try:
        with urllib.request.urlopen(status_url, timeout=2) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    size = SizeSpec("Standard_DS2_v2", vcpus=2, memory_gb=7.0)
    ready, stop, delete = [], [], []
    with tempfile.TemporaryDirectory(prefix="sg-bench-") as tmp:
        provider = LocalProvider(Path(tmp) / "workspaces")
        for run in range(args.runs):
            name = f"sg-ws-bench-{run}"
            t0 = time.perf_counter()
            status = provider.workspace_create(WorkspaceSpec(name, size))
            while status.state == ResourceState.CREATING:
                time.sleep(0.05)
                status = provider.workspace_status(name)
            if status.state != ResourceState.RUNNING or not answers(status.url):
                print(f"run {run}: {status.state} {status.detail}", file=sys.stderr)
                return 1
            ready.append(time.perf_counter() - t0)
            t1 = time.perf_counter()
            provider.workspace_stop(name)
            stop.append(time.perf_counter() - t1)
            t2 = time.perf_counter()
            provider.workspace_delete(name)
            delete.append(time.perf_counter() - t2)
            print(f"run {run}: ready {ready[-1]:.2f} s, stop {stop[-1]:.2f} s")
    for label, values in (("create -> /api/status 200", ready), ("stop", stop), ("delete", delete)):
        print(
            f"{label}: median {statistics.median(values):.2f} s, "
            f"min {min(values):.2f} s, max {max(values):.2f} s ({len(values)} runs)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
