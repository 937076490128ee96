"""A job's code, stored content-addressed: from an uploaded archive or a git repository.

Whatever the code came from, it is turned into one canonical archive (an
uncompressed tar of regular files only, sorted by path, with mode 0644 or
0755, owner 0 and time 0) whose sha256 is the job's ``code_digest``; the
archive is kept in the object store under that digest, so a re-run runs
exactly the same bytes. An archive is refused, with the reason, when a
member's path is absolute or leaves the folder, when it is a link or a
device, or when it has more files or bytes than ``JOBS_CODE_MAX_FILES`` and
``JOBS_CODE_MAX_BYTES`` allow. A single top folder that holds everything (as
in a GitHub zip) is dropped, so the command runs in the code's own root.

A repository is fetched by the worker, never by the web process: an https
URL goes through the data sources' egress guard (``datasets.egress``), and
git connects to the address the guard checked (``http.curloptResolve``), with
redirects, other protocols, the user's and the system's git configuration
and submodules all off. A local repository (a path or a ``file://`` URL) is
refused unless it lies under a folder an operator lists in
``JOBS_GIT_LOCAL_ROOTS``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO
from urllib.parse import urlsplit

from django.conf import settings

from datasets.egress import EgressRefused, egress_check
from datasets.storage import default_store, object_key

REF_RE = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9._/-]{1,200}$")
SHA_RE = re.compile(r"^[0-9a-f]{7,40}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
GIT_TIMEOUT = 300


class CodeRefused(Exception):
    """The code cannot be used (bad archive, repository out of reach); the
    message says why, in words for the person who gave it."""


@dataclass(frozen=True)
class StoredCode:
    digest: str
    files: int
    size: int
    commit: str = ""


def max_bytes() -> int:
    return int(settings.JOBS_CODE_MAX_BYTES)


def max_files() -> int:
    return int(settings.JOBS_CODE_MAX_FILES)


# --- canonical archives ------------------------------------------------------------


def _clean_member(name: str) -> str | None:
    """The member's relative path, None for a folder entry; refuses escapes."""
    if "\\" in name or "\x00" in name:
        raise CodeRefused(f"“{name[:100]}”: a path with a backslash or a NUL is not accepted.")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise CodeRefused(f"“{name[:100]}”: absolute paths are not accepted.")
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise CodeRefused(f"“{name[:100]}”: a path may not leave the archive's folder (..).")
    if not parts:
        return None
    return "/".join(parts)


class _Collector:
    """Files read from an archive, within the limits."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, bool]] = {}
        self.total = 0
        self.folders = 0

    def folder(self, name: str) -> None:
        """A folder entry: checked and counted (an archive of nothing but
        folders is as long to read as one of files)."""
        _clean_member(name)
        self.folders += 1
        if self.folders > max_files():
            raise CodeRefused(f"More than {max_files()} folders: the code is too large.")

    def add(self, name: str, stream: IO[bytes] | None, size: int, executable: bool) -> None:
        path = _clean_member(name)
        if path is None:
            return
        if len(self.files) + 1 > max_files():
            raise CodeRefused(f"More than {max_files()} files: the code is too large.")
        if self.total + size > max_bytes():
            raise CodeRefused(f"More than {max_bytes() // 1024**2} MB unpacked: too large.")
        data = stream.read(max_bytes() - self.total + 1) if stream is not None else b""
        if len(data) != size or self.total + len(data) > max_bytes():
            raise CodeRefused(f"“{path[:100]}” is not the size its header says.")
        if path in self.files:
            raise CodeRefused(f"“{path[:100]}” is in the archive twice.")
        self.total += len(data)
        self.files[path] = (data, executable)


def _from_tar(data: bytes, collector: _Collector) -> None:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            for member in archive:
                if member.isdir():
                    collector.folder(member.name)
                    continue
                if member.issym() or member.islnk():
                    raise CodeRefused(f"“{member.name[:100]}” is a link: links are not accepted.")
                if not member.isfile():
                    raise CodeRefused(
                        f"“{member.name[:100]}” is a device or a pipe, not a file: not accepted."
                    )
                collector.add(
                    member.name,
                    archive.extractfile(member),
                    member.size,
                    bool(member.mode & 0o111),
                )
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise CodeRefused(f"The archive cannot be read: {exc}") from exc


def _from_zip(data: bytes, collector: _Collector) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                # Unix file modes only where a Unix system wrote them; the
                # type bits may be missing (a bare 0o600): a regular file then.
                mode = info.external_attr >> 16 if info.create_system == 3 else 0
                if info.is_dir():
                    collector.folder(info.filename)
                    continue
                if stat.S_ISLNK(mode):
                    raise CodeRefused(f"“{info.filename[:100]}” is a link: links are not accepted.")
                if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
                    raise CodeRefused(
                        f"“{info.filename[:100]}” is a device or a pipe, not a file: not accepted."
                    )
                if collector.total + info.file_size > max_bytes():
                    raise CodeRefused(f"More than {max_bytes() // 1024**2} MB unpacked: too large.")
                with archive.open(info) as stream:
                    collector.add(info.filename, stream, info.file_size, bool(mode & 0o111))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, zlib.error) as exc:
        raise CodeRefused(f"The archive cannot be read: {exc}") from exc
    except NotImplementedError as exc:  # an unknown compression method
        raise CodeRefused(f"The archive cannot be read: {exc}") from exc


def _strip_top_folder(files: dict[str, tuple[bytes, bool]]) -> dict[str, tuple[bytes, bool]]:
    tops = {path.split("/", 1)[0] for path in files}
    if len(tops) == 1 and all("/" in path for path in files):
        return {path.split("/", 1)[1]: value for path, value in files.items()}
    return files


def canonical_tar(files: dict[str, tuple[bytes, bool]]) -> bytes:
    """The canonical archive of ``files`` (path: (content, executable)): the
    same files always give the same bytes, whatever archive they came in."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(files):
            data, executable = files[path]
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o755 if executable else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def read_archive(data: bytes, *, strip: bool = True) -> dict[str, tuple[bytes, bool]]:
    """The files of a zip or tar.gz archive, checked (see the module's docstring);
    ``strip``: without the single top folder that holds everything, if any."""
    collector = _Collector()
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        _from_zip(data, collector)
    elif data[:2] == b"\x1f\x8b" or (len(data) > 262 and data[257:262] == b"ustar"):
        _from_tar(data, collector)
    else:
        raise CodeRefused("Not a zip or tar.gz archive.")
    if not collector.files:
        raise CodeRefused("The archive holds no files.")
    return _strip_top_folder(collector.files) if strip else collector.files


def store(files: dict[str, tuple[bytes, bool]], *, commit: str = "") -> StoredCode:
    """Keep the canonical archive of ``files`` under its sha256."""
    data = canonical_tar(files)
    staged, _ = default_store().put_bytes(data)
    return StoredCode(
        digest=staged.sha256,
        files=len(files),
        size=sum(len(d) for d, _ in files.values()),
        commit=commit,
    )


def archive_store(upload: IO[bytes]) -> StoredCode:
    """Check an uploaded archive and keep its code; CodeRefused says why not."""
    limit = int(settings.JOBS_CODE_MAX_UPLOAD_BYTES)
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise CodeRefused(f"The archive is larger than {limit // 1024**2} MB.")
    return store(read_archive(data))


@contextlib.contextmanager
def folder_made(folder: Path, *, prefix: str) -> Iterator[Path]:
    """A scratch folder beside ``folder`` to fill; moved into place (mode 0755)
    when the block ends, unless another process made ``folder`` meanwhile;
    removed on an error."""
    scratch = Path(tempfile.mkdtemp(prefix=prefix, dir=folder.parent))
    try:
        yield scratch
        scratch.chmod(0o755)
        try:
            os.rename(scratch, folder)
        except OSError:
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def code_folder(digest: str) -> Path:
    """A folder on this machine with the code of ``digest``, unpacked once."""
    root = Path(settings.VAR_DIR) / "job-code"
    folder = root / digest
    if folder.is_dir():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    key = object_key(digest)
    with default_store().open(key) as stream:
        data = stream.read()
    if hashlib.sha256(data).hexdigest() != digest:
        raise CodeRefused("The stored code does not match its digest.")
    files = read_archive(data, strip=False)
    with folder_made(folder, prefix=".unpack-") as scratch:
        for path, (content, executable) in files.items():
            target = scratch / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            target.chmod(0o755 if executable else 0o644)
    return folder


# --- git repositories --------------------------------------------------------------


def local_roots() -> list[Path]:
    return [Path(p).resolve() for p in settings.JOBS_GIT_LOCAL_ROOTS if str(p).strip()]


def check_repository(url: str, ref: str) -> None:
    """Refuse a repository URL or reference that can never be fetched, before
    the job is queued (the worker checks the network again when it fetches)."""
    url = url.strip()
    if not url:
        raise CodeRefused("Give the repository's URL.")
    if len(url) > 500:
        raise CodeRefused("The repository's URL is longer than 500 characters.")
    if not REF_RE.match(ref or "") or ref.endswith((".lock", "/")):
        raise CodeRefused("Give a branch, tag or commit (letters, digits, . _ / -).")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise CodeRefused(f"Not a URL: {exc}") from exc
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise CodeRefused("A URL without spaces or control characters.")
    if parts.scheme == "https":
        if not parts.hostname or parts.username or parts.password:
            raise CodeRefused("An https URL with a host and without credentials in it.")
        return
    if parts.scheme == "file" or (not parts.scheme and url.startswith("/")):
        _local_repository(url)
        return
    raise CodeRefused("Only https repositories are fetched (no ssh, git or http).")


def _local_repository(url: str) -> Path:
    path = urlsplit(url).path if url.startswith("file:") else url
    roots = local_roots()
    if not roots:
        raise CodeRefused(
            "Local repositories are not allowed here; an operator may allow folders "
            "in JOBS_GIT_LOCAL_ROOTS."
        )
    if not path.startswith("/"):
        raise CodeRefused("A local repository is given by its absolute path.")
    real = Path(path).resolve()
    if not any(real == root or root in real.parents for root in roots):
        raise CodeRefused("That folder is not under the folders allowed in JOBS_GIT_LOCAL_ROOTS.")
    if not real.is_dir():
        raise CodeRefused("No repository at that path.")
    return real


def _git_env(home: Path) -> dict[str, str]:
    """Git without the portal's environment, the user's or the system's configuration."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "GIT_LFS_SKIP_SMUDGE": "1",
    }
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def _git(args: Iterable[str], *, cwd: Path, env: dict[str, str], config: list[str]) -> bytes:
    command = ["git", *config, *args]
    try:
        done = subprocess.run(  # noqa: S603 - an argv list, no shell
            command, cwd=cwd, env=env, capture_output=True, timeout=GIT_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise CodeRefused(f"git took longer than {GIT_TIMEOUT} s.") from exc
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise CodeRefused(f"git {list(args)[0]} failed: {' '.join(said[-3:])[:400]}")
    return done.stdout


def repository_fetch(url: str, ref: str) -> StoredCode:
    """Fetch ``ref`` of the repository at ``url`` and keep its code (run by the worker)."""
    check_repository(url, ref)
    parts = urlsplit(url.strip())
    config = [
        "-c",
        "protocol.allow=never",
        "-c",
        "http.followRedirects=false",
        "-c",
        "submodule.recurse=false",
        "-c",
        "core.hooksPath=/dev/null",
        "-c",
        "core.symlinks=false",
    ]
    if parts.scheme == "https":
        host = parts.hostname or ""
        port = parts.port or 443
        try:
            address = egress_check(host, port)
        except EgressRefused as exc:
            raise CodeRefused(str(exc)) from exc
        shown = f"[{address}]" if ":" in address else address
        config += ["-c", "protocol.https.allow=always"]
        config += ["-c", f"http.curloptResolve={host}:{port}:{shown}"]
        remote = url.strip()
    else:
        config += ["-c", "protocol.file.allow=always"]
        remote = _local_repository(url.strip()).as_uri()
    with tempfile.TemporaryDirectory(prefix="sg-git-") as scratch:
        work = Path(scratch) / "repo"
        home = Path(scratch) / "home"
        home.mkdir()
        env = _git_env(home)
        work.mkdir()
        _git(["init", "-q", "--bare"], cwd=work, env=env, config=config)
        try:
            _git(
                ["fetch", "-q", "--depth=1", "--no-tags", remote, ref],
                cwd=work,
                env=env,
                config=config,
            )
        except CodeRefused:
            if not SHA_RE.match(ref):
                raise
            # A commit the server does not hand out by itself: fetch the
            # branches and find it among them.
            _git(
                ["fetch", "-q", "--no-tags", remote, "+refs/heads/*:refs/remotes/origin/*"],
                cwd=work,
                env=env,
                config=config,
            )
            commit = _git(
                ["rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=work, env=env, config=config
            )
        else:
            commit = _git(["rev-parse", "FETCH_HEAD^{commit}"], cwd=work, env=env, config=config)
        sha = commit.decode().strip()
        tar = _git(["archive", "--format=tar", sha], cwd=work, env=env, config=config)
    collector = _Collector()
    _from_tar(tar, collector)
    if not collector.files:
        raise CodeRefused("The repository holds no files at that reference.")
    return store(collector.files, commit=sha)
