"""The local provider: everything for real on this machine.

A workspace is a JupyterLab server in a sandbox (``cloud/sandbox.py``: no
network, only its own files and the snapshots handed to it, read-only),
listening on a unix socket in its private folder; a supervisor outside the
sandbox relays 127.0.0.1 on a free port to it, so the browser reaches it with
a random token. Its files are in ``<root>/<name>/work`` (the dataset snapshots
it may read are symlinked under ``work/data`` and mounted read-only at their
own paths), with the size's CPUs as its CPU affinity and the size's memory as
its address-space limit (both capped by the machine, and inherited by its
kernels). A cluster is a pool of ``max_nodes`` job slots; a job is a
supervised, sandboxed subprocess with the cluster size's limits.

Without a working sandbox (:func:`cloud.sandbox.isolation_status`), user
code is refused unless its spec says ``allow_unsandboxed=True``.

State lives on disk (``state.json`` and a pid file per resource), so a portal
restart, or another worker process, re-discovers what runs: a pid counts only
while it is alive and its command line is still ours (pid reuse is caught by
the process start time as well). Every change to one resource holds a file
lock on its name, so two tasks racing on one name start one process.

The token appears in the state file (mode 0600) and in the URL returned to the
portal, never in a command line or a log line. User code gets an environment
built from scratch, not the portal's (which holds its secrets).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from cloud import sandbox
from cloud.base import (
    ClusterSpec,
    JobSpec,
    JobState,
    JobStatus,
    ProviderError,
    ResourceState,
    ResourceStatus,
    SizeSpec,
    TransientProviderError,
    WorkspaceSpec,
)
from cloud.local_envs import EnvironmentBuilder
from cloud.local_serving import LocalServingMixin

logger = logging.getLogger(__name__)

LAUNCHER = Path(__file__).with_name("_launch.py")
# The tracking bridge (see ``cloud/relay.py``): the relay outside, the
# forwarder inside, and the port the tracking server has inside a sandbox
# (its own network namespace: no other workspace's port to clash with).
RELAY = Path(__file__).with_name("relay.py")
FORWARDER = Path(__file__).with_name("tracking_forwarder.py")
TRACKING_PORT_INSIDE = 5000
RELAY_SOCKET = "tracking.sock"
RELAY_MEMORY_BYTES = 1024**3
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
GIB = 1024**3
# Below this the Python interpreter of the Jupyter server itself cannot start.
MIN_MEMORY_BYTES = 512 * 1024**2
# Where the portal runs as root, each workspace and job runs as its own uid,
# allocated upwards from here (far above real users and subuid ranges).
SANDBOX_UID_BASE = 1_900_000_000
# The workspace's private run folder (Jupyter's socket, runtime files) as the
# sandbox sees it: short, since a unix socket's path has at most 107 bytes.
SANDBOX_RUN_DIR = "/run/stagegate"
PORT_TAKEN_EXIT = 98  # the launcher's exit code when the port was taken meanwhile
JUPYTER_OFFLINE_FLAGS = (
    "--no-browser",
    "--ServerApp.allow_remote_access=False",
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    "--LabApp.extension_manager=readonly",
)


def _now() -> float:
    return time.time()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return data


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:]) if lines > 0 else ""


class _PortTaken(Exception):
    pass


class LocalProvider(LocalServingMixin):
    """Workspaces, clusters and jobs as real processes on this machine (and
    serving endpoints: ``cloud/local_serving.py``)."""

    name = "local"

    def __init__(
        self,
        root: Path | str,
        *,
        data_roots: Sequence[Path | str] = (),
        python: str = sys.executable,
        ready_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        bwrap: str | None = None,
        sandbox_uid_base: int = SANDBOX_UID_BASE,
        envs: EnvironmentBuilder | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.data_roots = tuple(Path(p).resolve() for p in data_roots)
        self.python = python
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.bwrap = bwrap or sandbox.default_bwrap()
        self.sandbox_uid_base = sandbox_uid_base
        self.machine_cpus = sorted(os.sched_getaffinity(0))
        self.machine_memory = int(psutil.virtual_memory().total)
        # Jobs' requirements: a virtualenv per set, on top of ``python``.
        self.envs = envs or EnvironmentBuilder(self.root / "_envs", base_python=python)

    @classmethod
    def from_settings(cls) -> LocalProvider:
        from django.conf import settings

        return cls(
            settings.LOCAL_PROVIDER_ROOT,
            data_roots=settings.LOCAL_PROVIDER_DATA_ROOTS,
            ready_timeout=settings.LOCAL_PROVIDER_READY_TIMEOUT,
            envs=EnvironmentBuilder.from_settings(sys.executable),
        )

    # --- paths, locks, limits ---------------------------------------------

    def _check_name(self, name: str) -> str:
        if not NAME_RE.match(name):
            raise ProviderError(f"Invalid resource name {name!r}")
        return name

    def _ws_dir(self, name: str) -> Path:
        return self.root / self._check_name(name)

    def _cluster_dir(self, name: str) -> Path:
        return self.root / "_clusters" / self._check_name(name)

    def _job_dir(self, name: str) -> Path:
        return self.root / "_jobs" / self._check_name(name)

    @contextlib.contextmanager
    def _locked(self, kind: str, name: str) -> Iterator[None]:
        locks = self.root / "_locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{kind}-{self._check_name(name)}.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def limits_for(self, size: SizeSpec, name: str) -> tuple[list[int], int]:
        """The CPUs and the memory limit in bytes for ``size``, capped by the machine.

        Which CPUs: a window of the machine's CPUs starting at an offset taken
        from the name, so that small workspaces spread over the cores.
        """
        count = max(1, min(size.vcpus, len(self.machine_cpus)))
        offset = int(hashlib.sha256(name.encode()).hexdigest(), 16) % len(self.machine_cpus)
        cpus = sorted(
            self.machine_cpus[(offset + i) % len(self.machine_cpus)] for i in range(count)
        )
        memory = int(size.memory_gb * GIB)
        memory = max(MIN_MEMORY_BYTES, min(memory, self.machine_memory))
        return cpus, memory

    # --- sandbox -------------------------------------------------------------

    def isolation_status(self) -> tuple[bool, str]:
        """Whether user code runs sandboxed here (see :mod:`cloud.sandbox`)."""
        return sandbox.isolation_status(bwrap=self.bwrap)

    def _use_sandbox(self, allow_unsandboxed: bool) -> bool:
        """True to sandbox; False to run unsandboxed where the caller allowed it.

        Raises SandboxUnavailableError when there is no sandbox and the caller
        did not allow going without.
        """
        available, reason = self.isolation_status()
        if available:
            return True
        if not allow_unsandboxed:
            raise sandbox.SandboxUnavailableError(
                f"User code is not started without a sandbox, and there is none: {reason}"
            )
        logger.warning("starting user code WITHOUT a sandbox (allowed by caller): %s", reason)
        return False

    def _sandbox_uid(self, kind: str, name: str) -> int | None:
        """The dedicated uid of a workspace or job where the portal runs as root."""
        if os.geteuid() != 0:
            return None
        with self._locked("uids", "all"):
            path = self.root / "_uids.json"
            data = _read_json(path) or {"next": 0, "uids": {}}
            key = f"{kind}:{self._check_name(name)}"
            if key not in data["uids"]:
                # Never reused: nothing left behind by an old one can be another's.
                data["uids"][key] = self.sandbox_uid_base + int(data["next"])
                data["next"] = int(data["next"]) + 1
                _write_json(path, data)
            return int(data["uids"][key])

    def _user_env(self, python: str, extra: dict[str, str]) -> dict[str, str]:
        """An environment from scratch for user code: nothing of the portal's."""
        env = {
            "PATH": os.pathsep.join([str(Path(python).parent), "/usr/local/bin:/usr/bin:/bin"]),
            "LANG": "C.UTF-8",
            "USER": "sandbox",
            "LOGNAME": "sandbox",
            "SHELL": "/bin/bash",
            "PYTHONUNBUFFERED": "1",
        }
        if re.fullmatch(r"[A-Za-z0-9_+/:.-]{1,64}", os.environ.get("TZ", "")):
            env["TZ"] = os.environ["TZ"]
        env.update(extra)
        return env

    def _python_inside(self, sandboxed: bool) -> str:
        return sandbox.python_paths(self.python)[0] if sandboxed else self.python

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
    ) -> tuple[int, float]:
        """Start ``command`` detached with limits (in ``box`` unless None);
        return the supervisor's pid and start time."""
        pidfile.unlink(missing_ok=True)
        args = [
            self.python,
            str(LAUNCHER),
            f"--pidfile={pidfile}",
            f"--log={log}",
            f"--cwd={cwd}",
            f"--cpus={','.join(map(str, cpus))}",
            f"--mem-bytes={memory}",
            "--command-stdin",
        ]
        if exit_code_file is not None:
            args.append(f"--exit-code-file={exit_code_file}")
        if forward is not None:
            args += [f"--forward-port={forward[0]}", f"--forward-socket={forward[1]}"]
        if box is not None:
            wrapped, hidden = sandbox.wrap(box, command, bwrap=self.bwrap)
            payload = {"command": wrapped, "hidden_args": hidden}
            launcher_env = {"PATH": "/usr/bin:/bin"}  # bwrap starts from --clearenv
        else:
            payload = {"command": command}
            launcher_env = env
        try:
            done = subprocess.run(  # noqa: S603 - an argv list, no shell
                args,
                input=json.dumps(payload).encode(),
                env=launcher_env,
                capture_output=True,
                timeout=30,
                check=False,
            )
            if done.returncode == PORT_TAKEN_EXIT and forward is not None:
                raise _PortTaken(done.stderr.decode("utf-8", "replace"))
            if done.returncode != 0:
                raise TransientProviderError(
                    f"Could not start {command[0]}: {done.stderr.decode('utf-8', 'replace')}"
                )
            pid = int(pidfile.read_text())
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            raise TransientProviderError(f"Could not start {command[0]}: {exc}") from exc
        try:
            started = psutil.Process(pid).create_time()
        except psutil.NoSuchProcess:
            started = 0.0
        return pid, started

    @staticmethod
    def _alive(pid: int | None, started: float | None, marker: str) -> psutil.Process | None:
        """The process ``pid`` if it still runs and is still ours, else None."""
        if not pid:
            return None
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            if started and abs(proc.create_time() - started) > 1.0:
                return None  # the pid was reused
            if marker not in " ".join(proc.cmdline()):
                return None
            return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None

    def _terminate(self, proc: psutil.Process) -> None:
        """Stop a process group: SIGTERM, wait, SIGKILL; also its stray descendants."""
        try:
            descendants = proc.children(recursive=True)
            pgid = os.getpgid(proc.pid)
        except (psutil.NoSuchProcess, ProcessLookupError):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        procs = [proc, *descendants]
        alive = _wait_gone(procs, self.stop_timeout)
        if alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            for p in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.kill()
            _wait_gone(alive, 5.0)
        # Kernels run in sessions of their own; a server killed before it shut
        # them down would leave them behind.
        for p in descendants:
            with contextlib.suppress(psutil.NoSuchProcess):
                if _running(p):
                    p.kill()

    # --- the tracking bridge -------------------------------------------------

    def _tracking_env(
        self, record: dict[str, Any], *, sandboxed: bool
    ) -> tuple[dict[str, str], str]:
        """MLFLOW_TRACKING_URI and _TOKEN for user code, and the path prefix the
        relay lets through ("" with no tracking server or without a sandbox)."""
        url = str(record.get("tracking_url") or "")
        if not url:
            return {}, ""
        env = {"MLFLOW_TRACKING_TOKEN": str(record.get("tracking_token") or "")}
        if not sandboxed:  # on the host's network: the portal itself
            return {**env, "MLFLOW_TRACKING_URI": url}, ""
        path = urllib.parse.urlsplit(url).path.rstrip("/")
        env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{TRACKING_PORT_INSIDE}{path}"
        return env, f"{path}/"

    @staticmethod
    def _place_forwarder(run: Path) -> None:
        """Copy the forwarder into the run folder (writable by the sandbox's
        user: never through a link left there)."""
        target = run / FORWARDER.name
        target.unlink(missing_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(FORWARDER.read_bytes())

    @staticmethod
    def _with_forwarder(command: list[str], python: str, run_inside: str) -> list[str]:
        return [
            python,
            "-I",
            f"{run_inside}/{FORWARDER.name}",
            str(TRACKING_PORT_INSIDE),
            f"{run_inside}/{RELAY_SOCKET}",
            "--",
            *command,
        ]

    def _relay_marker(self, directory: Path) -> str:
        return f"--pidfile={directory / 'relay.pid'}"

    def _relay_proc(self, directory: Path, record: dict[str, Any]) -> psutil.Process | None:
        marker = self._relay_marker(directory)
        proc = self._alive(record.get("relay_pid"), record.get("relay_started"), marker)
        if proc is None:
            proc = self._alive(_read_pid(directory / "relay.pid"), None, marker)
        return proc

    def _relay_stop(self, directory: Path, record: dict[str, Any]) -> None:
        proc = self._relay_proc(directory, record)
        if proc is not None:
            self._terminate(proc)
        elif record.get("relay_pid"):
            # Its supervisor is gone: the relay itself may not be.
            self._kill_strays(f"--socket={directory / 'run' / RELAY_SOCKET}")
        (directory / "relay.pid").unlink(missing_ok=True)
        record.update(relay_pid=None, relay_started=None)

    def _relay_start(
        self,
        directory: Path,
        run: Path,
        record: dict[str, Any],
        prefix: str,
        *,
        uid: int | None,
        until_file: Path | None = None,
    ) -> None:
        """Start the relay from ``run/tracking.sock`` to the portal, for ``prefix`` only.

        Where the portal runs as root, the relay drops to the sandbox's uid once
        it listens (it reads what comes from inside)."""
        self._relay_stop(directory, record)
        self._kill_strays(self._relay_marker(directory), f"--socket={run / RELAY_SOCKET}")
        socket_path = run / RELAY_SOCKET
        socket_path.unlink(missing_ok=True)  # a stale one (never followed: unlink)
        parts = urllib.parse.urlsplit(str(record["tracking_url"]))
        command = [
            self.python,
            "-I",
            str(RELAY),
            f"--socket={run / RELAY_SOCKET}",
            f"--upstream={parts.scheme}://{parts.netloc}",
            f"--prefix={prefix}",
        ]
        if until_file is not None:
            command.append(f"--until-file={until_file}")
        if uid is not None:
            command.append(f"--user={uid}")
        pid, started = self._launch(
            command,
            cwd=run,
            pidfile=directory / "relay.pid",
            log=directory / "relay.log",
            cpus=self.machine_cpus,
            memory=RELAY_MEMORY_BYTES,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            box=None,
        )
        record.update(relay_pid=pid, relay_started=started)
        # Listening before the user's code starts (it would get closed
        # connections meanwhile).
        deadline = time.monotonic() + self.ready_timeout
        while not socket_path.is_socket():
            if time.monotonic() > deadline or self._relay_proc(directory, record) is None:
                raise TransientProviderError(
                    f"The tracking relay did not start: {_tail(directory / 'relay.log', 5)[-500:]}"
                )
            time.sleep(0.02)

    def _resolve_data_paths(self, paths: Sequence[str]) -> list[Path]:
        resolved = []
        for raw in paths:
            try:
                path = Path(raw).resolve(strict=True)
            except (OSError, RuntimeError) as exc:
                raise ProviderError(f"Data path {raw!r} does not exist") from exc
            if not any(path == r or path.is_relative_to(r) for r in self.data_roots):
                raise ProviderError(f"Data path {raw!r} is outside the allowed data folders")
            if path == self.root or path.is_relative_to(self.root):
                raise ProviderError(f"Data path {raw!r} is inside the workspaces folder")
            resolved.append(path)
        return resolved

    # --- workspaces --------------------------------------------------------

    def _ws_state(self, name: str) -> dict[str, Any] | None:
        return _read_json(self._ws_dir(name) / "state.json")

    def _ws_marker(self, name: str) -> str:
        """What the command line of this workspace's supervisor contains."""
        return f"--pidfile={self._ws_dir(name) / 'server.pid'}"

    def _ws_proc(self, name: str, state: dict[str, Any]) -> psutil.Process | None:
        """The workspace's server process, if it runs.

        Also found through the pid file alone: a worker killed between the
        launch and recording the pid left the server running, with its port
        and token already in the state file.
        """
        marker = self._ws_marker(name)
        proc = self._alive(state.get("pid"), state.get("pid_started"), marker)
        if proc is None:
            proc = self._alive(_read_pid(self._ws_dir(name) / "server.pid"), None, marker)
        return proc

    def _kill_strays(self, *markers: str) -> None:
        """Stop processes with our marker that no state or pid file knows of (a
        worker killed between fork and pid file), so a start makes exactly one."""
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                cmdline = " ".join(proc.info["cmdline"] or [])
                if any(m in cmdline for m in markers) and _running(proc):
                    logger.warning("stopping stray process %s (%s)", proc.pid, cmdline[:200])
                    self._terminate(proc)

    def _url(self, state: dict[str, Any]) -> str:
        return f"http://127.0.0.1:{state['port']}/lab?token={state['token']}"

    def _api_status(self, state: dict[str, Any], timeout: float = 2.0) -> dict[str, Any] | None:
        """The Jupyter server's ``/api/status``, or None while it does not answer.

        The answer comes from inside the sandbox: read with a size limit.
        """
        request = urllib.request.Request(  # noqa: S310 - fixed http://127.0.0.1 URL
            f"http://127.0.0.1:{state['port']}/api/status",
            headers={"Authorization": f"token {state['token']}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                data = json.loads(response.read(64 * 1024))
                return data if isinstance(data, dict) else None
        except (OSError, ValueError):
            return None

    def workspace_create(self, spec: WorkspaceSpec) -> ResourceStatus:
        """Create the workspace and start its server; a second call changes nothing.

        Raises SandboxUnavailableError, creating nothing, when user code cannot
        be sandboxed here and ``spec.allow_unsandboxed`` is not set.
        """
        self._use_sandbox(spec.allow_unsandboxed)
        data = self._resolve_data_paths(spec.data_paths)
        allowed_ips = _validate_cidrs(spec.allowed_ips)
        with self._locked("ws", spec.name):
            directory = self._ws_dir(spec.name)
            state = self._ws_state(spec.name)
            if state is None:
                workdir = directory / "work"
                (workdir / "data").mkdir(parents=True, exist_ok=True)
                state = {
                    "name": spec.name,
                    "workdir": str(workdir),
                    "token": secrets.token_hex(24),
                    "port": 0,
                    "pid": None,
                    "pid_started": None,
                    "size": _size_dict(spec.size),
                    "owner": spec.owner_username,
                    "idle_shutdown_minutes": spec.idle_shutdown_minutes,
                    "allowed_ips": allowed_ips,
                    "data_paths": [str(p) for p in data],
                    "allow_unsandboxed": spec.allow_unsandboxed,
                    "created_at": _now(),
                }
                self._link_data(workdir / "data", data)
            return self._ws_start_with(spec.name, state, spec.tracking_url, spec.tracking_token)

    def _ws_start_with(
        self, name: str, state: dict[str, Any], tracking_url: str, tracking_token: str
    ) -> ResourceStatus:
        """Start the server unless it runs with this tracking server and token
        already. A token is new at each start (the previous one is revoked):
        a server running with another is started again."""
        changed = (state.get("tracking_url", ""), state.get("tracking_token", "")) != (
            tracking_url,
            tracking_token,
        )
        state.update(tracking_url=tracking_url, tracking_token=tracking_token)
        _write_json(self._ws_dir(name) / "state.json", state)
        if self._ws_proc(name, state):
            relay_lost = bool(state.get("relay_pid")) and (
                self._relay_proc(self._ws_dir(name), state) is None
            )
            if not changed and not relay_lost:
                return self._ws_status(name, state)
            self._ws_stop(name, state)
        return self._ws_start(name, state)

    def _link_data(self, data_dir: Path, paths: list[Path]) -> None:
        # The links are fixed once made: the folder is read-only to its user
        # (the snapshots behind them are immutable files of their own).
        data_dir.chmod(0o755)
        for entry in data_dir.iterdir():
            if entry.is_symlink():
                entry.unlink()
        used: set[str] = set()
        for path in paths:
            link = path.name or "data"
            n = 1
            while link in used:
                n += 1
                link = f"{path.name}-{n}"
            used.add(link)
            (data_dir / link).symlink_to(path, target_is_directory=path.is_dir())
        data_dir.chmod(0o555)

    def _ws_start(self, name: str, state: dict[str, Any]) -> ResourceStatus:
        directory = self._ws_dir(name)
        sandboxed = self._use_sandbox(bool(state.get("allow_unsandboxed")))
        cpus, memory = self.limits_for(_size_from(state["size"]), name)
        workdir = Path(state["workdir"])
        run = directory / "run"
        run.mkdir(mode=0o700, exist_ok=True)
        run_inside = SANDBOX_RUN_DIR if sandboxed else str(run)
        python = self._python_inside(sandboxed)
        tracking, prefix = self._tracking_env(state, sandboxed=sandboxed)
        env = self._user_env(
            python,
            {
                **tracking,
                "JUPYTER_TOKEN": state["token"],
                "JUPYTER_CONFIG_DIR": f"{run_inside}/config",
                "JUPYTER_RUNTIME_DIR": f"{run_inside}/runtime",
                "IPYTHONDIR": f"{run_inside}/ipython",
                # ~ is the workspace's own folder, as on an Azure ML instance.
                "HOME": str(workdir),
            },
        )
        box = None
        uid = None
        if sandboxed:
            uid = self._sandbox_uid("ws", name)
            if uid is not None:
                self._hand_over(uid, workdir, run, keep_root=workdir / "data")
            box = sandbox.Sandbox(
                workdir=str(workdir),
                env=env,
                etc_dir=str(directory / "etc"),
                writable=(str(workdir), (str(run), SANDBOX_RUN_DIR)),
                readonly=tuple(state.get("data_paths", [])),
                python=self.python,
                host_uid=uid,
                tmp_bytes=memory,
            )
        sock = f"{run_inside}/jupyter.sock"
        if len(sock) > 100:  # unsandboxed with a long path: relative to its cwd
            sock = os.path.relpath(sock, workdir)
        (run / "jupyter.sock").unlink(missing_ok=True)
        command = [
            python,
            "-m",
            "jupyterlab",
            *JUPYTER_OFFLINE_FLAGS,
            f"--ServerApp.sock={sock}",
            f"--ServerApp.root_dir={workdir}",
        ]
        if not sandboxed and os.geteuid() == 0:
            command.append("--allow-root")
        log = directory / "server.log"
        self._kill_strays(self._ws_marker(name), f"--ServerApp.root_dir={workdir}")
        if prefix:
            self._place_forwarder(run)
            command = self._with_forwarder(command, python, run_inside)
            self._relay_start(directory, run, state, prefix, uid=uid)
        pid = None
        for _attempt in range(5):
            # Port and time recorded before the launch: a server whose pid was
            # never recorded can still be adopted through its pid file.
            state.update(
                port=_free_port(),
                pid=None,
                pid_started=None,
                started_at=_now(),
                sandboxed=sandboxed,
            )
            _write_json(directory / "state.json", state)
            try:
                pid, pid_started = self._launch(
                    command,
                    cwd=workdir,
                    pidfile=directory / "server.pid",
                    log=log,
                    cpus=cpus,
                    memory=memory,
                    env=env,
                    box=box,
                    forward=(state["port"], run / "jupyter.sock"),
                )
                break
            except _PortTaken:
                continue  # lost the port to another process: another one
        if pid is None:
            raise TransientProviderError("No free port for the workspace's server")
        state.update(pid=pid, pid_started=pid_started, cpus=cpus, memory=memory)
        _write_json(directory / "state.json", state)
        logger.info(
            "workspace %s: server pid %s on port %s%s",
            name,
            pid,
            state["port"],
            "" if sandboxed else " WITHOUT a sandbox",
        )
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._api_status(state, timeout=1.0) is not None:
                return self._ws_status(name, state)
            if not self._ws_proc(name, state):
                break
            time.sleep(0.05)
        else:
            # Still starting: the caller polls workspace_status.
            return ResourceStatus(name, ResourceState.CREATING, detail="server starting")
        return ResourceStatus(
            name, ResourceState.FAILED, detail=f"server exited: {_tail(log, 5)[-500:]}"
        )

    @staticmethod
    def _hand_over(uid: int, *folders: Path, keep_root: Path | None = None) -> None:
        """Give the sandbox's own folders to its uid (the portal runs as root).

        Recursive only when not done yet (a folder made before this uid); runs
        while nothing runs in them, so no link can be swapped meanwhile.
        """
        for folder in folders:
            if folder.lstat().st_uid != uid:
                sandbox.give_to(uid, folder)
        if keep_root is not None and keep_root.is_dir() and not keep_root.is_symlink():
            os.chown(keep_root, 0, 0, follow_symlinks=False)

    def _ws_status(self, name: str, state: dict[str, Any]) -> ResourceStatus:
        if not self._ws_proc(name, state):
            return ResourceStatus(name, ResourceState.STOPPED)
        status = self._api_status(state)
        if status is None:
            if _now() - float(state.get("started_at") or 0) < self.ready_timeout:
                return ResourceStatus(name, ResourceState.CREATING, detail="server starting")
            return ResourceStatus(name, ResourceState.FAILED, detail="server does not answer")
        idle = None
        last = status.get("last_activity")
        with contextlib.suppress(AttributeError, TypeError, ValueError):
            last_at = datetime.fromisoformat(str(last).replace("Z", "+00:00"))
            idle = max(0.0, (datetime.now(UTC) - last_at).total_seconds())
        detail = "" if state.get("sandboxed", True) else "running WITHOUT a sandbox"
        return ResourceStatus(
            name, ResourceState.RUNNING, url=self._url(state), detail=detail, idle_seconds=idle
        )

    def workspace_status(self, name: str) -> ResourceStatus:
        state = self._ws_state(name)
        if state is None:
            return ResourceStatus(name, ResourceState.DELETED)
        return self._ws_status(name, state)

    def workspace_start(
        self, name: str, *, tracking_url: str = "", tracking_token: str = ""
    ) -> ResourceStatus:
        with self._locked("ws", name):
            state = self._ws_state(name)
            if state is None:
                raise ProviderError(f"No workspace {name!r}")
            return self._ws_start_with(name, state, tracking_url, tracking_token)

    def _ws_stop(self, name: str, state: dict[str, Any]) -> None:
        proc = self._ws_proc(name, state)
        if proc is not None:
            self._terminate(proc)
        (self._ws_dir(name) / "server.pid").unlink(missing_ok=True)
        self._relay_stop(self._ws_dir(name), state)
        state.update(pid=None, pid_started=None)
        _write_json(self._ws_dir(name) / "state.json", state)

    def workspace_stop(self, name: str) -> ResourceStatus:
        with self._locked("ws", name):
            state = self._ws_state(name)
            if state is None:
                return ResourceStatus(name, ResourceState.DELETED)
            self._ws_stop(name, state)
            return ResourceStatus(name, ResourceState.STOPPED)

    def workspace_resize(self, name: str, size: SizeSpec) -> ResourceStatus:
        """Stop the server, apply the new size's limits, start it again."""
        with self._locked("ws", name):
            state = self._ws_state(name)
            if state is None:
                raise ProviderError(f"No workspace {name!r}")
            self._ws_stop(name, state)
            state["size"] = _size_dict(size)
            return self._ws_start(name, state)

    def workspace_delete(self, name: str) -> ResourceStatus:
        with self._locked("ws", name):
            directory = self._ws_dir(name)
            state = self._ws_state(name)
            if state is not None:
                self._ws_stop(name, state)
            if directory.exists():
                data_dir = directory / "work" / "data"
                if data_dir.is_dir() and not data_dir.is_symlink():
                    data_dir.chmod(0o755)
                shutil.rmtree(directory)
            return ResourceStatus(name, ResourceState.DELETED)

    def workspace_set_allowed_ips(self, name: str, cidrs: tuple[str, ...]) -> None:
        """Record the allowlist. The server listens on 127.0.0.1 only, so no
        remote address reaches it whatever the list says."""
        allowed = _validate_cidrs(cidrs)
        with self._locked("ws", name):
            state = self._ws_state(name)
            if state is None:
                raise ProviderError(f"No workspace {name!r}")
            state["allowed_ips"] = allowed
            _write_json(self._ws_dir(name) / "state.json", state)

    # --- clusters ----------------------------------------------------------

    def cluster_create(self, spec: ClusterSpec) -> ResourceStatus:
        _check_nodes(spec.min_nodes, spec.max_nodes)
        with self._locked("cl", spec.name):
            directory = self._cluster_dir(spec.name)
            if not (directory / "cluster.json").exists():
                directory.mkdir(parents=True, exist_ok=True)
                _write_json(
                    directory / "cluster.json",
                    {
                        "name": spec.name,
                        "size": _size_dict(spec.size),
                        "min_nodes": spec.min_nodes,
                        "max_nodes": spec.max_nodes,
                        "idle_seconds_before_scaledown": spec.idle_seconds_before_scaledown,
                        "low_priority": spec.low_priority,
                        "created_at": _now(),
                    },
                )
        return self.cluster_status(spec.name)

    def _cluster(self, name: str) -> dict[str, Any] | None:
        return _read_json(self._cluster_dir(name) / "cluster.json")

    def cluster_scale(self, name: str, min_nodes: int, max_nodes: int) -> ResourceStatus:
        _check_nodes(min_nodes, max_nodes)
        with self._locked("cl", name):
            cluster = self._cluster(name)
            if cluster is None:
                raise ProviderError(f"No cluster {name!r}")
            cluster.update(min_nodes=min_nodes, max_nodes=max_nodes)
            _write_json(self._cluster_dir(name) / "cluster.json", cluster)
            self._schedule(name, cluster)
        return self.cluster_status(name)

    def cluster_delete(self, name: str) -> ResourceStatus:
        """Delete the cluster; its queued and running jobs are canceled."""
        with self._locked("cl", name):
            cluster = self._cluster(name)
            if cluster is not None:
                for job in self._jobs_on(name):
                    self._job_cancel(job["name"])
                shutil.rmtree(self._cluster_dir(name))
        return ResourceStatus(name, ResourceState.DELETED)

    def cluster_status(self, name: str) -> ResourceStatus:
        cluster = self._cluster(name)
        if cluster is None:
            return ResourceStatus(name, ResourceState.DELETED)
        jobs = [self._job_state(job) for job in self._jobs_on(name)]
        running = sum(1 for s in jobs if s == JobState.RUNNING)
        queued = sum(1 for s in jobs if s == JobState.QUEUED)
        return ResourceStatus(
            name,
            ResourceState.RUNNING,
            detail=f"{running} of {cluster['max_nodes']} slots busy, {queued} queued",
        )

    def list_sizes(self) -> list[SizeSpec]:
        """Sizes that fit this machine: 1, 2, 4, ... CPUs with 4 GiB each (capped)."""
        sizes = []
        memory_gb = self.machine_memory / GIB
        vcpus = 1
        while vcpus <= len(self.machine_cpus):
            mem = min(4.0 * vcpus, memory_gb)
            sizes.append(SizeSpec(f"local-{vcpus}cpu", vcpus, round(mem, 1)))
            vcpus *= 2
        return sizes

    # --- jobs --------------------------------------------------------------

    def _jobs_on(self, cluster: str) -> list[dict[str, Any]]:
        jobs_dir = self.root / "_jobs"
        if not jobs_dir.exists():
            return []
        jobs = [_read_json(d / "job.json") for d in jobs_dir.iterdir() if d.is_dir()]
        return sorted(
            (j for j in jobs if j is not None and j["compute"] == cluster),
            key=lambda j: (j["submitted_at"], j["name"]),
        )

    def _job_proc(self, job: dict[str, Any]) -> psutil.Process | None:
        marker = f"--pidfile={self._job_dir(job['name']) / 'job.pid'}"
        return self._alive(job.get("pid"), job.get("pid_started"), marker)

    def _job_state(self, job: dict[str, Any]) -> JobState:
        directory = self._job_dir(job["name"])
        if job.get("canceled"):
            return JobState.CANCELED
        if job.get("pid") is None:
            # Launched but not recorded (the worker died in between)?
            pid = _read_pid(directory / "job.pid")
            if pid is None:
                return JobState.QUEUED
            job["pid"] = pid
        code = directory / "exit_code"
        if code.exists():
            return JobState.SUCCEEDED if int(code.read_text()) == 0 else JobState.FAILED
        if self._job_proc(job) is not None:
            return JobState.RUNNING
        return JobState.FAILED  # the supervisor died without a word: the machine restarted?

    def _job_status(self, job: dict[str, Any]) -> JobStatus:
        state = self._job_state(job)
        if state not in (JobState.QUEUED, JobState.RUNNING) and job.get("relay_pid"):
            # Ended: the relay goes (by itself, once the exit code is written;
            # here too, should the job's supervisor have died without one).
            # Nothing else writes an ended job's file.
            self._relay_stop(self._job_dir(job["name"]), job)
            _write_json(self._job_dir(job["name"]) / "job.json", job)
        detail = ""
        code = self._job_dir(job["name"]) / "exit_code"
        if state == JobState.FAILED and job.get("refused"):
            detail = str(job["refused"])
        elif state == JobState.FAILED:
            detail = f"exit code {code.read_text().strip()}" if code.exists() else "process lost"
        elif state == JobState.QUEUED:
            detail = f"waiting for a free slot on {job['compute']}"
        return JobStatus(job["name"], state, detail=detail)

    def _schedule(self, cluster_name: str, cluster: dict[str, Any]) -> None:
        """Start queued jobs, oldest first, while the cluster has free slots.

        Called with the cluster's lock held, by every job call on it: there is
        no scheduler daemon, polling moves the queue.
        """
        jobs = self._jobs_on(cluster_name)
        busy = sum(1 for j in jobs if self._job_state(j) == JobState.RUNNING)
        for job in jobs:
            if busy >= cluster["max_nodes"]:
                break
            if self._job_state(job) == JobState.QUEUED:
                self._job_run(job, cluster)
                busy += 1

    def _job_run(self, job: dict[str, Any], cluster: dict[str, Any]) -> None:
        directory = self._job_dir(job["name"])
        cpus, memory = self.limits_for(_size_from(cluster["size"]), job["name"])
        try:
            sandboxed = self._use_sandbox(bool(job.get("allow_unsandboxed")))
        except sandbox.SandboxUnavailableError as exc:
            # Recorded as the job's outcome: a queued job started by a later
            # call must not fail that call.
            (directory / "job.log").write_text(f"{exc}\n")
            _write_atomically(directory / "exit_code", "126\n")
            job.update(
                pid=0, pid_started=None, started_at=_now(), sandboxed=False, refused=str(exc)
            )
            _write_json(directory / "job.json", job)
            return
        command = job["command"]
        for key, path in job["inputs"].items():
            command = command.replace(f"${{{{inputs.{key}}}}}", shlex.quote(path))
        cwd, outputs, home = Path(job["cwd"]), directory / "outputs", directory / "home"
        run = directory / "run"
        outputs.mkdir(exist_ok=True)
        home.mkdir(exist_ok=True)
        run.mkdir(mode=0o700, exist_ok=True)
        own_python = job.get("python")  # its requirements' environment, if any
        python = sandbox.python_paths(own_python or self.python)[0] if sandboxed else own_python
        python = python or self.python
        tracking, prefix = self._tracking_env(job, sandboxed=sandboxed)
        env = self._user_env(
            python,
            {
                "HOME": str(home),
                **job["environment"],
                **tracking,
                "SG_JOB_NAME": job["name"],
                "SG_OUTPUT_DIR": str(outputs),
                **{f"SG_INPUT_{k.upper()}": v for k, v in job["inputs"].items()},
            },
        )
        box = None
        uid = None
        command_argv = ["/bin/sh", "-c", command]
        if sandboxed:
            uid = self._sandbox_uid("job", job["name"])
            if uid is not None:
                self._hand_over(uid, cwd, outputs, home, run)
            if prefix:
                self._place_forwarder(run)
                command_argv = self._with_forwarder(command_argv, python, SANDBOX_RUN_DIR)
                self._relay_start(
                    directory, run, job, prefix, uid=uid, until_file=directory / "exit_code"
                )
            box = sandbox.Sandbox(
                workdir=str(cwd),
                env=env,
                etc_dir=str(directory / "etc"),
                writable=(str(cwd), str(outputs), str(home), (str(run), SANDBOX_RUN_DIR)),
                readonly=(*job["inputs"].values(), *job.get("python_readonly", ())),
                python=own_python or self.python,
                host_uid=uid,
                tmp_bytes=memory,
            )
        pid, started = self._launch(
            command_argv,
            cwd=cwd,
            pidfile=directory / "job.pid",
            log=directory / "job.log",
            cpus=cpus,
            memory=memory,
            env=env,
            box=box,
            exit_code_file=directory / "exit_code",
        )
        job.update(pid=pid, pid_started=started, started_at=_now(), sandboxed=sandboxed)
        _write_json(directory / "job.json", job)

    def job_submit(self, spec: JobSpec) -> JobStatus:
        """Queue the job on its cluster and start it when a slot is free.

        Raises SandboxUnavailableError, queuing nothing, when user code cannot
        be sandboxed here and ``spec.allow_unsandboxed`` is not set.
        """
        self._use_sandbox(spec.allow_unsandboxed)
        inputs = {
            k: str(p)
            for k, p in zip(
                spec.inputs, self._resolve_data_paths(list(spec.inputs.values())), strict=True
            )
        }
        for key in inputs:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise ProviderError(f"Invalid input name {key!r}")
        environment = None
        if spec.requirements and not (self._job_dir(spec.name) / "job.json").exists():
            # Outside the cluster's lock: a build must not hold up other jobs.
            environment = self.envs.ensure(spec.requirements)
        with self._locked("cl", spec.compute):
            cluster = self._cluster(spec.compute)
            if cluster is None:
                raise ProviderError(f"No cluster {spec.compute!r}")
            directory = self._job_dir(spec.name)
            job = _read_json(directory / "job.json")
            if job is None:
                directory.mkdir(parents=True, exist_ok=True)
                if environment is not None:
                    (directory / "job.log").write_text(environment.describe() + "\n")
                cwd = directory / "code"
                if spec.code_dir:
                    source = Path(spec.code_dir).resolve()
                    if not source.is_dir():
                        raise ProviderError(f"Code folder {spec.code_dir!r} does not exist")
                    shutil.copytree(
                        source, cwd, ignore=shutil.ignore_patterns(".git", "__pycache__")
                    )
                else:
                    cwd.mkdir()
                job = {
                    "name": spec.name,
                    "command": spec.command,
                    "compute": spec.compute,
                    "cwd": str(cwd),
                    "environment": dict(spec.environment),
                    "inputs": inputs,
                    "allow_unsandboxed": spec.allow_unsandboxed,
                    "tracking_url": spec.tracking_url,
                    "tracking_token": spec.tracking_token,
                    "submitted_at": _now(),
                    "pid": None,
                    "pid_started": None,
                    "canceled": False,
                    "python": environment.python if environment else None,
                    "python_readonly": list(environment.readonly) if environment else [],
                    "requirements": list(spec.requirements),
                }
                _write_json(directory / "job.json", job)
            self._schedule(spec.compute, cluster)
            return self._job_status(_read_json(directory / "job.json") or job)

    def _job(self, name: str) -> dict[str, Any]:
        job = _read_json(self._job_dir(name) / "job.json")
        if job is None:
            raise ProviderError(f"No job {name!r}")
        return job

    def job_status(self, name: str) -> JobStatus:
        job = self._job(name)
        if self._job_state(job) == JobState.QUEUED:
            with self._locked("cl", job["compute"]):
                cluster = self._cluster(job["compute"])
                if cluster is not None:
                    self._schedule(job["compute"], cluster)
            job = self._job(name)
        return self._job_status(job)

    def _job_cancel(self, name: str) -> JobStatus:
        job = self._job(name)
        state = self._job_state(job)
        if state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED):
            return self._job_status(job)
        job["canceled"] = True
        _write_json(self._job_dir(name) / "job.json", job)
        proc = self._job_proc(job)
        if proc is not None:
            self._terminate(proc)
        self._relay_stop(self._job_dir(name), job)
        _write_json(self._job_dir(name) / "job.json", job)
        return self._job_status(job)

    def job_cancel(self, name: str) -> JobStatus:
        job = self._job(name)
        with self._locked("cl", job["compute"]):
            status = self._job_cancel(name)
            cluster = self._cluster(job["compute"])
            if cluster is not None:
                self._schedule(job["compute"], cluster)
            return status

    def job_logs(self, name: str, tail: int = 200) -> str:
        self._job(name)
        return _tail(self._job_dir(name) / "job.log", tail)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until the processes have exited; return those still running.

    A zombie counts as gone: the processes are children of init (the
    launcher detached them), which reaps them in its own time.
    """
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if _running(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [p for p in alive if _running(p)]
    return alive


def _size_dict(size: SizeSpec) -> dict[str, Any]:
    return {"name": size.name, "vcpus": size.vcpus, "memory_gb": size.memory_gb, "gpus": size.gpus}


def _size_from(data: dict[str, Any]) -> SizeSpec:
    return SizeSpec(data["name"], int(data["vcpus"]), float(data["memory_gb"]), int(data["gpus"]))


def _check_nodes(min_nodes: int, max_nodes: int) -> None:
    if min_nodes < 0 or max_nodes < 1 or min_nodes > max_nodes:
        raise ProviderError(f"Invalid node counts: min {min_nodes}, max {max_nodes}")


def _validate_cidrs(cidrs: Sequence[str]) -> list[str]:
    allowed = []
    for cidr in cidrs:
        try:
            allowed.append(str(ipaddress.ip_network(cidr.strip(), strict=False)))
        except ValueError as exc:
            raise ProviderError(f"Invalid address or CIDR {cidr!r}") from exc
    return allowed
