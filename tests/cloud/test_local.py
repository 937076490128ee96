"""The local provider, for real: Jupyter servers and jobs as processes here."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

from cloud.base import (
    ClusterSpec,
    JobSpec,
    JobState,
    ProviderError,
    ResourceState,
    SizeSpec,
    WorkspaceSpec,
)
from cloud.local import LocalProvider

SMALL = SizeSpec("Standard_DS1_v2", vcpus=1, memory_gb=2.0)
BIGGER = SizeSpec("Standard_DS2_v2", vcpus=2, memory_gb=3.0)


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "storage"
    snapshot = root / "snapshots" / "ab12"
    snapshot.mkdir(parents=True)
    (snapshot / "train.csv").write_text("x,y\n1,2\n")
    return root


@pytest.fixture
def provider(tmp_path: Path, data_root: Path) -> Any:
    provider = LocalProvider(tmp_path / "workspaces", data_roots=[data_root], ready_timeout=30)
    yield provider
    # Leave no process behind, whatever a test did.
    for state_file in (tmp_path / "workspaces").glob("*/state.json"):
        provider.workspace_delete(state_file.parent.name)
    for job_file in (tmp_path / "workspaces").glob("_jobs/*/job.json"):
        provider.job_cancel(job_file.parent.name)


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"token {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def address_space_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max address space"):
            return int(line.split()[3])
    raise AssertionError("no address space line")


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_workspace_lifecycle_with_a_real_jupyter_server(
    provider: Any, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SG_PORTAL_SECRET", "must-not-leak")
    spec = WorkspaceSpec(
        "sg-ws-1",
        SMALL,
        owner_username="bob",
        idle_shutdown_minutes=1,
        data_paths=(str(data_root / "snapshots" / "ab12"),),
    )

    # Two tasks racing on one name start one server.
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(provider.workspace_create(spec)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.state for r in results] == [ResourceState.RUNNING, ResourceState.RUNNING]
    assert results[0].url == results[1].url
    status = results[0]
    assert status.url.startswith("http://127.0.0.1:") and "/lab?token=" in status.url
    base, token = status.url.split("/lab?token=")
    state = json.loads((tmp_path / "workspaces" / "sg-ws-1" / "state.json").read_text())
    assert state["sandboxed"] is True
    supervisor = state["pid"]
    supervisors = [
        p
        for p in psutil.process_iter(["cmdline"])
        if f"--pidfile={tmp_path}/workspaces/sg-ws-1/server.pid"
        in " ".join(p.info["cmdline"] or [])
    ]
    assert [p.pid for p in supervisors] == [supervisor]
    (pid,) = servers_of(tmp_path / "workspaces" / "sg-ws-1" / "work")
    assert pid in {p.pid for p in psutil.Process(supervisor).children(recursive=True)}

    # Reached over HTTP: with the token, and not without.
    code, body = get(f"{base}/api/status", token)
    assert code == 200 and "last_activity" in json.loads(body)
    assert get(f"{base}/api/status")[0] == 403
    assert get(f"{base}/api/status", "wrong-token")[0] == 403
    # The snapshot is readable inside the workspace, through its data/ folder.
    code, body = get(f"{base}/api/contents/data/ab12", token)
    assert code == 200
    assert [c["name"] for c in json.loads(body)["content"]] == ["train.csv"]
    data_dir = tmp_path / "workspaces" / "sg-ws-1" / "work" / "data"
    assert (data_dir / "ab12").resolve() == (data_root / "snapshots" / "ab12").resolve()
    assert oct(data_dir.stat().st_mode & 0o777) == "0o555"

    # Idle time comes from the server's own last activity.
    first = provider.workspace_status("sg-ws-1")
    assert first.state == ResourceState.RUNNING and first.idle_seconds is not None
    time.sleep(1.1)
    later = provider.workspace_status("sg-ws-1")
    assert later.idle_seconds is not None and later.idle_seconds >= first.idle_seconds + 1.0

    # Limits from the size, and the token kept out of the command line, the
    # log, and the portal's environment out of the server's.
    cpus, memory = provider.limits_for(SMALL, "sg-ws-1")
    assert address_space_limit(pid) == memory == 2 * 1024**3
    assert os.sched_getaffinity(pid) == set(cpus) and len(cpus) == 1
    assert token not in Path(f"/proc/{pid}/cmdline").read_text()
    assert token not in (tmp_path / "workspaces" / "sg-ws-1" / "server.log").read_text()
    environ = Path(f"/proc/{pid}/environ").read_bytes().decode()
    assert "must-not-leak" not in environ and "DJANGO_SECRET_KEY" not in environ
    assert f"HOME={tmp_path / 'workspaces' / 'sg-ws-1' / 'work'}\0" in environ
    assert (
        oct((tmp_path / "workspaces" / "sg-ws-1" / "state.json").stat().st_mode & 0o777) == "0o600"
    )

    # A kernel (the user's code) inherits the limits.
    request = urllib.request.Request(
        f"{base}/api/kernels",
        data=b"{}",
        method="POST",
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
    kernel = _wait_for_children(pid)[0]
    assert address_space_limit(kernel.pid) == memory
    assert os.sched_getaffinity(kernel.pid) == set(cpus)

    # Create again: the same process. A new provider (a portal restart) finds it.
    assert provider.workspace_create(spec).url == status.url
    assert (
        json.loads((tmp_path / "workspaces" / "sg-ws-1" / "state.json").read_text())["pid"]
        == supervisor
    )
    assert servers_of(tmp_path / "workspaces" / "sg-ws-1" / "work") == [pid]
    restarted = LocalProvider(tmp_path / "workspaces", data_roots=[data_root])
    assert restarted.workspace_status("sg-ws-1").state == ResourceState.RUNNING
    assert restarted.workspace_start("sg-ws-1").url == status.url

    # Resize: stopped, new limits, started again.
    resized = restarted.workspace_resize("sg-ws-1", BIGGER)
    assert resized.state == ResourceState.RUNNING
    assert gone(pid) and gone(kernel.pid) and gone(supervisor)
    (new_pid,) = servers_of(tmp_path / "workspaces" / "sg-ws-1" / "work")
    assert address_space_limit(new_pid) == 3 * 1024**3
    assert len(os.sched_getaffinity(new_pid)) == min(2, len(os.sched_getaffinity(0)))
    assert get(resized.url.replace("/lab?token=", "/api/status?token="))[0] == 200

    # Stop: the process is gone, the state says stopped, also to a new provider.
    new_supervisor = json.loads((tmp_path / "workspaces" / "sg-ws-1" / "state.json").read_text())[
        "pid"
    ]
    assert provider.workspace_stop("sg-ws-1").state == ResourceState.STOPPED
    assert gone(new_pid) and gone(new_supervisor)
    assert servers_of(tmp_path / "workspaces" / "sg-ws-1" / "work") == []
    assert provider.workspace_stop("sg-ws-1").state == ResourceState.STOPPED
    assert LocalProvider(tmp_path / "workspaces").workspace_status("sg-ws-1").state == (
        ResourceState.STOPPED
    )

    # Delete removes the folder (not the snapshot behind the link).
    assert provider.workspace_delete("sg-ws-1").state == ResourceState.DELETED
    assert not (tmp_path / "workspaces" / "sg-ws-1").exists()
    assert (data_root / "snapshots" / "ab12" / "train.csv").exists()
    assert provider.workspace_status("sg-ws-1").state == ResourceState.DELETED
    assert provider.workspace_delete("sg-ws-1").state == ResourceState.DELETED


def servers_of(workdir: Path) -> list[int]:
    marker = f"--ServerApp.root_dir={workdir}"
    return [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if marker in " ".join(p.info["cmdline"] or []) and not gone(p.pid)
    ]


def test_a_worker_killed_mid_start_leaves_exactly_one_server(provider: Any, tmp_path: Path) -> None:
    """What a kill -9 of the worker between launch and bookkeeping leaves on
    disk, and the retried task that follows."""
    spec = WorkspaceSpec("sg-ws-5", SMALL)
    first = provider.workspace_create(spec)
    state_file = tmp_path / "workspaces" / "sg-ws-5" / "state.json"
    workdir = tmp_path / "workspaces" / "sg-ws-5" / "work"
    (pid,) = servers_of(workdir)

    # Killed after the launch, before the pid reached the state file: the
    # retry adopts the server through its pid file.
    state = json.loads(state_file.read_text())
    state.update(pid=None, pid_started=None)
    state_file.write_text(json.dumps(state))
    assert provider.workspace_create(spec).url == first.url
    assert provider.workspace_status("sg-ws-5").state == ResourceState.RUNNING
    assert servers_of(workdir) == [pid]

    # Killed before even the pid file was written: the retry stops the stray
    # and starts one server.
    (tmp_path / "workspaces" / "sg-ws-5" / "server.pid").unlink()
    retried = provider.workspace_create(spec)
    assert retried.state == ResourceState.RUNNING
    assert gone(pid)
    assert len(servers_of(workdir)) == 1
    assert get(retried.url.replace("/lab?token=", "/api/status?token="))[0] == 200


def test_a_stale_or_reused_pid_counts_as_stopped(provider: Any, tmp_path: Path) -> None:
    directory = tmp_path / "workspaces" / "sg-ws-2"
    (directory / "work").mkdir(parents=True)
    finished = psutil.Popen(["true"])
    finished.wait()
    for pid in (finished.pid, os.getpid()):  # dead; alive but not a Jupyter server of ours
        state = {
            "name": "sg-ws-2",
            "workdir": str(directory / "work"),
            "token": "t",
            "port": 9,
            "pid": pid,
            "pid_started": None,
            "size": {"name": "s", "vcpus": 1, "memory_gb": 1, "gpus": 0},
        }
        (directory / "state.json").write_text(json.dumps(state))
        assert provider.workspace_status("sg-ws-2").state == ResourceState.STOPPED


@pytest.mark.parametrize(
    "path",
    [
        "/etc",
        "/etc/passwd",
        "{root}/../outside",
        "{root}/snapshots/../../outside",
        "{root}/escape",  # a symlink inside the root that points out of it
        "{root}/missing",
    ],
)
def test_data_paths_outside_the_allowed_roots_are_refused(
    provider: Any, data_root: Path, tmp_path: Path, path: str
) -> None:
    (tmp_path / "outside").mkdir()
    (data_root / "escape").symlink_to(tmp_path / "outside")
    spec = WorkspaceSpec("sg-ws-3", SMALL, data_paths=(path.format(root=data_root),))
    with pytest.raises(ProviderError):
        provider.workspace_create(spec)
    assert not (tmp_path / "workspaces" / "sg-ws-3").exists()


@pytest.mark.parametrize("name", ["../sg-ws-1", "a/b", "", "UPPER", "-x", "x" * 80])
def test_unsafe_names_are_refused(provider: Any, name: str) -> None:
    with pytest.raises(ProviderError):
        provider.workspace_create(WorkspaceSpec(name, SMALL))
    with pytest.raises(ProviderError):
        provider.workspace_status(name)


def test_bad_allowlists_and_node_counts_are_refused(provider: Any) -> None:
    with pytest.raises(ProviderError):
        provider.workspace_create(WorkspaceSpec("sg-ws-4", SMALL, allowed_ips=("10.0.0.300/8",)))
    with pytest.raises(ProviderError):
        provider.cluster_create(ClusterSpec("sg-cl-4", SMALL, min_nodes=3, max_nodes=2))
    with pytest.raises(ProviderError):
        provider.workspace_set_allowed_ips("sg-ws-404", ("10.0.0.0/8",))


def test_limits_are_capped_by_the_machine(provider: Any) -> None:
    cpus, memory = provider.limits_for(SizeSpec("Standard_ND96", 96, 100_000.0, gpus=8), "x")
    assert cpus == sorted(os.sched_getaffinity(0))
    assert memory == psutil.virtual_memory().total
    assert [s.vcpus for s in provider.list_sizes()][0] == 1


def wait_for(provider: Any, name: str, *states: JobState, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = provider.job_status(name)
        if status.state in states:
            return status
        time.sleep(0.05)
    raise AssertionError(f"{name} still {status.state}")


def test_jobs_run_with_the_cluster_limits_and_report_their_outcome(
    provider: Any, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SG_PORTAL_SECRET", "must-not-leak")
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(
        "import os, sys\n"
        "print('affinity', sorted(os.sched_getaffinity(0)))\n"
        "print('secret', os.environ.get('SG_PORTAL_SECRET'))\n"
        "print('rows', open(sys.argv[1] + '/train.csv').read().count(chr(10)))\n"
        "print('alpha', os.environ['ALPHA'])\n"
    )
    cluster = provider.cluster_create(ClusterSpec("sg-cl-1", SMALL, max_nodes=2))
    assert cluster.state == ResourceState.RUNNING
    spec = JobSpec(
        "sg-job-1",
        "python train.py ${{inputs.train}} && grep 'Max address space' /proc/self/limits",
        compute="sg-cl-1",
        code_dir=str(code),
        environment={"ALPHA": "0.5"},
        inputs={"train": str(data_root / "snapshots" / "ab12")},
    )
    assert provider.job_submit(spec).state in (JobState.RUNNING, JobState.SUCCEEDED)
    assert provider.job_submit(spec).state in (JobState.RUNNING, JobState.SUCCEEDED)
    assert wait_for(provider, "sg-job-1", JobState.SUCCEEDED, JobState.FAILED).state == (
        JobState.SUCCEEDED
    )
    logs = provider.job_logs("sg-job-1")
    cpus, memory = provider.limits_for(SMALL, "sg-job-1")
    assert f"affinity {cpus}" in logs
    assert "secret None" in logs
    assert "rows 2" in logs
    assert "alpha 0.5" in logs
    assert f"Max address space         {memory}" in logs
    assert provider.job_logs("sg-job-1", tail=1).count("\n") == 0

    provider.job_submit(JobSpec("sg-job-2", "echo failing; exit 3", compute="sg-cl-1"))
    failed = wait_for(provider, "sg-job-2", JobState.SUCCEEDED, JobState.FAILED)
    assert failed.state == JobState.FAILED and failed.detail == "exit code 3"

    # Over the memory limit: the job fails instead of taking the machine.
    provider.job_submit(
        JobSpec("sg-job-3", "python -c 'b = bytearray(3 * 1024**3)'", compute="sg-cl-1")
    )
    assert wait_for(provider, "sg-job-3", JobState.SUCCEEDED, JobState.FAILED).state == (
        JobState.FAILED
    )
    assert "MemoryError" in provider.job_logs("sg-job-3")

    with pytest.raises(ProviderError):
        provider.job_submit(JobSpec("sg-job-4", "true", compute="sg-cl-404"))
    with pytest.raises(ProviderError):
        provider.job_submit(JobSpec("sg-job-5", "true", compute="sg-cl-1", inputs={"x": "/etc"}))
    with pytest.raises(ProviderError):
        provider.job_status("sg-job-404")


def test_slots_queue_jobs_and_cancel_kills_the_process_group(provider: Any) -> None:
    provider.cluster_create(ClusterSpec("sg-cl-2", SMALL, max_nodes=1))
    running = provider.job_submit(
        JobSpec("sg-job-10", "sleep 60 & sleep 60; wait", compute="sg-cl-2")
    )
    assert running.state == JobState.RUNNING
    queued = provider.job_submit(JobSpec("sg-job-11", "echo second", compute="sg-cl-2"))
    assert queued.state == JobState.QUEUED
    assert provider.cluster_status("sg-cl-2").detail == "1 of 1 slots busy, 1 queued"

    job = json.loads((provider.root / "_jobs" / "sg-job-10" / "job.json").read_text())
    supervisor = psutil.Process(job["pid"])
    deadline = time.monotonic() + 10
    while True:
        # The supervisor, the sandbox, the shell and its sleeps.
        group = [supervisor, *supervisor.children(recursive=True)]
        sleeps = sum(p.name() == "sleep" for p in group)
        if sleeps == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert sleeps == 2, group
    canceled = provider.job_cancel("sg-job-10")
    assert canceled.state == JobState.CANCELED
    assert all(gone(p.pid) for p in group)
    assert provider.job_cancel("sg-job-10").state == JobState.CANCELED

    # The freed slot goes to the queued job.
    assert wait_for(provider, "sg-job-11", JobState.SUCCEEDED).state == JobState.SUCCEEDED
    assert "second" in provider.job_logs("sg-job-11")

    # Scaling and deleting the cluster; deleting cancels what still runs.
    assert provider.cluster_scale("sg-cl-2", 0, 3).state == ResourceState.RUNNING
    provider.job_submit(JobSpec("sg-job-12", "sleep 60", compute="sg-cl-2"))
    assert provider.cluster_delete("sg-cl-2").state == ResourceState.DELETED
    assert provider.job_status("sg-job-12").state == JobState.CANCELED
    assert provider.cluster_status("sg-cl-2").state == ResourceState.DELETED


def _wait_for_children(pid: int, timeout: float = 10) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = [
            c for c in psutil.Process(pid).children() if "ipykernel" in " ".join(c.cmdline())
        ]
        if children:
            return children
        time.sleep(0.05)
    raise AssertionError("no kernel process")
