"""The embedded default (make run's configuration) boots and serves the login page.

Nothing but the repository and a directory: SQLite in WAL mode and kombu's
filesystem broker under STAGEGATE_VAR_DIR, web, worker and beat under supervisord,
static files from whitenoise's manifest storage. The steps are the Makefile's
`run` target; only the port and the directory differ.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The test run sets these for itself (PostgreSQL, Redis, finder-served static
# files); without them the embedded defaults apply.
TEST_RUN_VARIABLES = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "STATIC_MANIFEST",
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
)
# Four processes import Django at once; on a busy machine that takes a minute.
BOOT_TIMEOUT = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str) -> tuple[int, str] | None:
    """Status and body of a GET, or None while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def manage(*args: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, (
        f"manage.py {' '.join(args)} exited with {result.returncode}:\n"
        f"{result.stdout}\n{result.stderr}"
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C the whole process group, as in a terminal; kill whatever is left."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.worker
def test_embedded_default_boots_and_serves_the_login_page(tmp_path: Path) -> None:
    var = tmp_path / "var"
    var.mkdir()
    secret_key = tmp_path / "secret_key"
    secret_key.write_text(secrets.token_urlsafe(50))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in TEST_RUN_VARIABLES}
    env |= {
        "STAGEGATE_VAR_DIR": str(var),
        "DJANGO_SECRET_KEY_FILE": str(secret_key),
        "HOST": "127.0.0.1",
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "PORT": str(port),
        # So that the log is complete when the test reads it.
        "PYTHONUNBUFFERED": "1",
    }

    manage("migrate", "--no-input", "-v0", env=env)
    manage("collectstatic", "--no-input", "-v0", env=env)
    manage("seed_demo", env=env)

    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "supervisord.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [str(BIN / "supervisord"), "-c", "supervisord.conf"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_for(path: str, what: str) -> str:
        deadline = time.monotonic() + BOOT_TIMEOUT
        last: tuple[int, str] | None = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            last = http_get(base + path)
            if last is not None and last[0] == 200:
                return last[1]
            time.sleep(0.5)
        state = (
            f"supervisord exited with {proc.returncode}"
            if proc.poll() is not None
            else f"not within {BOOT_TIMEOUT} s"
        )
        pytest.fail(
            f"{what}: {state}; {path} last answered {last!r}.\n"
            f"--- supervisord output ---\n{log_path.read_text(errors='replace')}",
            pytrace=False,
        )

    try:
        login = wait_for("/accounts/login/", "The web process did not serve the login page")
        assert "Sign in" in login

        # Whitenoise serves the hashed names the manifest storage wrote.
        hrefs = re.findall(r'(?:href|src)="(/static/[^"]+)"', login)
        css = [h for h in hrefs if h.endswith(".css")]
        assert css, hrefs
        assert any("htmx" in h for h in hrefs), hrefs
        for href in hrefs:
            assert re.search(r"\.[0-9a-f]{12}\.(css|js|svg)$", href), (
                f"{href} is not a manifest name"
            )
            answer = http_get(base + href)
            assert answer is not None and answer[0] == 200, f"{href} answered {answer!r}"
            if href in css:
                assert ".topbar" in answer[1], f"{href} is not our stylesheet"

        # Database, filesystem broker and a worker answering a ping through it.
        report = json.loads(wait_for("/healthz", "/healthz did not report healthy"))
        checks = report["checks"]
        assert checks["database"]["vendor"] == "sqlite", report
        assert "filesystem" in checks["broker"]["transport"].lower(), report
        assert checks["workers"]["workers"], report
        assert checks["queues"]["ok"], report

        # kill -9 of the worker: supervisord starts it again, web and beat go on.
        worker_pid = subprocess.run(
            [str(BIN / "supervisorctl"), "-c", "supervisord.conf", "pid", "worker"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        worker = psutil.Process(int(worker_pid))
        others = {p.pid for p in psutil.Process(proc.pid).children()} - {worker.pid}
        worker.kill()
        worker.wait(timeout=10)
        time.sleep(1)
        wait_for("/healthz", "/healthz did not recover after the worker was killed")
        children = {p.pid for p in psutil.Process(proc.pid).children()}
        assert others <= children, "web or beat was stopped with the worker"
        assert worker.pid not in children
    finally:
        stop(proc)

    with contextlib.closing(sqlite3.connect(var / "db.sqlite3")) as db:
        (journal_mode,) = db.execute("PRAGMA journal_mode").fetchone()
    assert journal_mode == "wal"
