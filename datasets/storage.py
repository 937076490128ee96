"""Content-addressed object storage through fsspec.

Objects live under ``objects/sha256/<first two hex>/<rest>`` below the root of
``STAGEGATE_STORAGE_URL`` (a local folder by default, Azure Blob / ADLS via
adlfs when configured). New content is first written to ``staging/<uuid>``
while it is hashed, in one pass; ``commit`` then moves it under its hash, or
drops it when that object already exists, so identical content is stored once.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import queue
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from stat import S_ISREG
from typing import IO, Any

import fsspec
from django.conf import settings
from fsspec.implementations.local import LocalFileSystem

CHUNK_BYTES = 8 * 1024 * 1024
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
KEY_RE = re.compile(r"^(objects/sha256/[0-9a-f]{2}/[0-9a-f]{62}|staging/[0-9a-f]{32})$")


class TooLarge(Exception):
    """The content is bigger than the limit; nothing was kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The data is larger than the limit of {limit:,} bytes.")
        self.limit = limit


@dataclass(frozen=True)
class Staged:
    key: str
    sha256: str
    size: int


# Chunks in flight: queued for the writer, being written, being hashed, being read.
QUEUE_DEPTH = 2
RING_BUFFERS = QUEUE_DEPTH + 3

Piece = tuple[bytes | memoryview, Callable[[], None] | None]


def _release(release: Callable[[], None] | None) -> None:
    if release is not None:
        release()


def _pieces(source: Iterable[bytes] | IO[bytes]) -> Iterator[Piece]:
    readinto = getattr(source, "readinto", None)
    if readinto is None:
        for chunk in source:  # type: ignore[union-attr]
            if chunk:
                yield chunk, None
        return
    free: queue.Queue[bytearray] = queue.Queue()
    for _ in range(RING_BUFFERS):
        free.put(bytearray(CHUNK_BYTES))
    while True:
        buffer = free.get()
        n = readinto(buffer)
        if not n:
            return
        yield memoryview(buffer)[:n], functools.partial(free.put, buffer)


def _preallocate(out: Any, source: object) -> None:
    """Reserve the file's blocks up front when the source is a regular file
    of known size: the filesystem then allocates once instead of per write."""
    try:
        stat = os.fstat(source.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return
    if S_ISREG(stat.st_mode) and stat.st_size > 0:
        with contextlib.suppress(OSError):
            os.posix_fallocate(out.fileno(), 0, stat.st_size)


class _Writer(threading.Thread):
    """Writes queued chunks in order; remembers the first error."""

    def __init__(self, out: Any) -> None:
        super().__init__(daemon=True)
        self.out = out
        self.queue: queue.Queue[Piece | None] = queue.Queue(maxsize=QUEUE_DEPTH)
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            data, release = item
            if self.error is None:
                try:
                    self.out.write(data)
                except BaseException as exc:
                    self.error = exc
            _release(release)


def object_key(sha256: str) -> str:
    if not SHA256_RE.match(sha256):
        raise ValueError("not a sha256 hex digest")
    return f"objects/sha256/{sha256[:2]}/{sha256[2:]}"


def file_chunks(stream: IO[bytes], chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    while True:
        chunk = stream.read(chunk_bytes)
        if not chunk:
            return
        yield chunk


class ObjectStore:
    def __init__(self, url: str | None = None, options: dict[str, Any] | None = None) -> None:
        url = url or settings.STAGEGATE_STORAGE_URL
        if options is None:
            options = dict(settings.STAGEGATE_STORAGE_OPTIONS)
        self.fs, root = fsspec.core.url_to_fs(url, **options)
        self.root = root.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)
        # Bytes this instance has written to storage (for the benchmarks).
        self.bytes_written = 0

    def path(self, key: str) -> str:
        # Keys come only from this module; anything else (``..``, absolute
        # paths) is refused rather than resolved.
        if not KEY_RE.match(key):
            raise ValueError(f"not a storage key: {key!r}")
        return f"{self.root}/{key}"

    def uri(self, key: str) -> str:
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return f"{protocol}://{self.path(key)}"

    def local_path(self, key: str) -> str | None:
        return self.path(key) if self.is_local else None

    def stage(
        self,
        source: Iterable[bytes] | IO[bytes],
        *,
        max_bytes: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Staged:
        """Write the data to a staging object while hashing it, in one pass.

        ``source`` is a binary file (read into a small ring of reused buffers)
        or an iterable of byte chunks. A writer thread writes each chunk while
        this thread hashes the next one (both release the GIL), so the pass
        costs about as much as the slower of the two, and memory stays at a
        few chunks whatever the size.
        """
        limit = settings.DATA_UPLOAD_MAX_BYTES if max_bytes is None else max_bytes
        key = f"staging/{uuid.uuid4().hex}"
        path = self.path(key)
        digest = hashlib.sha256()
        size = 0
        try:
            if self.is_local:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                out: Any = open(path, "wb", buffering=0)  # noqa: SIM115
                _preallocate(out, source)
            else:
                out = self.fs.open(path, "wb")
            with out:
                writer = _Writer(out)
                writer.start()
                try:
                    for data, release in _pieces(source):
                        if writer.error is not None:
                            _release(release)
                            break
                        size += len(data)
                        if size > limit:
                            _release(release)
                            raise TooLarge(limit)
                        digest.update(data)
                        writer.queue.put((data, release))
                        if progress is not None:
                            progress(size)
                finally:
                    writer.queue.put(None)
                    writer.join()
                if writer.error is not None:
                    raise writer.error
        except BaseException:
            self.discard(key)
            raise
        self.bytes_written += size
        return Staged(key=key, sha256=digest.hexdigest(), size=size)

    def commit(self, staged: Staged) -> tuple[str, bool]:
        """Move a staged object under its hash; return (key, whether it was new)."""
        key = object_key(staged.sha256)
        final = self.path(key)
        if self.fs.exists(final):
            self.discard(staged.key)
            return key, False
        if self.is_local:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.replace(self.path(staged.key), final)
        else:
            self.fs.mv(self.path(staged.key), final)
        return key, True

    def put_bytes(self, data: bytes) -> tuple[Staged, bool]:
        staged = self.stage([data], max_bytes=len(data))
        _, new = self.commit(staged)
        return staged, new

    def discard(self, key: str) -> None:
        path = self.path(key)
        try:
            if self.fs.exists(path):
                self.fs.rm(path)
        except FileNotFoundError:
            pass

    def staging_objects(self) -> Iterator[tuple[str, datetime]]:
        """Every staging object, with when it was last written."""
        folder = f"{self.root}/staging"
        if self.is_local:
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                return
            for entry in entries:
                key = f"staging/{entry.name}"
                if KEY_RE.match(key) and entry.is_file():
                    yield key, datetime.fromtimestamp(entry.stat().st_mtime, tz=UTC)
            return
        try:
            listing = self.fs.ls(folder, detail=True)
        except FileNotFoundError:
            return
        for info in listing:
            key = f"staging/{info['name'].rstrip('/').rsplit('/', 1)[-1]}"
            modified = info.get("last_modified") or info.get("mtime")
            if not KEY_RE.match(key) or modified is None:
                continue
            if not isinstance(modified, datetime):
                modified = datetime.fromtimestamp(float(modified), tz=UTC)
            elif modified.tzinfo is None:
                modified = modified.replace(tzinfo=UTC)
            yield key, modified

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.path(key)))

    def open(self, key: str) -> IO[bytes]:
        if self.is_local:
            return open(self.path(key), "rb")  # noqa: SIM115
        return self.fs.open(self.path(key), "rb")  # type: ignore[no-any-return]

    def delete(self, key: str) -> None:
        self.discard(key)


def default_store() -> ObjectStore:
    return ObjectStore()
