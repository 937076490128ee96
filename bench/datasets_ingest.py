"""Ingest a large file into the content-addressed store vs a bare sha256 pass.

Writes a test file (1 GiB by default) in a temporary folder, then, in the same
run and alternating, times (a) a bare Python ``hashlib.sha256`` pass over the
file and (b) ``ObjectStore.stage`` + ``commit``: one pass that hashes while it
writes the object under ``objects/sha256/..``. Each ingest runs in a fresh
child process so that its peak RSS can be read; peak memory is reported for
two file sizes to show it does not grow with the file.

    .venv/bin/python bench/datasets_ingest.py [--size-mb 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 8 * 1024 * 1024


def setup_django(var_dir: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("DJANGO_DEBUG", "true")
    os.environ["STAGEGATE_VAR_DIR"] = var_dir
    import django

    django.setup()


def make_file(path: Path, size_mb: int) -> None:
    block = os.urandom(64 * 1024 * 1024)
    with path.open("wb") as f:
        written = 0
        while written < size_mb * 1024 * 1024:
            part = block[: size_mb * 1024 * 1024 - written]
            f.write(part)
            written += len(part)


def bare_hash(path: Path) -> tuple[float, str]:
    start = time.perf_counter()
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
    return time.perf_counter() - start, digest.hexdigest()


def child_ingest(path: str, store_dir: str) -> None:
    """Run in a child: ingest one file, print timing and peak RSS as JSON."""
    setup_django(tempfile.mkdtemp(prefix="bench-var-"))
    from datasets.storage import ObjectStore

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    store = ObjectStore(f"file://{store_dir}", {})
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        staged = store.stage(f, max_bytes=1 << 62)
    key, new = store.commit(staged)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "sha256": staged.sha256,
                "new": new,
                "peak_rss_kb": peak,
                "baseline_rss_kb": baseline,
            }
        )
    )


def run_child(path: Path, store_dir: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(path), str(store_dir)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=2)
    parser.add_argument(
        "--store-parent",
        default=None,
        help="folder for the object store (default: next to the file, same disk)",
    )
    args = parser.parse_args()
    if args.child:
        child_ingest(*args.child)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        data = work / "data.bin"
        make_file(data, args.size_mb)
        small = work / "small.bin"
        make_file(small, max(args.size_mb // 8, 16))
        # Warm up both contenders once, untimed: the file into the page cache,
        # and one ingest (the kernel's first 1 GiB of fresh page cache for
        # writes costs several times what later ones do on this VM).
        bare_hash(data)
        warm = Path(tempfile.mkdtemp(prefix="bench-store-", dir=args.store_parent or work))
        run_child(data, warm)
        shutil.rmtree(warm)
        hashes, ingests, rss = [], [], []
        for _ in range(args.runs):
            seconds, bare_digest = bare_hash(data)
            hashes.append(seconds)
            store = Path(tempfile.mkdtemp(prefix="bench-store-", dir=args.store_parent or work))
            result = run_child(data, store)
            assert result["sha256"] == bare_digest and result["new"]
            ingests.append(result["seconds"])
            rss.append(result["peak_rss_kb"])
            shutil.rmtree(store)
        small_result = run_child(small, work / "store-small")
        mb = args.size_mb
        h, i = statistics.median(hashes), statistics.median(ingests)
        print(
            f"file: {mb} MiB, runs: {args.runs} (median), store under {args.store_parent or work}"
        )
        print(f"bare hashlib.sha256 pass: {h:.3f} s ({mb / 1024 / h:.2f} GiB/s)")
        print(f"ingest (hash + store):    {i:.3f} s ({mb / 1024 / i:.2f} GiB/s)")
        ratios = [b / a for a, b in zip(hashes, ingests, strict=True)]
        print(f"ratio ingest / bare hash: {i / h:.2f}x of the medians (target <= 1.5x)")
        print(f"per-run ratios: {', '.join(f'{r:.2f}' for r in ratios)}")
        print(
            f"peak RSS of the ingest process: {max(rss) / 1024:.0f} MiB for {mb} MiB, "
            f"{small_result['peak_rss_kb'] / 1024:.0f} MiB for {max(mb // 8, 16)} MiB "
            f"(Django loaded before the ingest: {small_result['baseline_rss_kb'] / 1024:.0f} MiB)"
        )
        if shutil.which("sha256sum"):
            start = time.perf_counter()
            subprocess.run(["sha256sum", str(data)], check=True, capture_output=True)
            print(f"sha256sum, for reference: {time.perf_counter() - start:.3f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
