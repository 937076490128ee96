"""Time a local workspace from create() to its Jupyter server answering,
against a bare JupyterLab start on the same machine in the same run.

Usage: .venv/bin/python bench/cloud_local_start.py [--runs 5]

After one untimed warm-up start, each run first starts a bare JupyterLab server (the same interpreter and
offline flags, on a TCP port with a token, no sandbox, limits, socket forward
or state files) and times until GET /api/status with the token answers 200;
then it creates a fresh workspace through the LocalProvider (a real
JupyterLab server with its limits) and times the same, then stops and deletes
it, timing those too. Prints a ratio table: provider start / bare start.
Needs no database.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ratios import print_ratio_table  # noqa: E402
from cloud.base import ResourceState, SizeSpec, WorkspaceSpec  # noqa: E402
from cloud.local import JUPYTER_OFFLINE_FLAGS, LocalProvider  # noqa: E402


def answers(url: str) -> bool:
    status_url = url.replace("/lab?token=", "/api/status?token=")
    try:
        with urllib.request.urlopen(status_url, timeout=2) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:
        return False


def bare_jupyter_start(root: Path) -> float:
    """Seconds from launching a bare JupyterLab server to /api/status answering 200."""
    root.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    token = secrets.token_hex(16)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        *JUPYTER_OFFLINE_FLAGS,
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(  # noqa: S603 - fixed command
        command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{port}/lab?token={token}"
        while not answers(url):
            if proc.poll() is not None:
                raise RuntimeError(f"bare JupyterLab exited with {proc.returncode}")
            if time.perf_counter() - t0 > 300:
                raise RuntimeError("bare JupyterLab did not answer within 300 s")
            time.sleep(0.05)
        return time.perf_counter() - t0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    size = SizeSpec("Standard_DS2_v2", vcpus=2, memory_gb=7.0)
    bare: list[float] = []
    ready: list[float] = []
    stop: list[float] = []
    delete: list[float] = []
    with tempfile.TemporaryDirectory(prefix="sg-bench-") as tmp:
        provider = LocalProvider(Path(tmp) / "workspaces")
        bare_jupyter_start(Path(tmp) / "warm-up")  # untimed: the first import is the slowest
        for run in range(args.runs):
            name = f"sg-ws-bench-{run}"
            bare.append(bare_jupyter_start(Path(tmp) / f"bare-{run}"))
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
            print(
                f"run {run}: bare {bare[-1]:.2f} s, ready {ready[-1]:.2f} s, stop {stop[-1]:.2f} s"
            )
    print_ratio_table(
        baseline_label="bare JupyterLab -> /api/status 200",
        measured_label="create() -> /api/status 200",
        baseline=bare,
        measured=ready,
    )
    for label, values in (("stop", stop), ("delete", delete)):
        print(
            f"{label}: median {statistics.median(values):.2f} s, "
            f"min {min(values):.2f} s, max {max(values):.2f} s ({len(values)} runs)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
