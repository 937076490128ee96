"""kill -9 of a real Celery worker in the middle of the data stage's work.

Each test stops a worker at a known point (its input is a FIFO the test
feeds by hand, or a server that fails once), kills it, and checks that the
lease brings the work back: it ends once, in one clear state, within a
bounded time, and nothing is left in staging. Leases and grace periods are
seconds long here; see ``background.leases``.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from audit.models import AuditEvent
from background.leases import lease_waiting
from datasets import services, tasks
from datasets.models import Ingestion, IngestionStatus, Profile, ProfileStatus, Snapshot, Trigger
from portal.celery import leases_recover
from tests.conftest import ROOT, start_worker, stop_worker
from tests.datasets.conftest import stored_files, upload
from tests.datasets.test_https import self_signed

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

LEASE = "1.5"
ROWS = b"customer_id,age,plan\n" + b"".join(
    f"{i},{20 + i % 50},{['basic', 'plus', 'pro'][i % 3]}\n".encode() for i in range(1, 5001)
)


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def kill9(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.fixture
def shared_storage(tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One object store for this process and the workers, and short leases
    for both."""
    root = tmp_path / "shared"
    url = f"file://{root}"
    settings.STAGEGATE_STORAGE_URL = url
    settings.BACKGROUND_LEASE_SECONDS = float(LEASE)
    settings.BACKGROUND_DISPATCH_GRACE_SECONDS = 2.0
    settings.BACKGROUND_MAX_ATTEMPTS = 6
    settings.DATA_STAGING_ORPHAN_SECONDS = 1.0
    for name, value in {
        "STAGEGATE_STORAGE_URL": url,
        "BACKGROUND_LEASE_SECONDS": LEASE,
        "BACKGROUND_DISPATCH_GRACE_SECONDS": "2",
        "BACKGROUND_MAX_ATTEMPTS": "6",
        "DATA_STAGING_ORPHAN_SECONDS": "1",
        "DATA_BATCH_BYTES": "4096",
    }.items():
        monkeypatch.setenv(name, value)
    return root


@contextlib.contextmanager
def fifo_in_place_of(path: Path, first: bytes) -> Iterator[None]:
    """Swap a stored file for a FIFO that gives its reader ``first`` and then
    nothing more (the reader blocks); put the real file back afterwards."""
    real = path.with_name(path.name + ".real")
    os.replace(path, real)
    os.mkfifo(path)
    done = threading.Event()

    def feed() -> None:
        with contextlib.suppress(OSError), open(path, "wb") as pipe:
            pipe.write(first)
            pipe.flush()
            done.wait()

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)
        path.unlink()
        os.replace(real, path)


def heartbeat_seen(model: Any, pk: int) -> Callable[[], bool]:
    """True once the lease holder has beaten at least once after its claim."""
    first: list[Any] = []

    def check() -> bool:
        row = model.objects.get(pk=pk)
        if not row.lease_owner or row.heartbeat_at is None:
            return False
        if not first:
            first.append(row.heartbeat_at)
            return False
        return bool(row.heartbeat_at > first[0])

    return check


def recover_until(done: Callable[[], bool], timeout: float, what: str) -> None:
    """Run the recovery beat's task every half second until ``done``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        leases_recover.apply()
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_worker_killed_while_parsing_an_upload_ends_once_with_nothing_staged(
    project: Any, alice: Any, shared_storage: Path, tmp_path: Path
) -> None:
    source = services.source_create(actor=alice, project=project, name="Up", kind="upload")
    ingestion = services.snapshot_upload(actor=alice, source=source, upload=upload(ROWS))
    staged = shared_storage / ingestion.staging_key
    with fifo_in_place_of(staged, ROWS[:6000]):
        worker = start_blocking_worker("crash-upload", tmp_path / "worker.log")
        try:
            wait_for(
                heartbeat_seen(Ingestion, ingestion.pk), 60, "the worker to claim and heartbeat"
            )
            running = Ingestion.objects.get(pk=ingestion.pk)
            assert running.status == IngestionStatus.RUNNING
            kill9(worker)
        finally:
            stop_worker(worker)
    # Until the lease runs out, it is held by the dead worker.
    assert Ingestion.objects.get(pk=ingestion.pk).status == IngestionStatus.RUNNING
    worker = start_worker("crash-upload-2", queues="data")
    try:
        started = time.monotonic()
        recover_until(
            lambda: Ingestion.objects.get(pk=ingestion.pk).is_done, 60, "the ingestion to end"
        )
        assert time.monotonic() - started < 60
    finally:
        stop_worker(worker)
    ingestion.refresh_from_db()
    assert ingestion.status == IngestionStatus.SUCCEEDED, ingestion.error
    assert ingestion.attempts == 2
    assert Snapshot.objects.filter(source=source).count() == 1
    assert AuditEvent.objects.filter(action="snapshot.created").count() == 1
    assert stored_files(shared_storage / "staging") == []


def test_worker_killed_while_profiling_ends_with_one_ready_profile(
    project: Any, alice: Any, shared_storage: Path, tmp_path: Path
) -> None:
    source = services.source_create(actor=alice, project=project, name="Up", kind="upload")
    ingestion = services.snapshot_upload(actor=alice, source=source, upload=upload(ROWS))
    # The ingestion in this process; its profile task waits in the broker.
    tasks.ingestion_run.apply(kwargs={"ingestion_id": ingestion.pk})
    snapshot = Snapshot.objects.get(source=source)
    profile = Profile.objects.get(snapshot=snapshot)
    assert profile.status == ProfileStatus.PENDING
    stored = shared_storage / snapshot.storage_key
    with fifo_in_place_of(stored, ROWS[:6000]):
        worker = start_blocking_worker("crash-profile", tmp_path / "worker.log")
        try:
            wait_for(heartbeat_seen(Profile, profile.pk), 60, "the profile to be claimed")
            kill9(worker)
        finally:
            stop_worker(worker)
    worker = start_worker("crash-profile-2", queues="data")
    try:
        recover_until(
            lambda: (
                Profile.objects.get(pk=profile.pk).status
                in (ProfileStatus.READY, ProfileStatus.FAILED)
            ),
            60,
            "the profile to end",
        )
    finally:
        stop_worker(worker)
    profile.refresh_from_db()
    assert profile.status == ProfileStatus.READY, profile.error
    assert profile.data["rows"] == 5000
    assert profile.attempts == 2


class FlakyOnce(http.server.BaseHTTPRequestHandler):
    """Drops the first request without an answer (a transient failure),
    serves the file after that."""

    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        type(self).hits.append(self.path)
        if len(type(self).hits) == 1:
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(ROWS)))
        self.end_headers()
        self.wfile.write(ROWS)

    def log_message(self, *args: Any) -> None:
        pass


def worker_env(**extra: str) -> dict[str, str]:
    db = django_settings.DATABASES["default"]
    env = dict(os.environ)
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return env | extra


def start_blocking_worker(name: str, log: Path) -> subprocess.Popen[bytes]:
    """A worker that will block in its task at once: a solo pool then cannot
    answer pings, so it is not waited for here."""
    args = ["worker", "-Q", "data", "--pool", "solo", "-n", f"{name}@%h", "-l", "info"]
    return start_process([*args, "--without-gossip", "--without-mingle"], worker_env(), log)


def start_process(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "portal", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_worker_killed_in_a_retry_wait_on_the_filesystem_broker_is_recovered_by_beat(
    project: Any, alice: Any, shared_storage: Path, tmp_path: Path, settings: Any
) -> None:
    """The embedded broker forgets a message held by a worker that dies (here:
    a retry waiting for its countdown). The recovery beat, through the same
    broker, sends it again once its lease runs out."""
    cert, key = self_signed(tmp_path)
    FlakyOnce.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyOnce)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.DATA_EGRESS_LOOPBACK_PORTS = [server.server_address[1]]
    source = services.source_create(
        actor=alice,
        project=project,
        name="Export",
        kind="https",
        config={"url": f"https://localhost:{server.server_address[1]}/export.csv"},
    )
    # A pull whose message never reached this broker (it is not the test run's Redis).
    ingestion = Ingestion.objects.create(
        source=source, trigger=Trigger.MANUAL, created_by=alice, **lease_waiting()
    )
    var = tmp_path / "embedded-var"
    var.mkdir()
    env = worker_env(
        CELERY_BROKER_URL="filesystem://",
        STAGEGATE_VAR_DIR=str(var),
        DATA_HTTPS_CA_FILE=str(cert),
        DATA_EGRESS_LOOPBACK_PORTS=str(server.server_address[1]),
        BACKGROUND_RECOVER_SECONDS="1",
    )
    worker_args = ["worker", "-Q", "default,data", "--pool", "solo", "-l", "info"]
    worker_args += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    log = tmp_path / "celery.log"
    beat = start_process(
        [
            "beat",
            "-l",
            "info",
            "-S",
            "django_celery_beat.schedulers:DatabaseScheduler",
            "--pidfile=",
        ],
        env,
        log,
    )
    worker = start_process([*worker_args, "-n", "fs-1@%h"], env, log)
    try:
        # Beat finds it unclaimed, sends it again; the first try fails, and the
        # retry waits for its countdown inside the worker: kill it then.
        def in_retry_wait() -> bool:
            row = Ingestion.objects.get(pk=ingestion.pk)
            return (
                len(FlakyOnce.hits) == 1
                and row.status == IngestionStatus.PENDING
                and (row.attempts >= 2)
            )

        wait_for(in_retry_wait, 90, f"the first try to fail\n{log.read_text()}")
        kill9(worker)
        worker = start_process([*worker_args, "-n", "fs-2@%h"], env, log)
        wait_for(
            lambda: Ingestion.objects.get(pk=ingestion.pk).is_done,
            90,
            f"the pull to end\n{log.read_text()}",
        )
    finally:
        for proc in (worker, beat):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        server.shutdown()
        server.server_close()
        shutil.rmtree(var, ignore_errors=True)
    ingestion.refresh_from_db()
    assert ingestion.status == IngestionStatus.SUCCEEDED, ingestion.error
    assert len(FlakyOnce.hits) == 2
    assert Snapshot.objects.filter(source=source).count() == 1
    assert stored_files(shared_storage / "staging") == []


class OneBytePerSecond(http.server.BaseHTTPRequestHandler):
    """Promises the whole file, then sends it one byte a second (``/slow``),
    or a few bytes and then nothing (``/stall``)."""

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", str(len(ROWS)))
        self.end_headers()
        self.wfile.flush()
        with contextlib.suppress(OSError):
            if self.path == "/stall":
                self.wfile.write(ROWS[:10])
                self.wfile.flush()
                time.sleep(30)
                return
            for byte in ROWS:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(1)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slow_server(tmp_path: Path, settings: Any) -> Iterator[int]:
    cert, key = self_signed(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OneBytePerSecond)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.DATA_HTTPS_CA_FILE = str(cert)
    settings.DATA_EGRESS_LOOPBACK_PORTS = [server.server_address[1]]
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_a_source_that_sends_one_byte_a_second_gives_its_worker_back_at_the_deadline(
    project: Any, alice: Any, slow_server: int, shared_storage: Path, settings: Any
) -> None:
    settings.STAGEGATE_PULL_READ_TIMEOUT = 4.0
    settings.STAGEGATE_PULL_STALL_TIMEOUT = 2.0
    source = services.source_create(
        actor=alice,
        project=project,
        name="Trickle",
        kind="https",
        config={"url": f"https://localhost:{slow_server}/slow"},
    )
    ingestion = Ingestion.objects.create(
        source=source, trigger=Trigger.MANUAL, created_by=alice, status=IngestionStatus.RUNNING
    )
    started = time.monotonic()
    services.ingestion_execute(ingestion_id=ingestion.pk)
    took = time.monotonic() - started
    # Each byte came in time for the stall timeout: the total deadline ended it.
    assert 4.0 <= took < 8.0, took
    ingestion.refresh_from_db()
    assert ingestion.status == IngestionStatus.FAILED
    assert "sent its data too slowly" in ingestion.error
    assert "STAGEGATE_PULL_READ_TIMEOUT" in ingestion.error
    assert not Snapshot.objects.filter(source=source).exists()
    assert stored_files(shared_storage / "staging") == []


def test_a_source_that_stops_sending_fails_at_the_stall_timeout_to_be_retried(
    project: Any, alice: Any, slow_server: int, shared_storage: Path, settings: Any
) -> None:
    settings.STAGEGATE_PULL_READ_TIMEOUT = 60.0
    settings.STAGEGATE_PULL_STALL_TIMEOUT = 1.5
    source = services.source_create(
        actor=alice,
        project=project,
        name="Stuck",
        kind="https",
        config={"url": f"https://localhost:{slow_server}/stall"},
    )
    ingestion = Ingestion.objects.create(
        source=source, trigger=Trigger.MANUAL, created_by=alice, status=IngestionStatus.RUNNING
    )
    started = time.monotonic()
    with pytest.raises(services.TransientSourceError, match="sent nothing for 1.5 s"):
        services.ingestion_execute(ingestion_id=ingestion.pk)
    assert time.monotonic() - started < 5.0
    assert stored_files(shared_storage / "staging") == []
