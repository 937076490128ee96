"""An endpoint's router: outside the sandbox, in front of its scoring processes (run by path).

``python serving_router.py --endpoint-dir DIR --port PORT``: listens on
127.0.0.1:PORT and sends each request to one deployment's scoring process
(the unix socket ``DIR/deployments/<name>/run/score.sock``), picked at random
by the weights in ``DIR/endpoint.json`` (``{"traffic": {"blue": 90, "green":
10}, "mirror": {"green": 20}}``). The file is looked at (one ``stat``) on
every request, so a new split, or a rollback, applies to the next request.
A mirrored share of requests is also sent, in the background, to the
mirror's deployment; its answer is dropped. Answers carry
``X-Stagegate-Deployment``. Every few seconds the router writes what it saw
(requests, errors, latency percentiles per deployment, over the last minute)
to ``DIR/stats.json``.

Standard library only: the router reads no key (each scoring process checks
the caller's key itself) and imports nothing of the portal.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import errno
import http.client
import json
import os
import random
import signal
import socket
import stat
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY_BYTES = 16 * 1024**2
STATS_WINDOW_SECONDS = 60.0
STATS_EVERY_SECONDS = 2.0
UPSTREAM_TIMEOUT = 60.0
MIRROR_IN_FLIGHT = 8
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host"}


class UnixConnection(http.client.HTTPConnection):
    """HTTP over a unix socket, opened without following links (the folder is
    writable by the sandboxed user)."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=UPSTREAM_TIMEOUT)
        self.path = path

    def connect(self) -> None:
        directory, name = os.path.split(self.path)
        dir_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
        try:
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                raise OSError(errno.ENOTSOCK, f"{name} is not a socket")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(f"/proc/self/fd/{fd}")
            except OSError:
                sock.close()
                raise
            self.sock = sock
        finally:
            os.close(fd)


class Routes:
    """The split, reloaded when endpoint.json changes."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, "endpoint.json")
        self.lock = threading.Lock()
        self.version: tuple[int, int] = (-1, -1)
        self.traffic: list[tuple[str, int]] = []
        self.mirror: tuple[str, int] | None = None

    def refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        version = (st.st_mtime_ns, st.st_ino)
        if version == self.version:
            return
        with self.lock:
            if version == self.version:
                return
            try:
                with open(self.path) as f:
                    data = json.load(f)
            except (OSError, ValueError):
                return  # mid-write by someone not using os.replace: next time
            self.traffic = [(str(k), int(v)) for k, v in data.get("traffic", {}).items() if v > 0]
            mirror = [(str(k), int(v)) for k, v in (data.get("mirror") or {}).items() if v > 0]
            self.mirror = mirror[0] if mirror else None
            self.version = version

    def pick(self) -> str | None:
        self.refresh()
        traffic = self.traffic
        total = sum(w for _, w in traffic)
        if total <= 0:
            return None
        point = random.random() * total  # noqa: S311 - a split, not a secret
        for name, weight in traffic:
            point -= weight
            if point < 0:
                return name
        return traffic[-1][0]

    def mirror_to(self) -> str | None:
        mirror = self.mirror
        if mirror is None or random.random() * 100 >= mirror[1]:  # noqa: S311
            return None
        return mirror[0]

    def socket_of(self, deployment: str) -> str:
        return os.path.join(self.directory, "deployments", deployment, "run", "score.sock")


class Stats:
    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.samples: collections.deque[tuple[float, str, float, int]] = collections.deque()

    def add(self, deployment: str, seconds: float, status: int) -> None:
        with self.lock:
            self.samples.append((time.time(), deployment, seconds, status))

    def write(self) -> None:
        cutoff = time.time() - STATS_WINDOW_SECONDS
        with self.lock:
            while self.samples and self.samples[0][0] < cutoff:
                self.samples.popleft()
            samples = list(self.samples)
        per: dict[str, list[tuple[float, int]]] = collections.defaultdict(list)
        for _, deployment, seconds, status in samples:
            per[deployment].append((seconds, status))
        out: dict[str, Any] = {"at": time.time(), "window_seconds": STATS_WINDOW_SECONDS}
        deployments = {}
        for deployment, rows in per.items():
            latencies = sorted(s for s, _ in rows)
            deployments[deployment] = {
                "requests": len(rows),
                "errors": sum(1 for _, status in rows if status >= 500),
                "p50_ms": round(1000 * latencies[len(latencies) // 2], 2),
                "p99_ms": round(
                    1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2
                ),
            }
        out["deployments"] = deployments
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump(out, f)
        os.replace(tmp, self.path)


class Router(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, port: int, directory: str) -> None:
        self.routes = Routes(directory)
        self.stats = Stats(os.path.join(directory, "stats.json"))
        self.local = threading.local()
        self.mirror_slots = threading.BoundedSemaphore(MIRROR_IN_FLIGHT)
        super().__init__(("127.0.0.1", port), Handler)

    def connection(self, deployment: str) -> UnixConnection:
        pool = getattr(self.local, "pool", None)
        if pool is None:
            pool = self.local.pool = {}
        conn = pool.get(deployment)
        if conn is None:
            conn = pool[deployment] = UnixConnection(self.routes.socket_of(deployment))
        return conn

    def drop(self, deployment: str) -> None:
        pool = getattr(self.local, "pool", {})
        conn = pool.pop(deployment, None)
        if conn is not None:
            conn.close()

    def forward(
        self, deployment: str, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        for attempt in (0, 1):
            conn = self.connection(deployment)
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                return response.status, response.getheaders(), data
            except (OSError, http.client.HTTPException):
                self.drop(deployment)
                if attempt:
                    raise
        raise AssertionError("not reached")

    def mirror(self, deployment: str, headers: dict[str, str], body: bytes) -> None:
        if not self.mirror_slots.acquire(blocking=False):
            return  # the shadow is behind: drop rather than queue

        def send() -> None:
            try:
                conn = UnixConnection(self.routes.socket_of(deployment))
                started = time.perf_counter()
                try:
                    conn.request("POST", "/score", body=body, headers=headers)
                    status = conn.getresponse().status
                finally:
                    conn.close()
                self.stats.add(deployment, time.perf_counter() - started, status)
            except (OSError, http.client.HTTPException):
                self.stats.add(deployment, 0.0, 502)
            finally:
                self.mirror_slots.release()

        threading.Thread(target=send, daemon=True).start()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle's
    # algorithm and the client's delayed ACK add ~40 ms to every answer.
    disable_nagle_algorithm = True
    server: Router

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def answer(self, status: int, payload: Any, deployment: str = "") -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if deployment:
            self.send_header("X-Stagegate-Deployment", deployment)
        self.end_headers()
        self.wfile.write(body)

    def route(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self.answer(413, {"error": "The body is too large"})
            return
        body = self.rfile.read(length) if length else b""
        if self.path not in ("/score", "/health"):
            self.answer(404, {"error": "Not found"})
            return
        deployment = self.server.routes.pick()
        if deployment is None:
            self.answer(503, {"error": "No deployment receives traffic"})
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        if method == "POST" and self.path == "/score":
            shadow = self.server.routes.mirror_to()
            if shadow is not None and shadow != deployment:
                self.server.mirror(shadow, headers, body)
        started = time.perf_counter()
        try:
            status, upstream_headers, data = self.server.forward(
                deployment, method, self.path, headers, body
            )
        except (OSError, http.client.HTTPException):
            self.server.stats.add(deployment, time.perf_counter() - started, 502)
            self.answer(502, {"error": f"Deployment {deployment} did not answer"}, deployment)
            return
        if self.path == "/score":
            self.server.stats.add(deployment, time.perf_counter() - started, status)
        self.send_response(status)
        for key, value in upstream_headers:
            if key.lower() not in HOP_BY_HOP and key.lower() not in ("server", "date"):
                self.send_header(key, value)
        self.send_header("X-Stagegate-Deployment", deployment)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.route("POST")

    def do_GET(self) -> None:
        self.route("GET")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        router = Router(args.port, args.endpoint_dir)
    except OSError as exc:
        print(f"cannot listen on port {args.port}: {exc}", file=sys.stderr, flush=True)
        return 98 if exc.errno == errno.EADDRINUSE else 1

    def stats_loop() -> None:
        while True:
            time.sleep(STATS_EVERY_SECONDS)
            with contextlib.suppress(OSError):
                router.stats.write()

    def orphaned() -> None:
        # The supervisor (cloud/_launch.py) is the parent: without it nobody
        # can stop this router, so it stops itself.
        parent = os.getppid()
        while os.getppid() == parent:
            time.sleep(1.0)
        router.shutdown()

    threading.Thread(target=stats_loop, daemon=True).start()
    threading.Thread(target=orphaned, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=router.shutdown).start())
    print(f"routing on 127.0.0.1:{args.port}", flush=True)
    router.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
