"""Real-time serving on the local provider: endpoints, scoring processes, traffic.

An endpoint is a folder ``<root>/_endpoints/<name>/`` and a router process
(``cloud/serving_router.py``, outside any sandbox) on a port of 127.0.0.1.
Each deployment (``blue``, ``green``) is a scoring process
(``cloud/scoring_server.py``) in a sandbox like a job's: an environment from
scratch, no network, its own uid where the portal runs as root, the model's
files (copied into ``deployments/<name>/model``) read-only, and writable only
its run folder (the unix socket the router connects to) and its log folder
(sampled inputs and predictions, ``samples.jsonl``). The sandbox holds the
sha256 of the endpoint's key, never the key.

The split lives in ``endpoint.json``; the router looks at it on every request,
so :meth:`endpoint_set_traffic` (an atomic replace) applies to the next
request. Everything is on disk (state files and pid files, pids checked by
start time and command line), so a restarted worker or portal finds the
processes that still run, and a router that died is started again by the next
status call.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from cloud import sandbox
from cloud.base import (
    DEPLOYMENT_NAMES,
    DeploymentSpec,
    EndpointSpec,
    ProviderError,
    ResourceState,
    ResourceStatus,
    TransientProviderError,
    check_traffic,
)

if TYPE_CHECKING:
    import contextlib

    from cloud.base import SizeSpec

    class _Base:
        """What the mixin uses of :class:`cloud.local.LocalProvider`."""

        root: Path
        python: str
        ready_timeout: float
        machine_cpus: list[int]

        def _check_name(self, name: str) -> str: ...
        def _locked(self, kind: str, name: str) -> contextlib.AbstractContextManager[None]: ...
        def limits_for(self, size: SizeSpec, name: str) -> tuple[list[int], int]: ...
        def _use_sandbox(self, allow_unsandboxed: bool) -> bool: ...
        def _sandbox_uid(self, kind: str, name: str) -> int | None: ...
        def _user_env(self, python: str, extra: dict[str, str]) -> dict[str, str]: ...
        def _python_inside(self, sandboxed: bool) -> str: ...
        def _launch(
            self,
            command: list[str],
            *,
            cwd: Path,
            pidfile: Path,
            log: Path,
            cpus: list[int],
            memory: int,
            env: dict[str, str],
            box: sandbox.Sandbox | None,
            exit_code_file: Path | None = None,
            forward: tuple[int, Path] | None = None,
        ) -> tuple[int, float]: ...
        @staticmethod
        def _alive(
            pid: int | None, started: float | None, marker: str
        ) -> psutil.Process | None: ...
        def _terminate(self, proc: psutil.Process) -> None: ...
        @staticmethod
        def _hand_over(uid: int, *folders: Path, keep_root: Path | None = None) -> None: ...
        def _kill_strays(self, *markers: str) -> None: ...

else:
    _Base = object

ROUTER = Path(__file__).with_name("serving_router.py")
SCORING_SERVER = Path(__file__).with_name("scoring_server.py")
ROUTER_MEMORY_BYTES = 1024**3
SCORING_RUN_DIR = "/run/stagegate"
PORT_ATTEMPTS = 5


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _write_atomically(path: Path, text: str, mode: int) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _log_tail(path: Path, chars: int = 800) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class LocalServingMixin(_Base):
    """The serving half of :class:`cloud.local.LocalProvider`."""

    # --- paths ---------------------------------------------------------------

    def _ep_dir(self, name: str) -> Path:
        return self.root / "_endpoints" / self._check_name(name)

    def _dep_dir(self, endpoint: str, name: str) -> Path:
        if name not in DEPLOYMENT_NAMES:
            raise ProviderError(f"Invalid deployment name {name!r}")
        return self._ep_dir(endpoint) / "deployments" / name

    def _endpoint(self, name: str) -> dict[str, Any]:
        record = _read_json(self._ep_dir(name) / "endpoint.json")
        if record is None:
            raise ProviderError(f"No endpoint {name!r}")
        return record

    # --- the router ------------------------------------------------------------

    def _router_marker(self, directory: Path) -> str:
        return f"--pidfile={directory / 'router.pid'}"

    def _router_proc(self, directory: Path, record: dict[str, Any]) -> psutil.Process | None:
        return self._alive(
            record.get("router_pid"), record.get("router_started"), self._router_marker(directory)
        )

    def _router_listening(self, port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    def _router_start(self, directory: Path, record: dict[str, Any]) -> None:
        """Start the router, on its old port if free, else on another."""
        # A router whose supervisor died (it stops itself within a second).
        self._kill_strays(f"--endpoint-dir={directory}")
        for attempt in range(PORT_ATTEMPTS):
            port = int(record.get("port") or 0) if attempt == 0 else 0
            port = port or _free_port()
            pid, started = self._launch(
                [
                    self.python,
                    "-I",
                    str(ROUTER),
                    f"--endpoint-dir={directory}",
                    f"--port={port}",
                ],
                cwd=directory,
                pidfile=directory / "router.pid",
                log=directory / "router.log",
                cpus=self.machine_cpus,
                memory=ROUTER_MEMORY_BYTES,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                box=None,
            )
            record.update(port=port, router_pid=pid, router_started=started)
            deadline = time.monotonic() + self.ready_timeout
            while time.monotonic() < deadline:
                if self._router_listening(port):
                    _write_json(directory / "endpoint.json", record)
                    return
                if self._router_proc(directory, record) is None:
                    break  # the port was taken meanwhile: another one
                time.sleep(0.02)
            proc = self._router_proc(directory, record)
            if proc is not None:
                self._terminate(proc)
        raise TransientProviderError(
            f"The endpoint's router did not start: {_log_tail(directory / 'router.log')}"
        )

    # --- endpoints ---------------------------------------------------------------

    def endpoint_create(self, spec: EndpointSpec) -> ResourceStatus:
        directory = self._ep_dir(spec.name)
        with self._locked("ep", spec.name):
            directory.mkdir(parents=True, exist_ok=True)
            record = _read_json(directory / "endpoint.json") or {
                "name": spec.name,
                "traffic": {},
                "mirror": {},
                "port": 0,
                "deleted": False,
            }
            record.update(key_sha256=spec.key_sha256, deleted=False)
            _write_json(directory / "endpoint.json", record)
            # A folder of its own, bound read-only into each scoring process:
            # a new key (a replaced file) reaches the running processes.
            auth = directory / "auth"
            auth.mkdir(mode=0o755, exist_ok=True)
            _write_atomically(auth / "key.sha256", spec.key_sha256, 0o644)
            if self._router_proc(directory, record) is None:
                self._router_start(directory, record)
            return self._endpoint_status(spec.name, record)

    def _score_url(self, record: dict[str, Any]) -> str:
        return f"http://127.0.0.1:{record['port']}/score"

    def _endpoint_status(self, name: str, record: dict[str, Any]) -> ResourceStatus:
        if record.get("deleted"):
            return ResourceStatus(name, ResourceState.DELETED)
        if self._router_proc(self._ep_dir(name), record) is None:
            return ResourceStatus(name, ResourceState.FAILED, detail="The router is not running")
        return ResourceStatus(name, ResourceState.RUNNING, url=self._score_url(record))

    def endpoint_status(self, name: str) -> ResourceStatus:
        """The endpoint's state; a router that died (a machine restart) is
        started again."""
        directory = self._ep_dir(name)
        record = _read_json(directory / "endpoint.json")
        if record is None:
            return ResourceStatus(name, ResourceState.DELETED)
        if not record.get("deleted") and self._router_proc(directory, record) is None:
            with self._locked("ep", name):
                record = self._endpoint(name)
                if self._router_proc(directory, record) is None:
                    self._router_start(directory, record)
        return self._endpoint_status(name, record)

    def endpoint_set_traffic(
        self, name: str, traffic: dict[str, int], mirror: dict[str, int] | None = None
    ) -> None:
        try:
            check_traffic(traffic, mirror)
        except ValueError as exc:
            raise ProviderError(str(exc)) from exc
        for deployment in {**traffic, **(mirror or {})}:
            self._dep_dir(name, deployment)  # a valid name
        with self._locked("ep", name):
            record = self._endpoint(name)
            record.update(traffic=dict(traffic), mirror=dict(mirror or {}))
            _write_json(self._ep_dir(name) / "endpoint.json", record)

    def endpoint_traffic(self, name: str) -> tuple[dict[str, int], dict[str, int]]:
        record = self._endpoint(name)
        return dict(record.get("traffic", {})), dict(record.get("mirror", {}))

    def endpoint_stats(self, name: str) -> dict[str, Any]:
        """What the router saw over the last minute, per deployment."""
        return _read_json(self._ep_dir(name) / "stats.json") or {}

    def endpoint_delete(self, name: str) -> ResourceStatus:
        directory = self._ep_dir(name)
        record = _read_json(directory / "endpoint.json")
        if record is None:
            return ResourceStatus(name, ResourceState.DELETED)
        for deployment in DEPLOYMENT_NAMES:
            if (directory / "deployments" / deployment).exists():
                self.deployment_stop(name, deployment)
        with self._locked("ep", name):
            record = self._endpoint(name)
            proc = self._router_proc(directory, record)
            if proc is not None:
                self._terminate(proc)
            self._kill_strays(f"--endpoint-dir={directory}")
            record.update(deleted=True, traffic={}, mirror={}, router_pid=None)
            _write_json(directory / "endpoint.json", record)
        return ResourceStatus(name, ResourceState.DELETED)

    # --- deployments -------------------------------------------------------------

    def _dep_marker(self, directory: Path) -> str:
        return f"--pidfile={directory / 'server.pid'}"

    def _dep_proc(self, directory: Path, state: dict[str, Any]) -> psutil.Process | None:
        return self._alive(state.get("pid"), state.get("pid_started"), self._dep_marker(directory))

    def deployment_start(self, spec: DeploymentSpec) -> ResourceStatus:
        """Start the scoring process for ``spec`` (again, after a stop); a
        process that already runs this model is kept."""
        if not 0.0 <= spec.sample_rate <= 1.0:
            raise ProviderError("The sample rate is between 0 and 1")
        sandboxed = self._use_sandbox(spec.allow_unsandboxed)
        self._endpoint(spec.endpoint)
        directory = self._dep_dir(spec.endpoint, spec.name)
        with self._locked("dep", f"{spec.endpoint}-{spec.name}"):
            state = _read_json(directory / "state.json") or {}
            proc = self._dep_proc(directory, state)
            if proc is not None and state.get("model_source") == spec.model_dir:
                return self._dep_status(spec.endpoint, spec.name, state)
            if proc is not None:
                self._terminate(proc)
            source = Path(spec.model_dir).resolve()
            if not (source / "MLmodel").is_file():
                raise ProviderError(f"{spec.model_dir!r} is not an MLflow model folder")
            if directory.exists():
                shutil.rmtree(directory)
            run, logs, home, model = (directory / d for d in ("run", "logs", "home", "model"))
            directory.mkdir(parents=True)
            run.mkdir(mode=0o700)
            # bwrap enters the working folder before it drops to the uid.
            logs.mkdir(mode=0o755)
            home.mkdir(mode=0o755)
            shutil.copytree(source, model, symlinks=False)
            for path in [model, *model.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
            python = self._python_inside(sandboxed)
            run_inside = SCORING_RUN_DIR if sandboxed else str(run)
            config = {
                "model_dir": str(model),
                "socket": f"{run_inside}/score.sock",
                "key_file": str(self._ep_dir(spec.endpoint) / "auth" / "key.sha256"),
                "sample_rate": spec.sample_rate,
                "sensitive_columns": list(spec.sensitive_columns),
                "sample_log": str(logs / "samples.jsonl"),
                "deployment": spec.name,
            }
            # Outside the run folder: the sandbox's user may not rewrite it.
            config_path = directory / "config.json"
            _write_json(config_path, config)
            config_path.chmod(0o644)
            shutil.copyfile(SCORING_SERVER, directory / SCORING_SERVER.name)
            env = self._user_env(
                python, {"HOME": str(home), "MLFLOW_TRACKING_URI": "file:///nonexistent"}
            )
            cpus, memory = self.limits_for(spec.size, f"{spec.endpoint}-{spec.name}")
            command = [python, "-I", str(directory / SCORING_SERVER.name), str(config_path)]
            box = None
            uid = None
            if sandboxed:
                uid = self._sandbox_uid("dep", f"{spec.endpoint}-{spec.name}")
                if uid is not None:
                    self._hand_over(uid, run, logs, home)
                box = sandbox.Sandbox(
                    workdir=str(home),
                    env=env,
                    etc_dir=str(directory / "etc"),
                    writable=(str(logs), str(home), (str(run), SCORING_RUN_DIR)),
                    readonly=(
                        str(self._ep_dir(spec.endpoint) / "auth"),
                        str(model),
                        str(config_path),
                        str(directory / SCORING_SERVER.name),
                    ),
                    python=self.python,
                    host_uid=uid,
                    tmp_bytes=memory,
                )
            pid, started = self._launch(
                command,
                cwd=home,
                pidfile=directory / "server.pid",
                log=directory / "server.log",
                cpus=cpus,
                memory=memory,
                env=env,
                box=box,
            )
            state = {
                "endpoint": spec.endpoint,
                "name": spec.name,
                "model_source": spec.model_dir,
                "pid": pid,
                "pid_started": started,
                "sandboxed": sandboxed,
                "stopped": False,
                "started_at": time.time(),
            }
            _write_json(directory / "state.json", state)
            return self._dep_status(spec.endpoint, spec.name, state)

    def _health(self, directory: Path) -> bool:
        from cloud.serving_router import UnixConnection

        conn = UnixConnection(str(directory / "run" / "score.sock"))
        conn.timeout = 2.0
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status == 200
        except OSError:
            return False
        except Exception:  # noqa: BLE001 - an unreadable answer is no health
            return False
        finally:
            conn.close()

    def _dep_status(self, endpoint: str, name: str, state: dict[str, Any]) -> ResourceStatus:
        directory = self._dep_dir(endpoint, name)
        if not state or state.get("stopped"):
            return ResourceStatus(name, ResourceState.STOPPED)
        if self._dep_proc(directory, state) is None:
            return ResourceStatus(
                name,
                ResourceState.FAILED,
                detail=f"The scoring process ended: {_log_tail(directory / 'server.log')}",
            )
        if (directory / "run" / "score.sock").is_socket() and self._health(directory):
            return ResourceStatus(name, ResourceState.RUNNING)
        return ResourceStatus(name, ResourceState.CREATING, detail="Loading the model")

    def deployment_status(self, endpoint: str, name: str) -> ResourceStatus:
        directory = self._dep_dir(endpoint, name)
        return self._dep_status(endpoint, name, _read_json(directory / "state.json") or {})

    def deployment_stop(self, endpoint: str, name: str) -> ResourceStatus:
        directory = self._dep_dir(endpoint, name)
        with self._locked("dep", f"{endpoint}-{name}"):
            state = _read_json(directory / "state.json")
            if state is None:
                return ResourceStatus(name, ResourceState.STOPPED)
            proc = self._dep_proc(directory, state)
            if proc is not None:
                self._terminate(proc)
            state.update(stopped=True, pid=None)
            _write_json(directory / "state.json", state)
            (directory / "run" / "score.sock").unlink(missing_ok=True)
        return ResourceStatus(name, ResourceState.STOPPED)

    def deployment_sample_log(self, endpoint: str, name: str, max_bytes: int) -> bytes:
        """The last ``max_bytes`` of a deployment's sample log, whole lines only
        (empty when nothing was logged)."""
        path = self._dep_dir(endpoint, name) / "logs" / "samples.jsonl"
        try:
            with path.open("rb") as f:
                start = max(0, f.seek(0, os.SEEK_END) - max_bytes)
                if start == 0:
                    f.seek(0)
                    return f.read()
                # From the byte before the window: up to its first newline is
                # a line cut in two (or just that newline).
                f.seek(start - 1)
                return f.read(max_bytes + 1).partition(b"\n")[2]
        except OSError:
            return b""

    def deployment_samples(
        self, endpoint: str, name: str, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """The last ``limit`` sampled inputs and predictions of a deployment."""
        path = self._dep_dir(endpoint, name) / "logs" / "samples.jsonl"
        try:
            lines = path.read_text(errors="replace").splitlines()[-limit:]
        except OSError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def score(
        self, endpoint: str, key: str, body: bytes, timeout: float = 10.0
    ) -> tuple[int, bytes, str]:
        """POST ``body`` to the endpoint (for health checks and tests)."""
        record = self._endpoint(endpoint)
        request = urllib.request.Request(  # noqa: S310 - our own http URL
            self._score_url(record),
            data=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return (
                    response.status,
                    response.read(),
                    response.headers.get("X-Stagegate-Deployment", ""),
                )
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.headers.get("X-Stagegate-Deployment", "")
