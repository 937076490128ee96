"""Re-upload of identical content: no new bytes written.

Runs the real upload service (embedded SQLite in a temporary folder, Celery
tasks in eager mode): uploads a CSV (100 MiB by default) as version 1, then
uploads the same bytes again. Reports, for the re-upload, the bytes this
process handed to write() (``wchar`` in /proc/self/io, which includes
SQLite's own writes), the growth of the object store and the time taken.

    .venv/bin/python bench/datasets_reupload.py [--size-mb 100]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("no wchar in /proc/self/io")


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def make_csv(path: Path, size_mb: int) -> None:
    row = b"".join(f"{i},{i % 97},plan-{i % 5},{i * 0.5}\n".encode() for i in range(10_000))
    with path.open("wb") as f:
        f.write(b"id,age,plan,fee\n")
        while f.tell() < size_mb * 1024 * 1024:
            f.write(row)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=100)
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="bench-reupload-"))
    sys.path.insert(0, str(ROOT))
    os.environ["STAGEGATE_VAR_DIR"] = str(var)
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("DJANGO_DEBUG", "true")
    try:
        import django

        django.setup()
        from django.core.files.uploadedfile import UploadedFile
        from django.core.management import call_command

        from accounts.models import User
        from datasets.models import Ingestion
        from datasets.services import snapshot_upload, source_create
        from portal.celery import app
        from projects.services import project_create

        app.conf.task_always_eager = True
        call_command("migrate", verbosity=0, stdout=io.StringIO())
        user = User.objects.create_user("bench")
        project = project_create(actor=user, name="Bench", slug="bench")
        source = source_create(actor=user, project=project, name="Big", kind="upload")
        data = var / "data.csv"
        make_csv(data, args.size_mb)
        size = data.stat().st_size
        storage = var / "storage"

        def upload() -> tuple[Ingestion, float, int, int]:
            before_w, before_s = wchar(), tree_bytes(storage) if storage.exists() else 0
            start = time.perf_counter()
            with data.open("rb") as f:
                ingestion = snapshot_upload(
                    actor=user, source=source, upload=UploadedFile(f, name="data.csv", size=size)
                )
            elapsed = time.perf_counter() - start
            ingestion.refresh_from_db()
            return ingestion, elapsed, wchar() - before_w, tree_bytes(storage) - before_s

        first, t1, w1, s1 = upload()
        second, t2, w2, s2 = upload()
        print(f"file: {size / 2**20:.1f} MiB CSV")
        print(
            f"first upload : {first.status}, v{first.snapshot.version if first.snapshot else '-'}, "
            f"{t1:.2f} s (with parsing, validation and profile), "
            f"write() bytes {w1 / 2**20:.1f} MiB, store grew {s1 / 2**20:.1f} MiB"
        )
        print(
            f"re-upload    : {second.status}, {t2:.2f} s, write() bytes {w2 / 1024:.1f} KiB "
            f"(SQLite rows and audit), store grew {s2} bytes"
        )
    finally:
        shutil.rmtree(var, ignore_errors=True)


if __name__ == "__main__":
    main()
