"""The artifact proxy's storage: one folder per project below the object
store's root (``<STAGEGATE_STORAGE_URL>/mlflow-artifacts/<project id>/``).

Paths come from clients, so each is checked segment by segment (no ``..``,
no absolute paths, no backslashes, no control characters, no ``%``), and on
local storage the resolved path must stay under the project's root, which
also refuses symlinks pointing out of it.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from typing import IO, Any

import fsspec
from django.conf import settings
from fsspec.implementations.local import LocalFileSystem

from experiments.errors import invalid, not_found

MAX_PATH = 1000
ARTIFACT_SCHEME = "mlflow-artifacts:"


def clean_path(path: str, *, allow_empty: bool = False) -> str:
    """The relative path, or INVALID_PARAMETER_VALUE when it could escape."""
    if len(path) > MAX_PATH:
        raise invalid(f"Artifact path is longer than {MAX_PATH} characters.")
    stripped = path.strip("/") if not path.startswith("/") else None
    if stripped is None or "\\" in path or "%" in path or any(ord(c) < 32 for c in path):
        raise invalid(f"Invalid artifact path: '{path}'")
    parts = [p for p in stripped.split("/") if p]
    if any(p in (".", "..") for p in parts) or (not parts and not allow_empty):
        raise invalid(f"Invalid artifact path: '{path}'")
    if parts and ":" in parts[0]:
        raise invalid(f"Invalid artifact path: '{path}'")
    return "/".join(parts)


class ArtifactStore:
    def __init__(self, project_id: int) -> None:
        fs, root = fsspec.core.url_to_fs(
            settings.STAGEGATE_STORAGE_URL, **dict(settings.STAGEGATE_STORAGE_OPTIONS)
        )
        self.fs: Any = fs
        self.is_local = isinstance(fs, LocalFileSystem)
        self.root = f"{root.rstrip('/')}/mlflow-artifacts/{int(project_id)}"

    def _full(self, rel: str) -> str:
        full = posixpath.join(self.root, rel) if rel else self.root
        if self.is_local:
            root_real = os.path.realpath(self.root)
            real = os.path.realpath(full)
            if real != root_real and not real.startswith(root_real + os.sep):
                raise invalid(f"Invalid artifact path: '{rel}'")
        return full

    def write(self, rel: str, stream: IO[bytes] | Any, max_bytes: int) -> int:
        full = self._full(clean_path(rel))
        if self.fs.isdir(full):
            raise invalid(f"'{rel}' is a directory.")
        parent = posixpath.dirname(full)
        self.fs.makedirs(parent, exist_ok=True)
        self._full(clean_path(rel))  # the parents made may not lead outside
        size = 0
        tmp = f"{full}.upload-{os.getpid()}-{id(stream)}"
        try:
            with self.fs.open(tmp, "wb") as out:
                while chunk := stream.read(1024 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise invalid(f"The artifact is larger than {max_bytes:,} bytes.")
                    out.write(chunk)
            self.fs.mv(tmp, full)
        finally:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
        return size

    def open(self, rel: str) -> IO[bytes]:
        full = self._full(clean_path(rel))
        if not self.fs.isfile(full):
            raise not_found(f"Artifact '{rel}' does not exist.")
        return self.fs.open(full, "rb")  # type: ignore[no-any-return]

    def list(self, rel: str) -> Iterator[dict[str, Any]]:
        rel = clean_path(rel, allow_empty=True)
        full = self._full(rel)
        if not self.fs.isdir(full):
            # A file or nothing: no entries, as MLflow's server answers. The
            # 2.x client lists a path to learn whether it is a folder.
            return
        for entry in sorted(self.fs.ls(full, detail=True), key=lambda e: e["name"]):
            name = posixpath.basename(entry["name"].rstrip("/"))
            if ".upload-" in name:
                continue
            if entry["type"] == "directory":
                yield {"path": name, "is_dir": True}
            else:
                yield {"path": name, "is_dir": False, "file_size": int(entry["size"])}

    def delete(self, rel: str) -> None:
        full = self._full(clean_path(rel))
        if not self.fs.exists(full):
            raise not_found(f"Artifact '{rel}' does not exist.")
        self.fs.rm(full, recursive=True)


def artifact_path_of(uri: str) -> str | None:
    """The path inside the project's store of an ``mlflow-artifacts:`` URI."""
    if not uri.startswith(ARTIFACT_SCHEME):
        return None
    rest = uri[len(ARTIFACT_SCHEME) :]
    if rest.startswith("//"):
        return None  # names another host
    # ``mlflow-artifacts:/1/...``: the path is relative to the project's store.
    return clean_path(rest.removeprefix("/"), allow_empty=True)
