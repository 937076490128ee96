"""Job environments of the local provider: a virtualenv per set of requirements.

A job's requirements (``name==version`` lines) are installed on top of the
base environment (the interpreter the provider runs jobs with) into a
virtualenv kept under ``root/<key>``, where the key is the sha256 of the
sorted requirements, the base interpreter and pip's extra arguments. It is
built once: the first job that needs it builds it while holding a file lock
on its key (a second job, in any worker process, waits for the lock and then
reuses it), and every later job reuses it. ``env.json`` (written last, so a
half-built folder is never taken for a built one) records the requirements,
when and in how many seconds it was built; ``build.log`` keeps pip's output.
A failed build raises :class:`EnvironmentBuildError` with the end of that
log, and the next job tries again.

The virtualenv sees the base environment's packages below its own (a ``.pth``
file naming the base's site-packages), so only what the base lacks, or a
different version of it, is installed. pip installs wheels only
(``--only-binary=:all:``: no package's build code runs here, outside the
sandbox), with an environment of its own (none of the portal's variables).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.base import ProviderError

FORMAT = 1
PTH_NAME = "_stagegate_base.pth"


class EnvironmentBuildError(ProviderError):
    """pip could not build the environment; the message ends with its output."""


@dataclass(frozen=True)
class Environment:
    """A built environment: its interpreter, the folders a sandbox must show
    read-only besides the interpreter's own, and how it came about."""

    key: str
    python: str
    readonly: tuple[str, ...]
    build_seconds: float
    reused: bool

    def describe(self) -> str:
        how = "reused" if self.reused else "built"
        return f"environment {self.key[:12]}: {how} (build took {self.build_seconds:.1f} s)"


def _base_site_packages(python: str) -> list[str]:
    done = subprocess.run(  # noqa: S603 - an argv list, no shell
        [python, "-c", "import json, site; print(json.dumps(site.getsitepackages()))"],
        capture_output=True,
        timeout=60,
        check=True,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )
    return [str(Path(p).resolve()) for p in json.loads(done.stdout) if Path(p).is_dir()]


def _base_root(python: str) -> str:
    """The base environment's folder (a virtualenv's root), for the sandbox."""
    venv = Path(python).parent.parent
    return str(venv.resolve()) if (venv / "pyvenv.cfg").exists() else ""


class EnvironmentBuilder:
    """Builds and reuses the virtualenvs of ``root``."""

    def __init__(
        self,
        root: Path | str,
        *,
        base_python: str = sys.executable,
        pip_args: Sequence[str] = (),
        timeout: float = 200.0,
    ) -> None:
        self.root = Path(root).resolve()
        self.base_python = base_python
        self.pip_args = tuple(pip_args)
        self.timeout = timeout

    @classmethod
    def from_settings(cls, base_python: str = sys.executable) -> EnvironmentBuilder:
        import shlex

        from django.conf import settings

        return cls(
            settings.LOCAL_ENVS_ROOT,
            base_python=base_python,
            pip_args=shlex.split(settings.LOCAL_ENVS_PIP_ARGS),
            timeout=settings.LOCAL_ENVS_BUILD_TIMEOUT,
        )

    def key(self, requirements: Sequence[str]) -> str:
        identity = {
            "format": FORMAT,
            "requirements": sorted(set(requirements)),
            "python": str(Path(self.base_python).absolute()),
            "pip_args": list(self.pip_args),
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{key}.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _python(self, folder: Path) -> Path:
        return folder / "bin" / "python"

    def _built(self, key: str, *, reused: bool) -> Environment | None:
        folder = self.root / key
        try:
            record: dict[str, Any] = json.loads((folder / "env.json").read_text())
        except (OSError, ValueError):
            return None
        if not self._python(folder).exists():
            return None
        base = _base_root(self.base_python)
        return Environment(
            key=key,
            python=str(self._python(folder)),
            readonly=(base,) if base else (),
            build_seconds=float(record.get("build_seconds", 0.0)),
            reused=reused,
        )

    def ensure(self, requirements: Sequence[str]) -> Environment | None:
        """The environment with ``requirements`` on top of the base, built if
        need be; None without requirements (the base environment itself)."""
        if not requirements:
            return None
        key = self.key(requirements)
        found = self._built(key, reused=True)
        if found is not None:
            return found
        with self._locked(key):
            found = self._built(key, reused=True)  # built meanwhile by another job
            if found is not None:
                return found
            self._build(key, sorted(set(requirements)))
            built = self._built(key, reused=False)
            if built is None:
                raise EnvironmentBuildError("The environment was built but cannot be found.")
            return built

    def _pip_env(self, folder: Path) -> dict[str, str]:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(folder / ".home"),
            "LANG": "C.UTF-8",
            "PIP_CACHE_DIR": str(self.root / ".pip-cache"),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY"):
            if name in os.environ:
                env[name] = os.environ[name]
        return env

    def _build(self, key: str, requirements: list[str]) -> None:
        folder = self.root / key
        shutil.rmtree(folder, ignore_errors=True)  # what a failed build left
        folder.mkdir(parents=True)
        (folder / ".home").mkdir()
        log_path = folder / "build.log"
        started = time.monotonic()
        deadline = started + self.timeout
        with open(log_path, "wb") as log:
            log.write(f"requirements: {' '.join(requirements)}\n".encode())
            log.flush()
            steps = [
                [self.base_python, "-m", "venv", "--without-pip", str(folder)],
                None,  # the .pth file, below
                [
                    str(self._python(folder)),
                    "-m",
                    "pip",
                    "install",
                    "--only-binary=:all:",
                    "--no-warn-script-location",
                    *self.pip_args,
                    "--",
                    *requirements,
                ],
            ]
            for step in steps:
                if step is None:
                    self._link_base(folder)
                    continue
                log.write(f"$ {' '.join(step)}\n".encode())
                log.flush()
                try:
                    done = subprocess.run(  # noqa: S603 - an argv list, no shell
                        step,
                        cwd=folder,
                        env=self._pip_env(folder),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        timeout=max(1.0, deadline - time.monotonic()),
                        check=False,
                    )
                except subprocess.TimeoutExpired as exc:
                    log.write(f"stopped after {self.timeout:.0f} s\n".encode())
                    raise EnvironmentBuildError(
                        f"The environment took longer than {self.timeout:.0f} s to build."
                    ) from exc
                if done.returncode != 0:
                    log.flush()
                    raise EnvironmentBuildError(
                        f"The environment could not be built (pip said: {_last_words(log_path)})"
                    )
        seconds = round(time.monotonic() - started, 2)
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)  # a job running as its own uid reads it
        record = {
            "requirements": requirements,
            "base_python": self.base_python,
            "pip_args": list(self.pip_args),
            "built_at": time.time(),
            "build_seconds": seconds,
        }
        tmp = folder / ".env.json.tmp"
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, folder / "env.json")

    def _link_base(self, folder: Path) -> None:
        done = subprocess.run(  # noqa: S603 - an argv list, no shell
            [
                str(self._python(folder)),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            capture_output=True,
            timeout=60,
            check=True,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
        purelib = Path(done.stdout.decode().strip())
        purelib.mkdir(parents=True, exist_ok=True)
        lines = _base_site_packages(self.base_python)
        (purelib / PTH_NAME).write_text("".join(f"{line}\n" for line in lines))


def _last_words(log_path: Path, lines: int = 6) -> str:
    text = log_path.read_text(errors="replace").strip().splitlines()
    said = [line.strip() for line in text if line.strip() and not line.startswith("$ ")]
    return " / ".join(said[-lines:])[-400:]
