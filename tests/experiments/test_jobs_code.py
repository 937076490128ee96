"""A job's code from an uploaded archive or a git repository: archives that
escape their folder, links, devices and oversized ones refused with a reason
(400 in the API, the form's message on the page, no row written); the same
files in a zip and a tar.gz are one canonical digest; a local repository only
under a folder the operator allows; an https one through the egress guard;
a re-run keeps the code's digest."""

from __future__ import annotations

import io
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from experiments import job_code, jobs
from experiments.job_models import Job, JobKind
from experiments.models import RunTag
from tests.experiments import jobs_data
from tests.experiments.jobs_data import ready_split

FILES = {"train.py": b"print('hello')\n", "lib/util.py": b"X = 1\n", "run.sh": b"echo hi\n"}


@pytest.fixture
def small(db: Any) -> Any:
    return jobs_data.size()


@pytest.fixture
def split(project: Any, alice: Any, django_capture_on_commit_callbacks: Any) -> Any:
    return ready_split(project=project, actor=alice, callbacks=django_capture_on_commit_callbacks)


@pytest.fixture(autouse=True)
def var_dir(settings: Any, tmp_path: Path) -> Path:
    settings.VAR_DIR = tmp_path / "var"
    return Path(settings.VAR_DIR)


def a_zip(files: dict[str, bytes], top: str = "") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(top + name)
            info.external_attr = (0o100755 if name.endswith(".sh") else 0o100644) << 16
            archive.writestr(info, data)
    return out.getvalue()


def a_tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def file_member(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 1_700_000_000
    return info, data


def special(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def test_the_same_files_in_a_zip_and_a_tar_gz_are_one_digest_and_unpack_again() -> None:
    zipped = job_code.archive_store(io.BytesIO(a_zip(FILES, top="project-main/")))
    tarred = job_code.archive_store(
        io.BytesIO(
            a_tar_gz(
                [
                    file_member(f"./{n}", d, 0o755 if n.endswith(".sh") else 0o600)
                    for n, d in reversed(FILES.items())
                ]
            )
        )
    )
    assert zipped.digest == tarred.digest and zipped.files == 3
    folder = job_code.code_folder(zipped.digest)
    assert {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} == set(FILES)
    assert (folder / "lib/util.py").read_bytes() == b"X = 1\n"
    assert (folder / "run.sh").stat().st_mode & 0o111  # executable kept, nothing else
    assert not (folder / "train.py").stat().st_mode & 0o111


@pytest.mark.parametrize(
    ("archive", "reason"),
    [
        (lambda: a_zip({"../evil.py": b"x"}), "may not leave the archive's folder"),
        (lambda: a_zip({"/etc/evil.py": b"x"}), "absolute paths are not accepted"),
        (lambda: a_tar_gz([file_member("a/../../evil", b"x")]), "may not leave"),
        (lambda: a_tar_gz([special("link", tarfile.SYMTYPE, "/etc/passwd")]), "is a link"),
        (lambda: a_tar_gz([special("hard", tarfile.LNKTYPE, "train.py")]), "is a link"),
        (lambda: a_tar_gz([special("dev", tarfile.CHRTYPE)]), "a device or a pipe"),
        (lambda: a_tar_gz([special("fifo", tarfile.FIFOTYPE)]), "a device or a pipe"),
        (lambda: b"just some text, not an archive", "Not a zip or tar.gz archive."),
        (lambda: a_zip({}), "no files"),
        (lambda: b"\x1f\x8b\x08\x00broken", "cannot be read"),
    ],
)
def test_bad_archives_are_refused_with_the_reason(archive: Any, reason: str) -> None:
    with pytest.raises(job_code.CodeRefused, match=reason):
        job_code.archive_store(io.BytesIO(archive()))


def test_a_zip_symlink_is_refused() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(job_code.CodeRefused, match="is a link"):
        job_code.read_archive(out.getvalue())
    # Modes without their type bits (zipfile's own writestr), or none at all
    # (written on Windows): regular files.
    plain = io.BytesIO()
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("a/train.py", "print(1)\n")
        windows = zipfile.ZipInfo("a/util.py")
        windows.create_system = 0
        windows.external_attr = 0x20  # the DOS archive bit
        archive.writestr(windows, "X = 1\n")
    assert job_code.read_archive(plain.getvalue()) == {
        "train.py": (b"print(1)\n", False),
        "util.py": (b"X = 1\n", False),
    }


def test_limits_on_files_bytes_and_upload(settings: Any) -> None:
    settings.JOBS_CODE_MAX_FILES = 2
    with pytest.raises(job_code.CodeRefused, match="More than 2 files"):
        job_code.read_archive(a_zip(FILES))
    folders: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for i in range(3):
        info = tarfile.TarInfo(f"d{i}")
        info.type = tarfile.DIRTYPE
        folders.append((info, None))
    with pytest.raises(job_code.CodeRefused, match="More than 2 folders"):
        job_code.read_archive(a_tar_gz(folders))
    settings.JOBS_CODE_MAX_FILES = 100
    settings.JOBS_CODE_MAX_BYTES = 1024
    # A small archive of a big, compressible file: the unpacked size counts.
    with pytest.raises(job_code.CodeRefused, match="unpacked: too large"):
        job_code.read_archive(a_zip({"zeros.bin": b"\0" * 10_000}))
    with pytest.raises(job_code.CodeRefused, match="unpacked: too large"):
        job_code.read_archive(a_tar_gz([file_member("zeros.bin", b"\0" * 10_000)]))
    settings.JOBS_CODE_MAX_UPLOAD_BYTES = 100
    with pytest.raises(job_code.CodeRefused, match="larger than"):
        job_code.archive_store(io.BytesIO(b"PK\x03\x04" + b"x" * 200))


def git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "HOME": str(repo),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, check=True, text=True
    )
    return done.stdout.strip()


def make_repository(root: Path, files: dict[str, bytes]) -> Path:
    repo = root / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for name, data in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes(data)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    return repo


def test_a_local_repository_only_under_an_allowed_folder(settings: Any, tmp_path: Path) -> None:
    repo = make_repository(tmp_path / "allowed", FILES)
    first = git(repo, "rev-parse", "HEAD")
    (repo / "train.py").write_bytes(b"print('second')\n")
    git(repo, "commit", "-q", "-am", "second")
    settings.JOBS_GIT_LOCAL_ROOTS = []
    with pytest.raises(job_code.CodeRefused, match="JOBS_GIT_LOCAL_ROOTS"):
        job_code.repository_fetch(str(repo), "main")
    settings.JOBS_GIT_LOCAL_ROOTS = [str(tmp_path / "elsewhere")]
    with pytest.raises(job_code.CodeRefused, match="not under the folders allowed"):
        job_code.repository_fetch(repo.as_uri(), "main")
    # A path that leads out of the allowed folder through ".." is out too.
    settings.JOBS_GIT_LOCAL_ROOTS = [str(tmp_path / "allowed" / "repo" / "lib")]
    with pytest.raises(job_code.CodeRefused, match="not under the folders allowed"):
        job_code.repository_fetch(f"{repo}/lib/..", "main")
    settings.JOBS_GIT_LOCAL_ROOTS = [str(tmp_path / "allowed")]
    head = job_code.repository_fetch(repo.as_uri(), "main")
    old = job_code.repository_fetch(str(repo), first)
    assert head.commit == git(repo, "rev-parse", "HEAD") and old.commit == first
    assert head.digest != old.digest
    unpacked = job_code.code_folder(old.digest)
    assert (unpacked / "train.py").read_bytes() == FILES["train.py"]
    assert (unpacked / "lib" / "util.py").exists()
    # The same tree again is the same digest.
    assert job_code.repository_fetch(str(repo), first).digest == old.digest
    with pytest.raises(job_code.CodeRefused, match="git fetch failed"):
        job_code.repository_fetch(str(repo), "no-such-branch")


def test_repository_urls_refused_before_anything_is_fetched(settings: Any) -> None:
    settings.DATA_EGRESS_LOOPBACK_PORTS = []
    for url, ref, reason in [
        ("ssh://git@example.org/x.git", "main", "Only https"),
        ("git@example.org:x.git", "main", "Only https"),
        ("http://example.org/x.git", "main", "Only https"),
        ("https://user:secret@example.org/x.git", "main", "without credentials"),
        ("https://example.org/x.git", "--upload-pack=evil", "branch, tag or commit"),
        ("https://example.org/x.git", "a/../b", "branch, tag or commit"),
        ("", "main", "Give the repository's URL"),
        ("https://[::1/x.git", "main", "Not a URL"),
        ("https://example.org:99999/x.git", "main", "Not a URL"),
        ("https://example.org/x y.git", "main", "without spaces"),
    ]:
        with pytest.raises(job_code.CodeRefused, match=reason):
            job_code.check_repository(url, ref)
    # The guard of the data sources: this machine is out of reach.
    with pytest.raises(job_code.CodeRefused, match="this machine"):
        job_code.repository_fetch("https://127.0.0.1:9/x.git", "main")
    with pytest.raises(job_code.CodeRefused, match="private address"):
        job_code.repository_fetch("https://10.1.2.3/x.git", "main")


def test_requirements_are_package_names_only() -> None:
    assert jobs.requirements_clean("lightgbm==4.7.0\n# a comment\n\npolars>=1  # fast\n") == [
        "lightgbm==4.7.0",
        "polars>=1",
    ]
    for bad, reason in [
        ("--index-url=https://evil/simple", "not an option"),
        ("-e .", "not an option"),
        ("pkg @ https://evil/pkg.whl", "not an option or a path"),
        ("/tmp/pkg.whl", "not an option or a path"),
        ("not a requirement!!", "is not a requirement"),
    ]:
        with pytest.raises(ValidationError, match=reason):
            jobs.requirements_clean(bad)


def url(project: Any, rest: str = "") -> str:
    return f"/api/projects/{project.slug}/jobs/{rest}"


def test_api_archive_job_and_refusals_write_nothing(
    api_for: Any, project: Any, bob: Any, carol: Any, charlie: Any, split: Any, small: Any
) -> None:
    api = api_for(bob)
    bad = a_tar_gz([special("link", tarfile.SYMTYPE, "/etc/passwd")])
    refused = api.post(
        url(project),
        {
            "kind": "archive",
            "split": split.pk,
            "size": small.name,
            "command": "python train.py",
            "archive": SimpleUploadedFile("code.tar.gz", bad),
        },
        format="multipart",
    )
    assert refused.status_code == 400
    assert "is a link" in refused.json()["archive"][0]
    missing = api.post(
        url(project),
        {"kind": "archive", "split": split.pk, "size": small.name, "command": "python x.py"},
        format="multipart",
    )
    assert missing.status_code == 400 and "Upload the code" in missing.json()["archive"][0]
    no_command = api.post(
        url(project),
        {
            "kind": "archive",
            "split": split.pk,
            "size": small.name,
            "archive": SimpleUploadedFile("code.zip", a_zip(FILES)),
        },
        format="multipart",
    )
    assert no_command.status_code == 400 and "command" in no_command.json()
    bad_requirement = api.post(
        url(project),
        {
            "kind": "repository",
            "split": split.pk,
            "size": small.name,
            "repository_url": "https://example.org/x.git",
            "command": "python train.py",
            "requirements": ["--extra-index-url=https://evil/"],
        },
        format="json",
    )
    assert bad_requirement.status_code == 400
    assert "not an option" in bad_requirement.json()["requirements"][0]
    assert not Job.objects.exists()
    for user, code in ((carol, 403), (charlie, 404)):
        answer = api_for(user).post(
            url(project),
            {
                "kind": "archive",
                "split": split.pk,
                "size": small.name,
                "command": "python train.py",
                "archive": SimpleUploadedFile("code.zip", a_zip(FILES)),
            },
            format="multipart",
        )
        assert answer.status_code == code
    created = api.post(
        url(project),
        {
            "kind": "archive",
            "split": split.pk,
            "size": small.name,
            "command": "python train.py",
            "requirements": ["polars>=1"],
            "archive": SimpleUploadedFile("code.zip", a_zip(FILES, top="x/")),
        },
        format="multipart",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["kind"] == "archive" and body["command"] == "python train.py"
    assert body["requirements"] == ["polars>=1"] and body["template"] == ""
    assert body["code_digest"] == job_code.store(job_code.read_archive(a_zip(FILES))).digest
    job = Job.objects.get(pk=body["id"])
    assert RunTag.objects.get(run=job.run, key="stagegate.code_digest").value == job.code_digest
    event = AuditEvent.objects.get(action="job.created", object_id=str(job.pk))
    assert event.payload["kind"] == "archive" and event.payload["requirements"] == ["polars>=1"]
    rerun = api.post(url(project, f"{job.pk}/rerun/"), {}, format="json")
    assert rerun.status_code == 201 and rerun.json()["code_digest"] == job.code_digest
    assert rerun.json()["requirements"] == ["polars>=1"]


def test_api_repository_job_is_fetched_later_and_local_paths_need_the_setting(
    api_for: Any, project: Any, bob: Any, split: Any, small: Any, settings: Any, tmp_path: Path
) -> None:
    api = api_for(bob)
    repo = make_repository(tmp_path / "repos", FILES)
    body = {
        "kind": "repository",
        "split": split.pk,
        "size": small.name,
        "repository_url": str(repo),
        "repository_ref": "main",
        "command": "python train.py",
    }
    settings.JOBS_GIT_LOCAL_ROOTS = []
    refused = api.post(url(project), body, format="json")
    assert refused.status_code == 400
    assert "JOBS_GIT_LOCAL_ROOTS" in refused.json()["repository_url"][0]
    assert not Job.objects.exists()
    settings.JOBS_GIT_LOCAL_ROOTS = [str(tmp_path / "repos")]
    created = api.post(url(project), body, format="json")
    assert created.status_code == 201, created.content
    job = Job.objects.get(pk=created.json()["id"])
    assert job.kind == JobKind.REPOSITORY and job.code_digest == ""
    assert job.name == "repo" and job.repository_ref == "main"
    # What the worker records once it has fetched the code.
    stored = job_code.repository_fetch(job.repository_url, job.repository_ref)
    assert jobs.job_code_fetched(job_id=job.pk, digest=stored.digest, commit=stored.commit)
    assert not jobs.job_code_fetched(job_id=job.pk, digest="0" * 64, commit="x")
    job.refresh_from_db()
    assert job.code_digest == stored.digest and job.repository_commit == stored.commit
    tags = dict(RunTag.objects.filter(run=job.run).values_list("key", "value"))
    assert tags["stagegate.commit"] == stored.commit
    assert tags["stagegate.code_digest"] == stored.digest
    assert AuditEvent.objects.filter(action="job.code_fetched", object_id=str(job.pk)).exists()


def test_new_job_page_shows_the_archive_refusal_on_its_field(
    client_for: Any, project: Any, bob: Any, split: Any, small: Any
) -> None:
    client = client_for(bob)
    page = client.get(f"/projects/{project.slug}/jobs/new/")
    assert page.status_code == 200 and b'enctype="multipart/form-data"' in page.content
    answer = client.post(
        f"/projects/{project.slug}/jobs/new/",
        {
            "kind": "archive",
            "split": split.pk,
            "size": small.pk,
            "family": "gbm",
            "model": "sklearn",
            "wall_clock_minutes": 10,
            "command": "python train.py",
            "archive": SimpleUploadedFile("code.zip", a_zip({"../x.py": b"x"})),
        },
    )
    assert answer.status_code == 200
    assert "may not leave the archive" in answer.content.decode()
    assert not Job.objects.exists()
    created = client.post(
        f"/projects/{project.slug}/jobs/new/",
        {
            "kind": "archive",
            "split": split.pk,
            "size": small.pk,
            "family": "gbm",
            "model": "sklearn",
            "wall_clock_minutes": 10,
            "command": "python train.py",
            "requirements": "polars>=1",
            "archive": SimpleUploadedFile("code.zip", a_zip(FILES)),
        },
    )
    assert created.status_code == 302
    job = Job.objects.get()
    detail = client.get(created["Location"]).content.decode()
    assert "An uploaded archive" in detail and "polars&gt;=1" in detail
    assert job.kind == "archive"
