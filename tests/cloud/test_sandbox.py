"""User code attacks the portal from inside the local provider's sandbox.

A real notebook (code executed in a real kernel of a real JupyterLab server,
reached through the provider's port like a browser) and a real job try to
read the portal's keys, database and broker files, another project's
snapshot and workspace, ``/proc`` of the portal, to connect to a port the
portal's side listens on (standing for PostgreSQL, Redis and the web
process), to find the portal's environment, and to write outside their
working folders. Every attempt must fail. The same probe, run outside the
sandbox (directly, and by the provider where running unsandboxed was
allowed), succeeds: the probe works, the sandbox is what stops it.

No test here is skipped: without bubblewrap they fail, saying why.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import websocket

import cloud
from cloud import sandbox
from cloud.base import ClusterSpec, JobSpec, JobState, ResourceState, SizeSpec, WorkspaceSpec
from cloud.local import SANDBOX_UID_BASE, LocalProvider

SMALL = SizeSpec("Standard_DS1_v2", vcpus=1, memory_gb=2.0)
DECOY = "sg-decoy-secret-" + uuid.uuid4().hex

# Runs inside (and outside) the sandbox: each attempt answers "ok" or the error.
PROBE = r"""
import json, os, socket

def attempt(kind, target):
    try:
        if kind == "read":
            with open(target, "rb") as f:
                f.read(16)
        elif kind == "list":
            os.listdir(target)
        elif kind == "find":  # a name in a folder's listing
            folder, name = target.split("|")
            if name not in os.listdir(folder):
                return "absent"
        elif kind == "write":
            with open(target, "a") as f:
                f.write("pwned")
        elif kind == "connect":
            host, port = target.rsplit(":", 1)
            socket.create_connection((host, int(port)), timeout=3).close()
        elif kind == "env":
            if not any(target in v for v in os.environ.values()):
                return "absent"
        elif kind == "semaphore":  # multiprocessing's, in /dev/shm
            import multiprocessing
            multiprocessing.Lock()
        elif kind == "loopback":  # a server of its own, on its own loopback
            server = socket.create_server(("127.0.0.1", 0))
            socket.create_connection(server.getsockname(), timeout=3).close()
            server.close()
        return "ok"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"

def probe(attempts):
    results = {name: attempt(kind, target) for name, (kind, target) in attempts.items()}
    procs = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    procs.append(f.read().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                pass
    return {"results": results, "procs": procs, "uid": os.getuid()}
"""


def run_probe_here(attempts: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """The probe outside any sandbox, as the portal itself."""
    namespace: dict[str, Any] = {}
    exec(PROBE, namespace)  # noqa: S102 - the test's own probe
    result: dict[str, Any] = namespace["probe"](attempts)
    return result


def probe_code(attempts: dict[str, tuple[str, str]]) -> str:
    return f"{PROBE}\nprint('SG-PROBE ' + json.dumps(probe({json.dumps(attempts)})))\n"


def parse(output: str) -> dict[str, Any]:
    line = next(x for x in output.splitlines() if x.startswith("SG-PROBE "))
    result: dict[str, Any] = json.loads(line.removeprefix("SG-PROBE "))
    return result


def run_in_kernel(url: str, code: str, timeout: float = 60) -> str:
    """Execute ``code`` in a new kernel of the notebook server at ``url``,
    over its REST and websocket API as JupyterLab does; return its output."""
    base, token = url.split("/lab?token=")
    headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
    request = urllib.request.Request(
        f"{base}/api/kernels", data=b"{}", method="POST", headers=headers
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        kernel = json.loads(response.read())["id"]
    ws = websocket.create_connection(
        f"{base.replace('http://', 'ws://')}/api/kernels/{kernel}/channels?token={token}",
        timeout=timeout,
    )
    try:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "test",
            "session": uuid.uuid4().hex,
            "version": "5.3",
        }
        content = {"code": code, "silent": False, "store_history": False}
        content |= {"user_expressions": {}, "allow_stdin": False, "stop_on_error": True}
        message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
        ws.send(json.dumps({**message, "channel": "shell", "buffers": []}))
        out = []
        while True:
            reply = json.loads(ws.recv())
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, body = reply["msg_type"], reply["content"]
            if kind == "stream":
                out.append(body["text"])
            elif kind == "error":
                raise AssertionError("\n".join(body["traceback"]))
            elif kind == "status" and body["execution_state"] == "idle":
                return "".join(out)
    finally:
        ws.close()
        delete = urllib.request.Request(
            f"{base}/api/kernels/{kernel}", method="DELETE", headers=headers
        )
        urllib.request.urlopen(delete, timeout=timeout).close()


@pytest.fixture
def var(tmp_path: Path) -> Path:
    """A portal's var/ folder with decoys: keys, database, broker, object store."""
    var = tmp_path / "var"
    for relative, text in {
        "secret_key": DECOY,
        "field_encryption_key": DECOY,
        "db.sqlite3": "SQLite format 3\0" + DECOY,
        "broker/in/task.msg": DECOY,
        "storage/snapshots/aaa111/train.csv": "x,y\n1,2\n",  # handed to the workspace
        "storage/snapshots/bbb222/train.csv": DECOY,  # another project's
    }.items():
        path = var / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        # Readable (the snapshot handed in: writable) to anyone on the machine:
        # only the sandbox stops it.
        path.chmod(0o666 if "aaa111" in relative else 0o644)
    return var


@pytest.fixture
def provider(var: Path) -> Iterator[LocalProvider]:
    provider = LocalProvider(var / "workspaces", data_roots=[var / "storage"], ready_timeout=60)
    yield provider
    for state_file in (var / "workspaces").glob("*/state.json"):
        provider.workspace_delete(state_file.parent.name)
    for job_file in (var / "workspaces").glob("_jobs/*/job.json"):
        provider.job_cancel(job_file.parent.name)


@pytest.fixture
def listener() -> Iterator[int]:
    """A port the portal's side listens on, on every address: the database's,
    the broker's or the web process's, as far as user code can tell."""
    with socket.create_server(("0.0.0.0", 0), backlog=16) as server:  # noqa: S104
        yield int(server.getsockname()[1])


def host_addresses() -> list[str]:
    return sorted(
        {
            a.address
            for addrs in psutil.net_if_addrs().values()
            for a in addrs
            if a.family == socket.AF_INET
        }
    )


def attacks(var: Path, port: int, *, own_state: Path) -> dict[str, tuple[str, str]]:
    """What user code must not be able to do."""
    portal = os.getpid()
    repo = Path(cloud.__file__).resolve().parent.parent
    found: dict[str, tuple[str, str]] = {
        "secret key": ("read", str(var / "secret_key")),
        "field encryption key": ("read", str(var / "field_encryption_key")),
        "database": ("read", str(var / "db.sqlite3")),
        "broker files": ("list", str(var / "broker" / "in")),
        "object store": ("find", f"{var / 'storage' / 'snapshots'}|bbb222"),
        "other project's snapshot": ("read", str(var / "storage/snapshots/bbb222/train.csv")),
        "portal's environ": ("read", f"/proc/{portal}/environ"),
        "portal's cmdline": ("read", f"/proc/{portal}/cmdline"),
        "portal's secret in the environment": ("env", DECOY),
        "repository": ("read", str(repo / "portal" / "settings.py")),
        "write own state": ("write", str(own_state)),
        "write var": ("write", str(var / "planted")),
        "write snapshot": ("write", str(var / "storage/snapshots/aaa111/train.csv")),
        "write repository": ("write", str(repo / "planted.py")),
        "write /etc": ("write", "/etc/planted"),
        "write /usr": ("write", "/usr/planted"),
    }
    if os.environ.get("DJANGO_SECRET_KEY"):
        found["DJANGO_SECRET_KEY"] = ("env", os.environ["DJANGO_SECRET_KEY"])
    for address in host_addresses():
        found[f"connect {address}"] = ("connect", f"{address}:{port}")
    for variable in ("DATABASE_URL", "CELERY_BROKER_URL"):
        # The test command's real PostgreSQL and Redis, where it started them.
        url = os.environ.get(variable, "")
        if "127.0.0.1:" in url:
            real_port = url.split("127.0.0.1:")[1].split("/")[0]
            found[f"connect {variable}"] = ("connect", f"127.0.0.1:{real_port}")
    return found


def portal_cmdline() -> str:
    return " ".join(psutil.Process().cmdline())


def assert_all_blocked(results: dict[str, str], names: list[str]) -> None:
    leaked = {n: results[n] for n in names if results[n] == "ok"}
    assert not leaked, f"reached from inside the sandbox: {leaked}"


def assert_untouched(var: Path) -> None:
    repo = Path(cloud.__file__).resolve().parent.parent
    planted = [p for p in (var / "planted", repo / "planted.py") if p.exists()]
    for path in planted:
        path.unlink()  # reported once, not left to fail the next run
    assert planted == []
    assert (var / "storage/snapshots/aaa111/train.csv").read_text() == "x,y\n1,2\n"


def require_isolation(provider: LocalProvider) -> None:
    available, reason = provider.isolation_status()
    assert available, f"NO SANDBOX ON THIS MACHINE: {reason} (scripts/install-system-deps.sh)"


def test_the_probe_reaches_everything_outside_the_sandbox(
    var: Path, listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Positive control: as the portal itself, every attack succeeds."""
    monkeypatch.setenv("SG_PORTAL_SECRET", DECOY)
    attempts = attacks(var, listener, own_state=var / "state.json")
    attempts = {n: a for n, a in attempts.items() if a[0] != "write"}
    results = run_probe_here(attempts)["results"]
    assert {n: r for n, r in results.items() if r != "ok"} == {}


def test_isolation_status_says_what_is_missing() -> None:
    available, reason = sandbox.isolation_status(refresh=True)
    assert available, f"NO SANDBOX ON THIS MACHINE: {reason}"
    assert reason.startswith("bubblewrap sandbox available")
    missing = sandbox.isolation_status(bwrap="/nonexistent/bwrap")
    assert missing == (
        False,
        "bubblewrap is not installed (/nonexistent/bwrap not found): "
        "install the Debian package 'bubblewrap'",
    )


def test_a_notebook_cannot_reach_the_portal(
    provider: LocalProvider, var: Path, listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_isolation(provider)
    monkeypatch.setenv("SG_PORTAL_SECRET", DECOY)
    snapshots = var / "storage" / "snapshots"
    # Another project's workspace, with its own snapshot and a file of its own.
    other = provider.workspace_create(
        WorkspaceSpec("sg-ws-92", SMALL, data_paths=(str(snapshots / "bbb222"),))
    )
    assert other.state == ResourceState.RUNNING
    other_work = provider.root / "sg-ws-92" / "work"
    (other_work / "notes.txt").write_text(DECOY)
    status = provider.workspace_create(
        WorkspaceSpec("sg-ws-91", SMALL, data_paths=(str(snapshots / "aaa111"),))
    )
    assert status.state == ResourceState.RUNNING
    own_state = provider.root / "sg-ws-91" / "state.json"
    state_before = own_state.read_text()
    token = json.loads(state_before)["token"]
    host_tmp = f"/tmp/sg-planted-{uuid.uuid4().hex}"  # noqa: S108 - must not appear on the host

    attempts = attacks(var, listener, own_state=own_state)
    blocked = list(attempts)
    attempts |= {
        "other workspace's file": ("read", str(other_work / "notes.txt")),
        "other workspace's folder": ("list", str(other_work)),
    }
    blocked += ["other workspace's file", "other workspace's folder"]
    work = provider.root / "sg-ws-91" / "work"
    attempts |= {  # what a notebook must still be able to do
        "own snapshot through data/": ("read", str(work / "data" / "aaa111" / "train.csv")),
        "own snapshot": ("read", str(snapshots / "aaa111" / "train.csv")),
        "write own folder": ("write", str(work / "mine.txt")),
        "write /tmp": ("write", host_tmp),
        "own loopback": ("loopback", ""),
        "own token in the environment": ("env", token),
        "semaphore": ("semaphore", ""),
    }
    found = parse(run_in_kernel(status.url, probe_code(attempts)))
    results = found["results"]

    assert_all_blocked(results, blocked)
    assert results["own snapshot through data/"] == "ok"
    assert results["own snapshot"] == "ok"
    assert results["write own folder"] == "ok" and (work / "mine.txt").read_text() == "pwned"
    assert results["write /tmp"] == "ok" and not Path(host_tmp).exists()
    assert results["own loopback"] == "ok"
    assert results["own token in the environment"] == "ok"
    assert results["semaphore"] == "ok"
    assert results["portal's secret in the environment"] == "absent"
    assert "Read-only file system" in results["write snapshot"]
    assert own_state.read_text() == state_before
    assert_untouched(var)

    # Its own processes only: the server, the kernel, bwrap's reaper.
    procs = found["procs"]
    assert any("jupyterlab" in p for p in procs) and len(procs) <= 6, procs
    assert not [p for p in procs if portal_cmdline() in p or "sg-ws-92" in p or "_launch.py" in p]
    # Not root, inside or out: a dedicated uid where the portal is root.
    assert found["uid"] != 0
    (server,) = [
        p
        for p in psutil.process_iter(["cmdline"])
        if f"--ServerApp.root_dir={work}" in " ".join(p.info["cmdline"] or [])
    ]
    uids = server.uids()
    if os.geteuid() == 0:
        own_uid = json.loads((provider.root / "_uids.json").read_text())["uids"]["ws:sg-ws-91"]
        other_uid = json.loads((provider.root / "_uids.json").read_text())["uids"]["ws:sg-ws-92"]
        assert own_uid >= SANDBOX_UID_BASE and own_uid != other_uid
        assert set(uids) == {own_uid} == {found["uid"]}
        assert server.gids().real == own_uid
        caps = dict(
            line.split(":\t")
            for line in Path(f"/proc/{server.pid}/status").read_text().splitlines()
            if line.startswith("Cap")
        )
        assert int(caps["CapEff"], 16) == int(caps["CapPrm"], 16) == int(caps["CapAmb"], 16) == 0
    else:
        assert uids.real == os.getuid()


def test_a_job_cannot_reach_the_portal(
    provider: LocalProvider,
    var: Path,
    listener: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_isolation(provider)
    monkeypatch.setenv("SG_PORTAL_SECRET", DECOY)
    attempts = attacks(var, listener, own_state=provider.root / "_jobs" / "sg-job-91" / "job.json")
    blocked = list(attempts)
    outputs = provider.root / "_jobs" / "sg-job-91" / "outputs"
    attempts |= {
        "exit code file": ("write", str(provider.root / "_jobs" / "sg-job-91" / "exit_code")),
        "own input": ("read", str(var / "storage/snapshots/aaa111/train.csv")),
        "write outputs": ("write", str(outputs / "model.txt")),
        "own variable": ("env", "job-visible-value"),
        "own loopback": ("loopback", ""),
    }
    blocked.append("exit code file")
    code = tmp_path / "code"
    code.mkdir()
    (code / "probe.py").write_text(
        f"{PROBE}\nimport sys\nprint('SG-PROBE ' + json.dumps(probe(json.load(open(sys.argv[1])))))\n"
    )
    (code / "attempts.json").write_text(json.dumps(attempts))
    provider.cluster_create(ClusterSpec("sg-cl-91", SMALL))
    provider.job_submit(
        JobSpec(
            "sg-job-91",
            "python probe.py attempts.json; echo done ${{inputs.train}}",
            compute="sg-cl-91",
            code_dir=str(code),
            environment={"OWN": "job-visible-value"},
            inputs={"train": str(var / "storage/snapshots/aaa111")},
        )
    )
    status = _wait_job(provider, "sg-job-91")
    logs = provider.job_logs("sg-job-91")
    assert status.state == JobState.SUCCEEDED, logs
    found = parse(logs)
    results = found["results"]

    assert_all_blocked(results, blocked)
    assert results["own input"] == "ok"
    assert results["write outputs"] == "ok" and (outputs / "model.txt").read_text() == "pwned"
    assert results["own variable"] == "ok"
    assert results["own loopback"] == "ok"
    assert results["portal's secret in the environment"] == "absent"
    assert (provider.root / "_jobs" / "sg-job-91" / "exit_code").read_text() == "0\n"
    assert_untouched(var)
    assert found["uid"] != 0
    assert not [p for p in found["procs"] if portal_cmdline() in p or "_launch.py" in p]


def test_without_a_sandbox_user_code_is_refused_unless_allowed(
    var: Path, listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SG_PORTAL_SECRET", DECOY)
    provider = LocalProvider(
        var / "workspaces", data_roots=[var / "storage"], bwrap="/nonexistent/bwrap"
    )
    available, reason = provider.isolation_status()
    assert not available and "bubblewrap is not installed" in reason
    with pytest.raises(sandbox.SandboxUnavailableError, match="bubblewrap is not installed"):
        provider.workspace_create(WorkspaceSpec("sg-ws-93", SMALL))
    assert not (var / "workspaces" / "sg-ws-93").exists()
    provider.cluster_create(ClusterSpec("sg-cl-93", SMALL))
    with pytest.raises(sandbox.SandboxUnavailableError):
        provider.job_submit(JobSpec("sg-job-93", "true", compute="sg-cl-93"))
    assert not (var / "workspaces" / "_jobs" / "sg-job-93").exists()

    # Allowed (a platform admin's choice): it runs, and the probe that fails
    # inside the sandbox reaches the portal's files and ports: the control.
    try:
        status = provider.workspace_create(WorkspaceSpec("sg-ws-94", SMALL, allow_unsandboxed=True))
        assert status.state == ResourceState.RUNNING
        assert status.detail == "running WITHOUT a sandbox"
        attempts = attacks(var, listener, own_state=var / "workspaces" / "sg-ws-94" / "state.json")
        # Reading is proof enough (writing would really damage the files).
        attempts = {n: a for n, a in attempts.items() if a[0] != "write"}
        reachable = [
            "secret key",
            "database",
            "other project's snapshot",
            "portal's cmdline",
            "connect 127.0.0.1",
        ]
        results = parse(run_in_kernel(status.url, probe_code(attempts)))["results"]
        assert {n: results[n] for n in reachable} == dict.fromkeys(reachable, "ok")
        # Even so, its environment is built from scratch.
        assert results["portal's secret in the environment"] == "absent"

        code = var.parent / "code"
        code.mkdir()
        (code / "probe.py").write_text(
            f"{PROBE}\nimport sys\nprint('SG-PROBE ' + json.dumps(probe({json.dumps(attempts)})))\n"
        )
        provider.job_submit(
            JobSpec(
                "sg-job-94",
                "python probe.py",
                compute="sg-cl-93",
                code_dir=str(code),
                allow_unsandboxed=True,
            )
        )
        assert _wait_job(provider, "sg-job-94").state == JobState.SUCCEEDED
        results = parse(provider.job_logs("sg-job-94"))["results"]
        assert {n: results[n] for n in reachable} == dict.fromkeys(reachable, "ok")
    finally:
        provider.workspace_delete("sg-ws-94")


UNPRIVILEGED_PROBE = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
from cloud import sandbox
available, reason = sandbox.isolation_status()
attempts = json.loads(sys.argv[3])
work = os.path.join(sys.argv[2], "work")
box = sandbox.Sandbox(
    workdir=work, env={"PATH": "/usr/bin:/bin", "HOME": work},
    etc_dir=os.path.join(sys.argv[2], "etc"), writable=(work,), python=sys.executable,
)
code = open(os.path.join(sys.argv[1], "probe.py")).read()
code += "\nprint('SG-PROBE ' + json.dumps(probe(" + repr(attempts) + ")))"
done = sandbox.run(box, [sys.executable, "-c", code])
namespace = {}
exec(open(os.path.join(sys.argv[1], "probe.py")).read(), namespace)
print(json.dumps({
    "available": available, "reason": reason, "returncode": done.returncode,
    "inside": done.stdout.decode(), "stderr": done.stderr.decode()[-2000:],
    "outside": namespace["probe"](attempts), "uid": os.getuid(),
}))
"""


def test_the_sandbox_holds_for_a_portal_that_is_not_root(listener: int) -> None:
    """The unprivileged configuration (user namespace, no setpriv), run as
    ``nobody`` where the tests run as root, with Debian's own python3 (the
    virtualenv's may live where nobody can read)."""
    python = "/usr/bin/python3"
    assert os.access(python, os.X_OK), "Debian's python3 is missing: scripts/install-system-deps.sh"
    top = Path(tempfile.mkdtemp(prefix="sg-unprivileged-"))
    try:
        top.chmod(0o755)
        package = top / "lib" / "cloud"
        package.mkdir(parents=True)
        for name in ("__init__.py", "base.py", "sandbox.py"):
            shutil.copy(Path(cloud.__file__).parent / name, package / name)
        (top / "lib" / "probe.py").write_text(PROBE)
        decoy = top / "secret_key"
        decoy.write_text(DECOY)
        (top / "shared").mkdir()
        (top / "shared").chmod(0o777)  # writable by anyone on the host: not in the sandbox
        box_dir = top / "box"
        (box_dir / "work").mkdir(parents=True)
        for path in (top / "lib", package, decoy, box_dir, box_dir / "work"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        attempts = {
            "secret key": ("read", str(decoy)),
            "connect 127.0.0.1": ("connect", f"127.0.0.1:{listener}"),
            "write outside": ("write", str(top / "shared" / "planted")),
        }
        command = [python, "-I", "-c", UNPRIVILEGED_PROBE, str(top / "lib"), str(box_dir)]
        command.append(json.dumps(attempts))
        if os.geteuid() == 0:
            os.chown(box_dir, 65534, 65534)
            os.chown(box_dir / "work", 65534, 65534)
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        done = subprocess.run(command, capture_output=True, timeout=60, check=False)  # noqa: S603
        assert done.returncode == 0, done.stderr.decode()
        report = json.loads(done.stdout)
        assert report["uid"] != 0
        assert report["available"], report["reason"]
        assert "unprivileged user namespace" in report["reason"]
        assert report["returncode"] == 0, report["stderr"]
        outside = report["outside"]["results"]
        inside = parse(report["inside"])
        assert outside == {"secret key": "ok", "connect 127.0.0.1": "ok", "write outside": "ok"}
        assert_all_blocked(inside["results"], list(attempts))
        assert inside["uid"] == sandbox.INNER_UID
    finally:
        shutil.rmtree(top)


def _wait_job(provider: LocalProvider, name: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = provider.job_status(name)
        if status.state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED):
            return status
        time.sleep(0.1)
    raise AssertionError(f"{name} still {status.state}")


def test_the_launcher_relays_only_to_a_real_socket(tmp_path: Path) -> None:
    """The socket's folder is the sandbox's: a link put in the socket's place
    (to the database's or broker's socket) must not be followed."""
    run = tmp_path / "run"
    run.mkdir()
    target = socket.socket(socket.AF_UNIX)
    target.bind(str(tmp_path / "portal.sock"))  # stands for PostgreSQL's socket
    target.listen()
    (run / "jupyter.sock").symlink_to(tmp_path / "portal.sock")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launcher = Path(cloud.__file__).parent / "_launch.py"
    subprocess.run(  # noqa: S603
        [
            sys.executable,
            str(launcher),
            f"--pidfile={tmp_path / 'pid'}",
            f"--log={tmp_path / 'log'}",
            f"--cwd={tmp_path}",
            f"--forward-port={port}",
            f"--forward-socket={run / 'jupyter.sock'}",
            "--",
            "sleep",
            "30",
        ],
        check=True,
        timeout=30,
    )
    supervisor = psutil.Process(int((tmp_path / "pid").read_text()))
    try:
        target.settimeout(1)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.settimeout(5)
            assert client.recv(1) == b""  # closed: nothing to relay to
        with pytest.raises(TimeoutError):
            target.accept()
        # A real socket in its place is relayed.
        (run / "jupyter.sock").unlink()
        real = socket.socket(socket.AF_UNIX)
        real.bind(str(run / "jupyter.sock"))
        real.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"ping")
            real.settimeout(5)
            conn, _ = real.accept()
            assert conn.recv(4) == b"ping"
            conn.close()
        real.close()
    finally:
        supervisor.terminate()
        supervisor.wait(10)
        target.close()


# --- resource limits and the seccomp filter ---------------------------------


def small_box(top: Path, **limits: Any) -> sandbox.Sandbox:
    """A sandbox with a private working folder: as the portal runs here (as
    root, with a dedicated uid; or unprivileged, in a user namespace)."""
    work = top / "work"
    work.mkdir(parents=True)
    uid = None
    if os.geteuid() == 0:
        uid = SANDBOX_UID_BASE + 4242  # no other process runs as it
        os.chown(work, uid, uid)
    return sandbox.Sandbox(
        workdir=str(work),
        env={"PATH": "/usr/bin:/bin", "HOME": str(work)},
        etc_dir=str(top / "etc"),
        writable=(str(work),),
        host_uid=uid,
        **limits,
    )


LIMITS_PROBE = r"""
import ctypes, json, os, resource
libc = ctypes.CDLL(None, use_errno=True)
calls = {"ptrace": (101, 0, 0, 0), "mount": (165, 0, 0, 0, 0, 0), "bpf": (321, 0, 0, 0),
         "keyctl": (250, 0, 0, 0), "kexec_load": (246, 0, 0, 0, 0), "unshare": (272, 0x20000),
         "setns": (308, 0, 0), "perf_event_open": (298, 0, 0, 0, 0, 0),
         "x32 getpid": (0x40000000 + 39,), "getpid": (39,)}
refused = {}
for name, args in calls.items():
    ctypes.set_errno(0)
    result = libc.syscall(*args)
    refused[name] = os.strerror(ctypes.get_errno()) if result == -1 else "allowed"
limits = {n: resource.getrlimit(getattr(resource, n))[0]
          for n in ("RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_CORE")}
try:
    with open("big", "wb") as f:
        f.write(b"x" * 300_000)
    wrote = "ok"
except OSError as exc:
    wrote = exc.strerror
print(json.dumps({"refused": refused, "limits": limits, "big": wrote}))
"""


def test_user_code_runs_with_limits_and_without_the_dangerous_system_calls(
    tmp_path: Path,
) -> None:
    assert sandbox.isolation_status()[0], sandbox.isolation_status()[1]
    box = small_box(tmp_path, max_processes=64, max_file_bytes=200_000)
    python = sandbox.python_paths(sys.executable)[0]
    done = sandbox.run(box, [python, "-I", "-c", LIMITS_PROBE], timeout=60)
    # Python ignores SIGXFSZ: a write past the limit fails with EFBIG instead.
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    assert report["limits"] == {"RLIMIT_NPROC": 64, "RLIMIT_FSIZE": 200_000, "RLIMIT_CORE": 0}
    assert report["big"] == "File too large"
    assert (tmp_path / "work" / "big").stat().st_size == 200_000
    refused = report["refused"]
    assert refused.pop("getpid") == "allowed"
    assert refused == dict.fromkeys(refused, "Operation not permitted"), refused
    # An architecture without a syscall table here gets no filter (and no guess).
    assert sandbox.seccomp_filter("riscv64") is None
    program = sandbox.seccomp_filter("x86_64")
    assert program is not None and len(program) % 8 == 0


FORK_BOMB = r"""
import os, time
started = time.monotonic()
refused = 0
while time.monotonic() - started < 6:
    try:
        if os.fork() == 0:
            continue  # every child forks on as well
    except OSError:
        refused += 1
        time.sleep(0.01)
"""


def test_a_fork_bomb_stops_at_the_sandbox_limit_and_the_portal_carries_on(
    tmp_path: Path,
) -> None:
    assert sandbox.isolation_status()[0], sandbox.isolation_status()[1]
    limit = 48
    box = small_box(tmp_path, max_processes=limit)
    python = sandbox.python_paths(sys.executable)[0]
    command, hidden = sandbox.wrap(box, [python, "-I", "-c", FORK_BOMB])
    fd = sandbox.hidden_args_fd(hidden)
    bomb = subprocess.Popen(  # noqa: S603 - an argv list
        sandbox.with_args_fd(command, fd), env={"PATH": "/usr/bin:/bin"}, pass_fds=(fd,)
    )
    os.close(fd)
    try:
        most = 0
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            with contextlib.suppress(psutil.NoSuchProcess):
                tree = psutil.Process(bomb.pid).children(recursive=True)
                # bwrap's own processes and the bomb's, threads counted by the limit
                most = max(most, len(tree))
            # The portal starts processes as usual meanwhile.
            assert subprocess.run(["/bin/true"], timeout=5, check=False).returncode == 0
            time.sleep(0.2)
        assert limit // 2 < most <= limit + 3, most
    finally:
        bomb.kill()
        bomb.wait(timeout=30)
    # Nothing of it is left once its supervisor is gone.
    time.sleep(1)
    left = [p for p in psutil.process_iter(["cmdline"]) if "every child forks" in " ".join(
        p.info["cmdline"] or [])]  # fmt: skip
    assert left == []
