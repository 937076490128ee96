"""The tracking bridge end to end: sandboxed user code on the local provider
logs to its project's tracking server on a live portal with the real mlflow
client, and reaches nothing else of the portal, nor any other host.

Real parts only: the portal served by pytest-django's live server, a job (and
a workspace's JupyterLab kernel) in the bubblewrap sandbox, the relay and the
forwarder as processes, the project token issued as a workspace or job gets it.
"""

from __future__ import annotations

import json
import textwrap
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from cloud import sandbox
from cloud.base import ClusterSpec, JobSpec, JobState, SizeSpec, WorkspaceSpec
from cloud.local import LocalProvider
from experiments.models import Metric, Param, Run
from projects.tokens import project_token_issue, project_token_revoke
from tests.factories import MembershipFactory, ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)

SIZE = SizeSpec("local-1cpu", vcpus=1, memory_gb=2.0)

# What the code inside tries: log with mlflow, then everything it must not reach.
USER_CODE = textwrap.dedent(
    """
    import json, os, re, socket, sys, urllib.error, urllib.request

    import mlflow

    out = {"uri": os.environ["MLFLOW_TRACKING_URI"]}
    mlflow.set_experiment("bridge")
    with mlflow.start_run(run_name="from-the-sandbox") as run:
        mlflow.log_param("alpha", "0.5")
        mlflow.log_metric("rmse", 0.25)
    out["run_id"] = run.info.run_id

    token = os.environ["MLFLOW_TRACKING_TOKEN"]
    inside = out["uri"].split("/mlflow/")[0]

    def status(url):
        request = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError as exc:
            return type(exc).__name__

    for path in ("/api/projects/", "/admin/", "/healthz",
                 "/mlflow/other/api/2.0/mlflow/experiments/search?max_results=1",
                 "/mlflow/churn/../../api/projects/"):
        out[path] = status(inside + path)

    def connect(host, port):
        try:
            socket.create_connection((host, port), timeout=3).close()
            return "connected"
        except OSError as exc:
            return type(exc).__name__

    # The portal itself and another host, directly: no network but loopback.
    portal = os.environ["PORTAL_ADDRESS"].split(":")
    out["portal directly"] = connect(portal[0], int(portal[1]))
    out["another host"] = connect("192.0.2.1", 80)

    # A second request smuggled behind an allowed one on a keep-alive connection.
    host, port = inside.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(
        b"GET /mlflow/churn/api/2.0/mlflow/experiments/get-by-name?experiment_name=bridge "
        b"HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer " + token.encode() + b"\\r\\n\\r\\n"
        b"GET /api/projects/ HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer "
        + token.encode() + b"\\r\\n\\r\\n"
    )
    s.shutdown(socket.SHUT_WR)
    raw = b""
    while chunk := s.recv(65536):
        raw += chunk
    out["keep-alive"] = [int(c) for c in re.findall(rb"HTTP/1\\.1 (\\d{3}) ", raw)]

    folder = os.environ.get("SG_OUTPUT_DIR") or os.getcwd()
    with open(os.path.join(folder, "result.json"), "w") as f:
        json.dump(out, f)
    """
)


@pytest.fixture(autouse=True)
def storage(settings: Any, tmp_path: Path) -> Path:
    root = tmp_path / "storage"
    settings.STAGEGATE_STORAGE_URL = f"file://{root}"
    settings.STAGEGATE_STORAGE_OPTIONS = {}
    return root


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[LocalProvider]:
    available, reason = sandbox.isolation_status()
    assert available, f"the bridge is for sandboxed code; no sandbox here: {reason}"
    provider = LocalProvider(tmp_path / "provider", ready_timeout=60)
    yield provider
    for job_file in (tmp_path / "provider").glob("_jobs/*/job.json"):
        provider.job_cancel(job_file.parent.name)
    for state_file in (tmp_path / "provider").glob("*/state.json"):
        provider.workspace_delete(state_file.parent.name)


@pytest.fixture
def other(bob: Any, alice: Any) -> Any:
    """Another project bob belongs to: his token for churn still may not reach it."""
    project = ProjectFactory(name="Other", slug="other", created_by=alice)
    MembershipFactory(project=project, user=bob, role="data_scientist")
    return project


def portal_address(live_server: Any) -> str:
    """The live portal's address on this machine's loopback (which, inside
    the sandbox, is the sandbox's own)."""
    return f"127.0.0.1:{urllib.parse.urlsplit(live_server.url).port}"


def wait_job(provider: LocalProvider, name: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = provider.job_status(name)
        if status.state not in (JobState.QUEUED, JobState.RUNNING):
            return status
        time.sleep(0.2)
    raise AssertionError(f"{name} still {status.state}: {provider.job_logs(name)}")


def check_refusals(result: dict[str, Any]) -> None:
    assert result["uri"] == "http://127.0.0.1:5000/mlflow/churn"
    # Everything but the project's tracking server: refused by the relay.
    for path in (
        "/api/projects/",
        "/admin/",
        "/healthz",
        "/mlflow/other/api/2.0/mlflow/experiments/search?max_results=1",
        "/mlflow/churn/../../api/projects/",
    ):
        assert result[path] == 403, (path, result[path])
    assert result["portal directly"] == "ConnectionRefusedError"
    assert result["another host"] == "OSError"  # network unreachable
    # The allowed request answered, the smuggled one refused.
    assert result["keep-alive"] == [200, 403]


def assert_logged(run_id: str, user: Any) -> None:
    run = Run.objects.select_related("experiment__project").get(uuid=run_id)
    assert run.experiment.project.slug == "churn"
    assert run.experiment.name == "bridge"
    assert run.name == "from-the-sandbox"
    assert run.user == user
    assert list(Param.objects.filter(run=run).values_list("key", "value")) == [("alpha", "0.5")]
    assert list(Metric.objects.filter(run=run).values_list("key__name", "value")) == [
        ("rmse", 0.25)
    ]


def test_a_sandboxed_job_logs_to_its_project_and_reaches_nothing_else(
    provider: LocalProvider, live_server: Any, project: Any, other: Any, bob: Any, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(USER_CODE)
    token = project_token_issue(project=project, user=bob, purpose="job:1")
    provider.cluster_create(ClusterSpec("sg-cl-1", SIZE))
    provider.job_submit(
        JobSpec(
            name="sg-job-1",
            command="MLFLOW_HTTP_REQUEST_MAX_RETRIES=0 python train.py",
            compute="sg-cl-1",
            code_dir=str(code),
            environment={"PORTAL_ADDRESS": portal_address(live_server)},
            tracking_url=f"{live_server.url}/mlflow/{project.slug}",
            tracking_token=token,
        )
    )
    status = wait_job(provider, "sg-job-1")
    logs = provider.job_logs("sg-job-1")
    assert status.state == JobState.SUCCEEDED, logs
    assert token not in logs
    result = json.loads(
        (tmp_path / "provider" / "_jobs" / "sg-job-1" / "outputs" / "result.json").read_text()
    )
    check_refusals(result)
    assert_logged(result["run_id"], bob)
    # The relay ended with the job.
    job = json.loads((tmp_path / "provider" / "_jobs" / "sg-job-1" / "job.json").read_text())
    deadline = time.monotonic() + 10
    while provider._relay_proc(tmp_path / "provider" / "_jobs" / "sg-job-1", job) is not None:
        assert time.monotonic() < deadline, "the relay outlived its job"
        time.sleep(0.2)


def test_a_revoked_token_gets_nothing_through_the_bridge(
    provider: LocalProvider, live_server: Any, project: Any, bob: Any, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "probe.py").write_text(
        textwrap.dedent(
            """
            import mlflow
            from mlflow.exceptions import MlflowException
            try:
                mlflow.set_experiment("bridge")
            except MlflowException as exc:
                raise SystemExit(f"refused: {exc.error_code}")
            """
        )
    )
    token = project_token_issue(project=project, user=bob, purpose="job:2")
    project_token_revoke(purpose="job:2")
    provider.cluster_create(ClusterSpec("sg-cl-2", SIZE))
    provider.job_submit(
        JobSpec(
            name="sg-job-2",
            command="MLFLOW_HTTP_REQUEST_MAX_RETRIES=0 python probe.py",
            compute="sg-cl-2",
            code_dir=str(code),
            tracking_url=f"{live_server.url}/mlflow/{project.slug}",
            tracking_token=token,
        )
    )
    status = wait_job(provider, "sg-job-2")
    assert status.state == JobState.FAILED
    assert "refused: UNAUTHENTICATED" in provider.job_logs("sg-job-2")


def test_a_sandboxed_notebook_kernel_logs_to_its_project(
    provider: LocalProvider, live_server: Any, project: Any, other: Any, bob: Any, tmp_path: Path
) -> None:
    token = project_token_issue(project=project, user=bob, purpose="workspace:1")
    status = provider.workspace_create(
        WorkspaceSpec(
            name="sg-ws-1",
            size=SIZE,
            tracking_url=f"{live_server.url}/mlflow/{project.slug}",
            tracking_token=token,
        )
    )
    deadline = time.monotonic() + 90
    while status.state != "running":
        assert status.state == "creating", status
        assert time.monotonic() < deadline, "the notebook server did not start"
        time.sleep(0.5)
        status = provider.workspace_status("sg-ws-1")
    # What a notebook's kernel runs: the server's environment, inherited.
    workdir = tmp_path / "provider" / "sg-ws-1" / "work"
    kernel = execute_in_kernel(status.url, USER_CODE, portal_address(live_server))
    assert kernel == "ok", kernel
    result = json.loads((workdir / "result.json").read_text())
    check_refusals(result)
    assert_logged(result["run_id"], bob)

    folder = tmp_path / "provider" / "sg-ws-1"
    state = json.loads((folder / "state.json").read_text())
    relay = provider._relay_proc(folder, state)
    assert relay is not None
    assert token not in " ".join(relay.cmdline())
    assert token not in (folder / "relay.log").read_text()

    # After a worker restart: another provider finds the server and its relay,
    # and a start with the same token changes nothing.
    again = LocalProvider(tmp_path / "provider", ready_timeout=60)
    kwargs = {"tracking_url": f"{live_server.url}/mlflow/churn", "tracking_token": token}
    assert again.workspace_start("sg-ws-1", **kwargs).state == "running"
    assert json.loads((folder / "state.json").read_text())["pid"] == state["pid"]
    assert again._relay_proc(folder, state) is not None

    # A relay that died is started again, with the server (whose forwarder
    # needs the new socket).
    relay.kill()  # the supervisor; the relay it started is found by its socket
    relay.wait(10)
    assert again.workspace_start("sg-ws-1", **kwargs).state in ("running", "creating")
    restarted = json.loads((folder / "state.json").read_text())
    assert restarted["relay_pid"] != state["relay_pid"]
    relays = [
        p
        for p in psutil.process_iter(["cmdline"])
        if f"--socket={folder / 'run' / 'tracking.sock'}" in " ".join(p.info["cmdline"] or [])
    ]
    assert len(relays) == 1, "one relay, not a stray beside it"
    assert again._relay_proc(folder, restarted) is not None

    # Stopping the workspace stops its relay.
    again.workspace_stop("sg-ws-1")
    assert again._relay_proc(folder, restarted) is None


def execute_in_kernel(url: str, code: str, portal: str) -> str:
    """Run ``code`` in a new kernel of the Jupyter server at ``url`` (its REST
    API and its websocket, as JupyterLab does); "ok" or the error."""
    import urllib.request
    import uuid

    import websocket  # websocket-client, as Jupyter's own tests use

    parts = urllib.parse.urlsplit(url)
    token = urllib.parse.parse_qs(parts.query)["token"][0]
    base = f"{parts.scheme}://{parts.netloc}"
    request = urllib.request.Request(  # noqa: S310 - the test's own server
        f"{base}/api/kernels",
        data=b"{}",
        method="POST",
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        kernel_id = json.loads(response.read())["id"]
    ws = websocket.create_connection(
        f"ws://{parts.netloc}/api/kernels/{kernel_id}/channels?token={token}", timeout=120
    )
    try:
        msg_id = uuid.uuid4().hex
        source = (
            "import os\n"
            "os.environ['MLFLOW_HTTP_REQUEST_MAX_RETRIES'] = '0'\n"
            f"os.environ['PORTAL_ADDRESS'] = {portal!r}\n"
        )
        ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": "test",
                        "session": uuid.uuid4().hex,
                        "msg_type": "execute_request",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {"code": source + code, "silent": False},
                    "channel": "shell",
                }
            )
        )
        while True:
            message = json.loads(ws.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "error":
                return "\n".join(message["content"]["traceback"])[-2000:]
            if message["msg_type"] == "execute_reply":
                return "ok" if message["content"]["status"] == "ok" else str(message["content"])
    finally:
        ws.close()
