"""Local scoring against a bare ``mlflow models serve`` of the same model, in one run.

Usage (MLflow's own server from its virtualenv, made by
``make .venv-mlflow-server/.installed``):

    .venv/bin/python bench/serving.py [--requests 2000] [--concurrency 4]

The demo model: a scikit-learn gradient-boosted classifier on a churn-like
table of 8 numeric features (2,000 rows), saved once as an MLflow model. The
portal's side is what a caller reaches: the endpoint's router and one
sandboxed scoring process (``cloud/local_serving.py``), with the key checked
and 10% of requests sampled to the log. MLflow's side is ``mlflow models
serve --env-manager local`` (its uvicorn server, one worker) of the same
folder. Both run on this machine, one after the other, with the same client:
``--concurrency`` threads, each with a kept-alive connection, sending one-row
requests (``dataframe_split``). It prints p50/p99 latency at concurrency 1
and under load, requests per second under load, and the ratios (portal /
MLflow: below 1 is faster for latency; above 1 for throughput).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MLFLOW = ROOT / ".venv-mlflow-server" / "bin" / "mlflow"
KEY = "sgk_bench-" + hashlib.sha256(os.urandom(8)).hexdigest()[:16]
FEATURES = [f"f{i}" for i in range(8)]


def train(folder: Path) -> Path:
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.ensemble import GradientBoostingClassifier

    rng = np.random.default_rng(7)
    x = pd.DataFrame(rng.normal(size=(2000, len(FEATURES))), columns=FEATURES)
    y = (x["f0"] + 0.5 * x["f1"] - x["f2"] + rng.normal(scale=0.5, size=2000) > 0).astype(int)
    model = GradientBoostingClassifier(n_estimators=50, random_state=7).fit(x, y)
    path = folder / "model"
    mlflow.sklearn.save_model(
        model, str(path), signature=infer_signature(x, y), serialization_format="cloudpickle"
    )
    return path


def body() -> bytes:
    row = [round(0.1 * i, 3) for i in range(len(FEATURES))]
    return json.dumps({"dataframe_split": {"columns": FEATURES, "data": [row]}}).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def drive(url: str, headers: dict[str, str], requests: int, concurrency: int) -> dict[str, float]:
    """Send ``requests`` one-row requests over ``concurrency`` kept-alive connections."""
    parts = urllib.parse.urlsplit(url)
    payload = body()
    latencies: list[float] = []
    lock = threading.Lock()
    errors = [0]
    per_thread = requests // concurrency

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        mine = []
        for _ in range(per_thread):
            started = time.perf_counter()
            conn.request("POST", parts.path, body=payload, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if response.status != 200:
                errors[0] += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "rps": len(latencies) / elapsed,
        "errors": errors[0],
    }


def wait_ready(url: str, headers: dict[str, str], timeout: float = 120.0) -> None:
    parts = urllib.parse.urlsplit(url)
    deadline = time.monotonic() + timeout
    while True:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
        try:
            conn.request("POST", parts.path, body=body(), headers=headers)
            if conn.getresponse().status == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer in {timeout} s")
        time.sleep(0.5)


def measure(url: str, headers: dict[str, str], requests: int, concurrency: int) -> dict[str, Any]:
    wait_ready(url, headers)
    drive(url, headers, 200, concurrency)  # warm-up
    return {
        "single": drive(url, headers, max(200, requests // 4), 1),
        "load": drive(url, headers, requests, concurrency),
    }


def portal_side(model: Path, root: Path, requests: int, concurrency: int) -> dict[str, Any]:
    from cloud.base import DeploymentSpec, EndpointSpec, SizeSpec
    from cloud.local import LocalProvider

    provider = LocalProvider(root / "res", ready_timeout=120)
    name = "sg-ep-bench"
    status = provider.endpoint_create(
        EndpointSpec(name, key_sha256=hashlib.sha256(KEY.encode()).hexdigest())
    )
    try:
        provider.deployment_start(
            DeploymentSpec(
                endpoint=name,
                name="blue",
                size=SizeSpec("bench", vcpus=2, memory_gb=4.0),
                model_dir=str(model),
                sample_rate=0.1,
            )
        )
        provider.endpoint_set_traffic(name, {"blue": 100})
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        return measure(status.url, headers, requests, concurrency)
    finally:
        provider.endpoint_delete(name)


def mlflow_side(model: Path, requests: int, concurrency: int) -> dict[str, Any]:
    if not MLFLOW.exists():
        raise SystemExit(f"{MLFLOW} is missing: make .venv-mlflow-server/.installed")
    port = free_port()
    env = {"PATH": f"{MLFLOW.parent}:/usr/bin:/bin", "HOME": tempfile.mkdtemp(), "LANG": "C.UTF-8"}
    proc = subprocess.Popen(  # noqa: S603 - an argv list, no shell
        [
            str(MLFLOW),
            "models",
            "serve",
            "-m",
            str(model),
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        headers = {"Content-Type": "application/json"}
        return measure(f"http://127.0.0.1:{port}/invocations", headers, requests, concurrency)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sg-bench-serving-"))
    try:
        model = train(work)
        portal = portal_side(model, work, args.requests, args.concurrency)
        mlflow = mlflow_side(model, args.requests, args.concurrency)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"one-row requests: {args.requests} at concurrency {args.concurrency}")
    print(f"{'':24}{'portal':>12}{'mlflow serve':>14}{'ratio':>8}")
    for phase, label in (("single", "concurrency 1"), ("load", f"concurrency {args.concurrency}")):
        for metric, unit in (("p50_ms", "ms"), ("p99_ms", "ms")):
            p, m = portal[phase][metric], mlflow[phase][metric]
            print(f"{label + ' ' + metric:24}{p:>10.2f}{unit}{m:>12.2f}{unit}{p / m:>8.2f}")
    p, m = portal["load"]["rps"], mlflow["load"]["rps"]
    print(f"{'throughput (req/s)':24}{p:>12.0f}{m:>14.0f}{p / m:>8.2f}")
    print(f"errors: portal {portal['load']['errors']}, mlflow {mlflow['load']['errors']}")


if __name__ == "__main__":
    main()
