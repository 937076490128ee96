"""The tracking bridge's relay (``cloud/relay.py``) as a real process, spoken
to with raw bytes on its unix socket: only the one prefix gets through, each
request on a keep-alive connection is checked, nothing is smuggled.

Behind it, a plain HTTP server that records what reaches it (it stands in for
the portal; the portal itself is behind the relay in test_tracking_bridge.py).
"""

from __future__ import annotations

import http.server
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

RELAY = Path(__file__).resolve().parents[2] / "cloud" / "relay.py"
PREFIX = "/mlflow/churn/"


class Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, Any]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("latin-1"),
            }
        )
        answer = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (Recorder,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def relay(tmp_path: Path, upstream: tuple[str, list[dict[str, Any]]]) -> Iterator[str]:
    sock = tmp_path / "tracking.sock"
    proc = subprocess.Popen(  # noqa: S603 - an argv list
        [
            sys.executable,
            "-I",
            str(RELAY),
            f"--socket={sock}",
            f"--upstream={upstream[0]}",
            f"--prefix={PREFIX}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    while not sock.exists():
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
        assert time.monotonic() < deadline, "the relay did not listen"
        time.sleep(0.02)
    yield str(sock)
    proc.terminate()
    proc.wait(timeout=10)
    assert not sock.exists(), "the relay removes its socket when it ends"


def exchange(path: str, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a new connection, half-close, read until the relay closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def statuses(raw: bytes) -> list[int]:
    """The status codes of the answers in ``raw`` (bodies here never look like one)."""
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]


def get(target: str, extra: str = "") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:5000\r\n{extra}\r\n".encode()


def test_a_request_under_the_prefix_goes_through_with_the_portal_as_host(
    relay: str, upstream: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = upstream
    raw = exchange(
        relay,
        get(
            f"{PREFIX}api/2.0/mlflow/experiments/search?max_results=1",
            "Authorization: Bearer sgt_x\r\nX-Forwarded-For: 10.9.9.9\r\n"
            "Forwarded: for=10.9.9.9\r\nConnection: close\r\n",
        ),
    )
    assert statuses(raw) == [200]
    assert raw.endswith(
        json.dumps({"path": f"{PREFIX}api/2.0/mlflow/experiments/search?max_results=1"}).encode()
    )
    [request] = seen
    assert request["path"] == f"{PREFIX}api/2.0/mlflow/experiments/search?max_results=1"
    assert request["headers"]["host"] == url.removeprefix("http://")
    assert request["headers"]["authorization"] == "Bearer sgt_x"
    # What the code inside says about its own address is not passed on.
    assert "x-forwarded-for" not in request["headers"]
    assert "forwarded" not in request["headers"]


@pytest.mark.parametrize(
    "target",
    [
        "/api/projects/",
        "/admin/",
        "/mlflow/other/api/2.0/mlflow/experiments/search",
        "/mlflow/churn",  # the prefix without its slash is another path
        "/mlflow/churnx/api/2.0/mlflow/runs/get",
        "/MLFLOW/churn/api/2.0/mlflow/runs/get",
        "/mlflow/churn/../../api/projects/",
        "/mlflow/churn/./api",
        "/mlflow/churn/%2e%2e/%2e%2e/api/projects/",
        "/mlflow/churn/..%2f..%2fapi/projects/",
        "/mlflow/churn/..%5c..%5capi",
        "/mlflow/churn\\..\\api",
        "http://evil.example/mlflow/churn/api/2.0/mlflow/runs/get",
        "http://127.0.0.1:8000/api/projects/",
        "//evil.example/mlflow/churn/",
        "*",
    ],
)
def test_anything_else_is_refused_and_never_reaches_the_portal(
    relay: str, upstream: tuple[str, list[dict[str, Any]]], target: str
) -> None:
    raw = exchange(relay, get(target))
    assert statuses(raw) == [403], raw
    assert raw.endswith(b"Only the project's tracking server (/mlflow/churn/) is reachable.\n")
    assert b"\r\nConnection: close\r\n" in raw
    assert upstream[1] == []


def test_connect_and_unknown_methods_are_refused(
    relay: str, upstream: tuple[str, list[dict[str, Any]]]
) -> None:
    for line in (
        b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
        b"CONNECT 127.0.0.1:8000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"TRACE /mlflow/churn/ HTTP/1.1\r\nHost: x\r\n\r\n",
    ):
        assert statuses(exchange(relay, line)) == [403]
    assert upstream[1] == []


def test_each_request_on_a_keep_alive_connection_is_checked(
    relay: str, upstream: tuple[str, list[dict[str, Any]]]
) -> None:
    raw = exchange(
        relay,
        get(f"{PREFIX}api/2.0/mlflow/runs/get?run_id=1")
        + get(f"{PREFIX}api/2.0/mlflow/runs/get?run_id=2")
        + get("/api/projects/")
        + get(f"{PREFIX}api/2.0/mlflow/runs/get?run_id=3"),
    )
    # Two answered, the third refused, and the connection closed with it.
    assert statuses(raw) == [200, 200, 403]
    assert [r["path"] for r in upstream[1]] == [
        f"{PREFIX}api/2.0/mlflow/runs/get?run_id=1",
        f"{PREFIX}api/2.0/mlflow/runs/get?run_id=2",
    ]


def test_a_request_hidden_in_a_body_stays_a_body(
    relay: str, upstream: tuple[str, list[dict[str, Any]]]
) -> None:
    hidden = "GET /api/projects/ HTTP/1.1\r\nHost: x\r\n\r\n"
    body = json.dumps({"x": 1}) + hidden
    raw = exchange(
        relay,
        (
            f"POST {PREFIX}api/2.0/mlflow/runs/log-batch HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n{body}"
        ).encode(),
    )
    assert statuses(raw) == [200]
    [request] = upstream[1]
    assert request["path"] == f"{PREFIX}api/2.0/mlflow/runs/log-batch"
    assert request["body"] == body


@pytest.mark.parametrize(
    ("framing", "answers", "relayed"),
    [
        # Both lengths: chunked wins (RFC 9112 6.3); what follows the empty
        # chunked body is a request of its own, checked and refused.
        ("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", [200, 403], 1),
        # Lengths that disagree, unknown codings, nonsense: refused outright.
        ("Content-Length: 4\r\nContent-Length: 60\r\n", [400], 0),
        ("Transfer-Encoding: gzip, chunked\r\nTransfer-Encoding: identity\r\n", [501], 0),
        ("Content-Length: -1\r\n", [400], 0),
        # A length that cuts the rest in two: what follows is not a request.
        ("Content-Length: 4 \r\n", [200, 400], 1),
    ],
)
def test_ambiguous_framing_smuggles_nothing(
    relay: str,
    upstream: tuple[str, list[dict[str, Any]]],
    framing: str,
    answers: list[int],
    relayed: int,
) -> None:
    smuggled = "GET /api/projects/ HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = exchange(
        relay,
        (
            f"POST {PREFIX}api/2.0/mlflow/runs/create HTTP/1.1\r\nHost: x\r\n{framing}\r\n"
            f"0\r\n\r\n{smuggled}"
        ).encode(),
    )
    assert statuses(raw) == answers
    seen = upstream[1]
    assert [r["path"] for r in seen] == [f"{PREFIX}api/2.0/mlflow/runs/create"] * relayed
    for request in seen:
        # One framing only, made by the relay.
        assert not ("content-length" in request["headers"]) & (
            "transfer-encoding" in request["headers"]
        )


def test_oversized_headers_are_refused(
    relay: str, upstream: tuple[str, list[dict[str, Any]]]
) -> None:
    raw = exchange(relay, get(f"{PREFIX}api", "X-Padding: " + "a" * 70_000 + "\r\n"))
    assert statuses(raw) == [431]
    assert upstream[1] == []


def test_the_relay_refuses_a_prefix_that_is_not_a_tracking_server(tmp_path: Path) -> None:
    done = subprocess.run(  # noqa: S603 - an argv list
        [
            sys.executable,
            "-I",
            str(RELAY),
            f"--socket={tmp_path / 's'}",
            "--upstream=http://127.0.0.1:1",
            "--prefix=/",
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert b"not a tracking server's prefix" in done.stderr
    assert not (tmp_path / "s").exists()
