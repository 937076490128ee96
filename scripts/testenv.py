#!/usr/bin/env python3
"""Run a command beside throwaway PostgreSQL, Redis and Azurite servers.

Starts them on free loopback ports in a temporary directory, exports
DATABASE_URL, CELERY_BROKER_URL and AZURITE_BLOB_URL (plus
AZURITE_CONNECTION_STRING) for the command, and stops the servers and removes
the directory afterwards, also when the command fails or is interrupted.
Usage: testenv.py -- COMMAND [ARG ...]
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Azurite's documented development account: a well-known value, not a secret.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (  # noqa: S105
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path:
        return path
    sys.exit(f"testenv: PostgreSQL's {name} not found; run scripts/install-system-deps.sh")


def as_postgres_user(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def wait_for_port(port: int, what: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"testenv: {what} exited early:\n{log.read_text() if log.exists() else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit(f"testenv: {what} did not listen on {port} within 30 s")


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        sys.exit(__doc__)
    tmp = Path(tempfile.mkdtemp(prefix="stagegate-test-"))
    os.chmod(tmp, 0o755)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # PostgreSQL
        pgdata = tmp / "pg"
        pgdata.mkdir()
        if os.geteuid() == 0:
            shutil.chown(pgdata, "postgres", "postgres")
        subprocess.run(
            as_postgres_user(
                [
                    pg_bin("initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        pg_port = free_port()
        pg_log = tmp / "pg.log"
        pg_log.touch()
        if os.geteuid() == 0:
            shutil.chown(pg_log, "postgres", "postgres")
        pg = subprocess.Popen(
            as_postgres_user(
                [
                    pg_bin("postgres"),
                    "-D",
                    str(pgdata),
                    "-p",
                    str(pg_port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={pgdata}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ]
            ),
            stdout=pg_log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(pg)
        wait_for_port(pg_port, "postgres", pg, pg_log)
        subprocess.run(
            [
                pg_bin("createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(pg_port),
                "-U",
                "postgres",
                "stagegate",
            ],
            check=True,
        )
        # Redis
        redis_port = free_port()
        redis_log = tmp / "redis.log"
        redis = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp),
            ],
            stdout=redis_log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(redis)
        wait_for_port(redis_port, "redis", redis, redis_log)

        # Azurite (Azure Blob emulator), from the npm package in node_modules
        azurite_bin = Path(__file__).resolve().parent.parent / "node_modules/.bin/azurite-blob"
        if not azurite_bin.exists():
            sys.exit("testenv: Azurite is not installed; run `npm ci` (make test does)")
        blob_port = free_port()
        azurite_log = tmp / "azurite.log"
        azurite = subprocess.Popen(
            [
                str(azurite_bin),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(blob_port),
                "--location",
                str(tmp / "azurite"),
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
            ],
            stdout=azurite_log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(azurite)
        wait_for_port(blob_port, "azurite", azurite, azurite_log)

        env = dict(os.environ)
        blob_url = f"http://127.0.0.1:{blob_port}/{AZURITE_ACCOUNT}"
        env["AZURITE_BLOB_URL"] = blob_url
        env["AZURITE_CONNECTION_STRING"] = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={blob_url};"
        )
        env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{pg_port}/stagegate"
        env["CELERY_BROKER_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        env["STAGEGATE_TEST_PG_PORT"] = str(pg_port)
        env["STAGEGATE_TEST_REDIS_PORT"] = str(redis_port)
        print(
            f"testenv: PostgreSQL on 127.0.0.1:{pg_port}, Redis on 127.0.0.1:{redis_port}, "
            f"Azurite blob on 127.0.0.1:{blob_port}",
            flush=True,
        )
        return subprocess.call(args, env=env)
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT if proc is procs[0] else signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
