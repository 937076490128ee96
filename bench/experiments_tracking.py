"""The portal's tracking API against MLflow's own tracking server, in one run.

Usage (PostgreSQL from the test environment; the MLflow server from its own
virtualenv, made by ``make .venv-mlflow-server/.installed``):

    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/experiments_tracking.py

Both servers run on this machine against the same PostgreSQL server (MLflow
in a database of its own), each with two worker processes: the portal under
gunicorn (``portal.wsgi``), MLflow as ``mlflow server --workers 2``. The same
client (``mlflow-skinny`` of our virtualenv, ``MlflowClient``) drives both,
one after the other, workload by workload:

- ingest: runs × 20 metrics × 1,000 steps through ``log_batch`` (1,000 points
  a call), 200 runs at ``--scale 1``;
- search: ``search_runs`` returning 1,000 of 2,000 runs, each with 5 params,
  5 metrics and 3 tags;
- a filtered, ordered search over the same runs (a param, a metric range,
  ordered by a metric, 100 results).

It prints points per second, times, the ratios against the issue's targets
(ingest ≥ 5× MLflow's points/s, search ≤ 1/5 of MLflow's time) and the bytes
per metric point each server's metric table takes in PostgreSQL
(``pg_total_relation_size`` / points). ``--scale`` shrinks the runs of both
workloads for a quick look.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MLFLOW_SERVER = ROOT / ".venv-mlflow-server" / "bin" / "mlflow"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only")
os.environ.setdefault("STATIC_MANIFEST", "false")
os.environ.setdefault("STAGEGATE_VAR_DIR", tempfile.mkdtemp(prefix="stagegate-bench-"))
# Unused by the tracking API, but the portal refuses to start without keys.
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", base64.urlsafe_b64encode(os.urandom(32)).decode())
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "300")

METRICS_PER_RUN = 20
STEPS = 1000
SEARCH_PARAMS, SEARCH_METRICS, SEARCH_TAGS = 5, 5, 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_answers(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited early (status {proc.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback
                return
        except urllib.error.HTTPError:
            return  # it answers; the status does not matter here
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not answer {url} within 120 s")


@contextmanager
def server(cmd: list[str], env: dict[str, str], probe: str, what: str) -> Iterator[None]:
    log = open(Path(env["BENCH_LOG_DIR"]) / f"{what}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_until_answers(probe, proc, what)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


class Target:
    """One tracking server as the client sees it."""

    def __init__(self, label: str, uri: str, token: str | None) -> None:
        self.label, self.uri, self.token = label, uri, token

    def client(self) -> Any:
        from mlflow import MlflowClient

        if self.token:
            os.environ["MLFLOW_TRACKING_TOKEN"] = self.token
        else:
            os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)


def ingest(target: Target, runs: int, experiment: str) -> float:
    """Log runs × 20 metrics × 1,000 steps with log_batch; return the seconds taken."""
    from mlflow.entities import Metric

    client = target.client()
    experiment_id = client.create_experiment(experiment)
    base = int(time.time() * 1000)
    started = time.perf_counter()
    for r in range(runs):
        run_id = client.create_run(experiment_id, run_name=f"ingest-{r}").info.run_id
        for m in range(METRICS_PER_RUN):
            client.log_batch(
                run_id,
                metrics=[
                    Metric(f"metric_{m}", 1.0 / (step + 1) + m, base + step, step)
                    for step in range(STEPS)
                ],
            )
        with contextlib.redirect_stdout(io.StringIO()):  # its "View run at ..." line
            client.set_terminated(run_id)
    return time.perf_counter() - started


def client_encode_seconds(batches: int = 20) -> float:
    """Seconds the client spends turning one 1,000-point batch into its JSON
    body (protobuf messages, then JSON): the same for both servers, and a
    floor under any server's time per batch."""
    from mlflow.entities import Metric
    from mlflow.protos.service_pb2 import LogBatch
    from mlflow.utils.proto_json_utils import message_to_json

    points = [Metric("metric_0", 1.0 / (step + 1), step, step) for step in range(STEPS)]
    started = time.perf_counter()
    for _ in range(batches):
        message_to_json(LogBatch(run_id="0" * 32, metrics=[p.to_proto() for p in points]))
    return (time.perf_counter() - started) / batches


def client_batch_seconds(batches: int = 20) -> float:
    """Seconds per ``log_batch`` of 1,000 points by the client alone: against
    ``canned_server`` answering ``{}``, so encoding, HTTP and all, with no
    tracking server behind it (the median of ``batches`` calls)."""
    from mlflow.entities import Metric

    times = []
    with canned_server(b"{}") as uri:
        client = Target("canned", uri, None).client()
        for b in range(batches + 1):
            points = [Metric(f"metric_{b}", 1.0 / (s + 1), s, s) for s in range(STEPS)]
            started = time.perf_counter()
            client.log_batch("0" * 32, metrics=points)
            times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def populate_search(target: Target, runs: int, experiment: str) -> str:
    from mlflow.entities import Metric, Param, RunTag

    client = target.client()
    experiment_id = str(client.create_experiment(experiment))
    rng = random.Random(9)  # noqa: S311 - benchmark data, the same for both servers
    base = int(time.time() * 1000)
    for r in range(runs):
        run_id = client.create_run(experiment_id, run_name=f"search-{r}").info.run_id
        client.log_batch(
            run_id,
            params=[Param("group", "a" if r % 2 == 0 else "b")]
            + [Param(f"p{i}", str(rng.randint(0, 9))) for i in range(1, SEARCH_PARAMS)],
            metrics=[Metric(f"m{i}", rng.random(), base + r, 0) for i in range(SEARCH_METRICS)],
            tags=[RunTag(f"t{i}", f"value-{r % 7}") for i in range(SEARCH_TAGS)],
        )
    return experiment_id


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    n = fn()
    return time.perf_counter() - started, n


def search_half(target: Target, experiment_id: str, runs: int) -> tuple[float, int]:
    client = target.client()

    def call() -> int:
        found = client.search_runs(
            [experiment_id], filter_string="params.group = 'a'", max_results=runs // 2
        )
        assert all(len(r.data.metrics) == SEARCH_METRICS for r in found)
        assert all(len(r.data.params) == SEARCH_PARAMS for r in found)
        return len(found)

    return timed(call)


def search_filtered(target: Target, experiment_id: str) -> tuple[float, int]:
    client = target.client()

    def call() -> int:
        found = client.search_runs(
            [experiment_id],
            filter_string="params.group = 'a' AND metrics.m0 > 0.25 AND metrics.m1 < 0.9",
            order_by=["metrics.m2 DESC"],
            max_results=100,
        )
        values = [r.data.metrics["m2"] for r in found]
        assert values == sorted(values, reverse=True)
        return len(found)

    return timed(call)


@contextmanager
def canned_server(body: bytes) -> Iterator[str]:
    """A trivial HTTP server answering every request with ``body``: what the
    client costs with (almost) no server behind it."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def client_search_floor(
    target: Target, experiment_id: str, runs: int, repeats: int
) -> dict[str, list[float]]:
    """The client's own time for both searches: this server's exact answers
    (fetched once) replayed by ``canned_server``, so the client parses the
    same runs with no database and no server work behind them."""
    import requests

    bodies: dict[str, dict[str, Any]] = {
        "search": {
            "experiment_ids": [experiment_id],
            "filter": "params.group = 'a'",
            "max_results": runs // 2,
        },
        "filtered": {
            "experiment_ids": [experiment_id],
            "filter": "params.group = 'a' AND metrics.m0 > 0.25 AND metrics.m1 < 0.9",
            "order_by": ["metrics.m2 DESC"],
            "max_results": 100,
        },
    }
    out: dict[str, list[float]] = {}
    for name, request in bodies.items():
        answer = requests.post(
            f"{target.uri}/api/2.0/mlflow/runs/search",
            json=request,
            headers={"Authorization": f"Bearer {target.token}"},
            timeout=300,
        )
        answer.raise_for_status()
        with canned_server(answer.content) as uri:
            canned = Target("canned", uri, None)
            expected = runs // 2 if name == "search" else len(answer.json()["runs"])
            for _ in range(repeats + 1):  # the first warms the client up
                if name == "search":
                    seconds, n = search_half(canned, experiment_id, runs)
                else:
                    seconds, n = search_filtered(canned, experiment_id)
                assert n == expected, (name, n)
                out.setdefault(name, []).append(seconds)
            out[name] = out[name][1:]
    return out


def relation_bytes(dsn: str, table: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"VACUUM ANALYZE {table}")  # the size of a settled table
        row = conn.execute(
            f"SELECT pg_total_relation_size('{table}'), count(*) FROM {table}"  # noqa: S608
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def row(name: str, values: list[float], unit: str = "s") -> str:
    fmt = "{:.3f} s" if unit == "s" else "{:,.0f}"
    return (
        f"| {name} | {fmt.format(statistics.median(values))} | {fmt.format(min(values))} "
        f"| {fmt.format(max(values))} | {len(values)} |"
    )


def main() -> int:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full runs")
    parser.add_argument(
        "--ingest-scale", type=float, help="fraction of the ingest's 200 runs (default: --scale)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed searches per server")
    parser.add_argument("--workers", type=int, default=2, help="server processes each")
    args = parser.parse_args()
    if not MLFLOW_SERVER.exists():
        raise SystemExit(f"{MLFLOW_SERVER} is missing: run `make .venv-mlflow-server/.installed`")
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgres"):
        raise SystemExit("DATABASE_URL must name PostgreSQL: run me under scripts/testenv.py")
    ingest_scale = args.scale if args.ingest_scale is None else args.ingest_scale
    ingest_runs = max(1, round(200 * ingest_scale))
    search_runs = max(2, round(2000 * args.scale) // 2 * 2)

    import django

    django.setup()
    import psycopg
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from accounts.models import User
    from accounts.services import token_create
    from projects.services import project_create

    lead, _ = User.objects.get_or_create(username="bench-lead")
    project = project_create(actor=lead, name="Bench", slug=f"bench-{int(time.time())}")
    _, token = token_create(user=lead, name="bench")
    from django.db import connection

    connection.close()

    parsed = urllib.parse.urlparse(database_url)
    base_dsn = f"postgresql://{parsed.username}@{parsed.hostname}:{parsed.port}"
    portal_dsn = f"{base_dsn}{parsed.path}"
    mlflow_dsn = f"{base_dsn}/mlflow_bench"
    with psycopg.connect(f"{base_dsn}/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS mlflow_bench")
        conn.execute("CREATE DATABASE mlflow_bench")

    work = Path(tempfile.mkdtemp(prefix="stagegate-bench-tracking-"))
    env = dict(os.environ, BENCH_LOG_DIR=str(work))
    env.pop("MLFLOW_TRACKING_URI", None)
    env["STAGEGATE_STORAGE_URL"] = f"file://{work / 'portal-artifacts'}"
    portal_port, mlflow_port = free_port(), free_port()
    portal_cmd = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "portal.wsgi:application",
        f"--bind=127.0.0.1:{portal_port}",
        f"--workers={args.workers}",
        "--timeout=300",
        "--log-level=warning",
    ]
    mlflow_cmd = [
        str(MLFLOW_SERVER),
        "server",
        "--backend-store-uri",
        f"postgresql+psycopg2://{parsed.username}@{parsed.hostname}:{parsed.port}/mlflow_bench",
        "--artifacts-destination",
        str(work / "mlflow-artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(mlflow_port),
        "--workers",
        str(args.workers),
    ]
    portal = Target("Stagegate", f"http://127.0.0.1:{portal_port}/mlflow/{project.slug}", token)
    mlflow = Target("MLflow server", f"http://127.0.0.1:{mlflow_port}", None)
    print(
        f"ingest: {ingest_runs} runs x {METRICS_PER_RUN} metrics x {STEPS} steps; "
        f"search: {search_runs} runs; {args.workers} server processes each; logs in {work}",
        flush=True,
    )

    results: dict[str, dict[str, Any]] = {}
    with (
        server(portal_cmd, env, f"http://127.0.0.1:{portal_port}/healthz", "portal"),
        server(mlflow_cmd, env, f"http://127.0.0.1:{mlflow_port}/health", "mlflow"),
    ):
        for target in (mlflow, portal):
            seconds = ingest(target, ingest_runs, "ingest")
            results.setdefault(target.label, {})["ingest"] = seconds
            points = ingest_runs * METRICS_PER_RUN * STEPS
            print(f"{target.label}: ingest {seconds:.1f} s, {points / seconds:,.0f} points/s")
        experiments = {}
        for target in (mlflow, portal):
            started = time.perf_counter()
            experiments[target.label] = populate_search(target, search_runs, "search")
            print(
                f"{target.label}: {search_runs} runs for search logged in "
                f"{time.perf_counter() - started:.1f} s",
                flush=True,
            )
        for target in (mlflow, portal):  # one untimed call each: connections, caches
            search_half(target, experiments[target.label], search_runs)
            search_filtered(target, experiments[target.label])
        for _ in range(args.repeats):  # alternate, so both see the same load
            for target in (mlflow, portal):
                seconds, n = search_half(target, experiments[target.label], search_runs)
                assert n == search_runs // 2, (target.label, n)
                results[target.label].setdefault("search", []).append(seconds)
                seconds, n = search_filtered(target, experiments[target.label])
                assert n > 0, target.label
                results[target.label].setdefault("filtered", []).append(seconds)

        floor = client_search_floor(portal, experiments[portal.label], search_runs, args.repeats)

    ours, theirs = results[portal.label], results[mlflow.label]
    points = ingest_runs * METRICS_PER_RUN * STEPS
    ingest_ratio = theirs["ingest"] / ours["ingest"]
    search_ratio = statistics.median(ours["search"]) / statistics.median(theirs["search"])
    filtered_ratio = statistics.median(ours["filtered"]) / statistics.median(theirs["filtered"])
    our_bytes, our_points = relation_bytes(portal_dsn, "experiments_metric")
    their_bytes, their_points = relation_bytes(mlflow_dsn, "metrics")
    batches = ingest_runs * METRICS_PER_RUN
    encode = client_encode_seconds()
    print()
    print(
        f"| ingest, {points:,} points | time | points/s | per batch | less the client's encoding |"
    )
    print("|---|---|---|---|---|")
    for label, r in ((mlflow.label, theirs), (portal.label, ours)):
        per_batch = r["ingest"] / batches
        print(
            f"| {label} | {r['ingest']:.1f} s | {points / r['ingest']:,.0f} "
            f"| {per_batch * 1000:.0f} ms | {(per_batch - encode) * 1000:.0f} ms |"
        )
    print(f"| ratio (Stagegate / MLflow points/s; target ≥ 5) | | **{ingest_ratio:.1f}x** | | |")
    beyond = (theirs["ingest"] / batches - encode) / (ours["ingest"] / batches - encode)
    alone = client_batch_seconds()
    print(
        f"The client spends {encode * 1000:.0f} ms encoding each 1,000-point batch and "
        f"{alone * 1000:.0f} ms on a whole log_batch call against a server that does nothing; "
        f"beyond the encoding, the ratio of the servers' time per batch is {beyond:.1f}x, and "
        f"no server could reach more than {theirs['ingest'] / batches / alone:.1f}x here."
    )
    print()
    print(f"| search ({search_runs // 2:,} of {search_runs:,} runs) | median | min | max | runs |")
    print("|---|---|---|---|---|")
    print(row(mlflow.label, theirs["search"]))
    print(row(portal.label, ours["search"]))
    print(row("the client alone (this server's answer replayed)", floor["search"]))
    print(f"| ratio of medians (Stagegate / MLflow; target ≤ 0.2) | **{search_ratio:.2f}** | | | |")
    print(
        "| the client alone / MLflow: the lowest ratio any server could reach here "
        f"| {statistics.median(floor['search']) / statistics.median(theirs['search']):.2f} "
        "| | | |"
    )
    print()
    print("| filtered, ordered search (100 results) | median | min | max | runs |")
    print("|---|---|---|---|---|")
    print(row(mlflow.label, theirs["filtered"]))
    print(row(portal.label, ours["filtered"]))
    print(row("the client alone (this server's answer replayed)", floor["filtered"]))
    print(
        f"| ratio of medians (Stagegate / MLflow; target ≤ 0.2) | **{filtered_ratio:.2f}** | | | |"
    )
    print(
        "| the client alone / MLflow: the lowest ratio any server could reach here "
        f"| {statistics.median(floor['filtered']) / statistics.median(theirs['filtered']):.2f} "
        "| | | |"
    )
    print()
    print("| metric storage in PostgreSQL | table + indexes | points | bytes/point |")
    print("|---|---|---|---|")
    print(
        f"| MLflow server (`metrics`) | {their_bytes / 2**20:,.1f} MiB | {their_points:,} "
        f"| {their_bytes / their_points:.1f} |"
    )
    print(
        f"| Stagegate (`experiments_metric`) | {our_bytes / 2**20:,.1f} MiB | {our_points:,} "
        f"| {our_bytes / our_points:.1f} |"
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
