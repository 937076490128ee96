"""Job environments of the local provider (cloud/local_envs.py): a virtualenv
per set of requirements, built once under a lock, reused, with the base
environment's packages below its own; a failed build says why. Hermetic: the
requirement is a wheel built here, found through pip's --find-links."""

from __future__ import annotations

import subprocess
import threading
import zipfile
from pathlib import Path

import pytest

from cloud.local_envs import EnvironmentBuilder, EnvironmentBuildError

WHEEL_NAME = "sgtiny"


def tiny_wheel(folder: Path, version: str = "0.1", value: int = 42) -> Path:
    """A pure-Python wheel, ``sgtiny``, that the base environment lacks."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{WHEEL_NAME}-{version}-py3-none-any.whl"
    info = f"{WHEEL_NAME}-{version}.dist-info"
    files = {
        f"{WHEEL_NAME}/__init__.py": f"VALUE = {value}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {WHEEL_NAME}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr(f"{info}/RECORD", record)
    return path


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    tiny_wheel(tmp_path / "wheels")
    return tmp_path / "wheels"


def builder(root: Path, wheels: Path) -> EnvironmentBuilder:
    return EnvironmentBuilder(root, pip_args=["--no-index", f"--find-links={wheels}"], timeout=120)


def run_in(python: str, code: str) -> str:
    done = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


def test_built_once_then_reused_with_the_base_packages_below(tmp_path: Path, wheels: Path) -> None:
    import importlib.util

    assert importlib.util.find_spec(WHEEL_NAME) is None  # the base lacks it
    envs = builder(tmp_path / "envs", wheels)
    assert envs.ensure([]) is None  # nothing to add: the base itself
    first = envs.ensure([f"{WHEEL_NAME}==0.1"])
    assert first is not None and not first.reused and first.build_seconds > 0
    assert "built" in first.describe()
    # Its own package, and the base environment's (pandas) below it.
    assert run_in(first.python, "import sgtiny, pandas; print(sgtiny.VALUE)") == "42"
    again = envs.ensure([f"{WHEEL_NAME}==0.1"])
    assert again is not None and again.reused and again.python == first.python
    assert again.build_seconds == first.build_seconds
    folder = Path(first.python).parent.parent
    assert (folder / "build.log").read_text().count("Successfully installed sgtiny-0.1") == 1
    assert first.key == envs.key([f"{WHEEL_NAME}==0.1", f"{WHEEL_NAME}==0.1"])
    assert first.key != envs.key([f"{WHEEL_NAME}==0.2"])


def test_two_jobs_at_once_build_it_once(tmp_path: Path, wheels: Path) -> None:
    envs = builder(tmp_path / "envs", wheels)
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(envs.ensure([f"{WHEEL_NAME}==0.1"])))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    reused = sorted(bool(getattr(r, "reused", None)) for r in results)
    assert reused == [False, True]
    log = next((tmp_path / "envs").glob("*/build.log")).read_text()
    assert log.count("$ ") == 2  # one venv and one pip install: one build


def test_a_failed_build_says_why_and_is_tried_again(tmp_path: Path, wheels: Path) -> None:
    envs = builder(tmp_path / "envs", wheels)
    with pytest.raises(EnvironmentBuildError, match="No matching distribution found for sgtiny==9"):
        envs.ensure([f"{WHEEL_NAME}==9"])
    tiny_wheel(wheels, version="9", value=9)
    built = envs.ensure([f"{WHEEL_NAME}==9"])
    assert built is not None and not built.reused
    assert run_in(built.python, "import sgtiny; print(sgtiny.VALUE)") == "9"


def test_no_build_code_runs_sdists_are_refused(tmp_path: Path) -> None:
    sdists = tmp_path / "sdists"
    sdists.mkdir()
    # An sdist whose setup.py would write a file if pip ran it.
    marker = tmp_path / "ran"
    project = tmp_path / "evil-1.0"
    project.mkdir()
    (project / "setup.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\nfrom setuptools import setup\n"
        "setup(name='evil', version='1.0')\n"
    )
    subprocess.run(
        ["tar", "czf", str(sdists / "evil-1.0.tar.gz"), "-C", str(tmp_path), "evil-1.0"],
        check=True,
    )
    envs = EnvironmentBuilder(
        tmp_path / "envs", pip_args=["--no-index", f"--find-links={sdists}"], timeout=120
    )
    with pytest.raises(EnvironmentBuildError, match="could not be built"):
        envs.ensure(["evil==1.0"])
    assert not marker.exists()
