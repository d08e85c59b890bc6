"""Import throughput (hash + metadata + thumbnail) through the full job system vs a plain pool.

Reference: the same hash/metadata/thumbnail calls in a plain 2-thread pool, no queue,
no catalog. Shoebox: catalogue the folder (hash, ledger rows) while an in-process worker
host with 2 import workers runs the stages through Huey. Both run on the same warm
page cache, alternately, in the same process. Then the unchanged folder is imported
again (a stat walk).

Prints JSON; figures: `ratio` (reference time / Shoebox time, target ≥ 0.85) and
`reimport_fraction` (re-import time / first import time, target ≤ 0.10).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import OUT, cpu_count, emit, warm_page_cache

from engine.importing.formats import sniff_format
from engine.importing.hashing import hash_file
from engine.jobs.host import WorkerHost
from engine.library import Library
from engine.pipeline.metadata import MetadataStage
from engine.pipeline.thumbnail import ThumbnailStage
from engine.pipeline.types import ItemRef, StageContext
from tests.corpus import write_large_jpegs

WORKERS = 2


def reference(files: list[Path], scratch: Path) -> float:
    ctx = StageContext(scratch)
    meta, thumb = MetadataStage(), ThumbnailStage()

    def one(index_path: tuple[int, Path]) -> None:
        index, path = index_path
        digest, head, size = hash_file(path)
        ref = ItemRef(index, digest, "photo", sniff_format(head, size), size, (str(path),))
        meta.run(ref, ctx)
        thumb.run(ref, ctx)

    start = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(one, enumerate(files)))
    return time.perf_counter() - start


def shoebox(folder: Path, library_dir: Path) -> tuple[float, float, int]:
    lib = Library(library_dir)
    lib.settings.workers.import_ = WORKERS
    # The stages the reference runs (metadata, thumbnail): models and OCR off, as before
    # they existed — their costs are benchmarked on their own (embed_cpu, ocr_speed).
    lib.settings.models.embed = lib.settings.models.detect = lib.settings.models.text = ""
    lib.settings.ocr.enabled = False
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        start = time.perf_counter()
        summary = lib.import_paths([folder])
        host.wait_idle()
        first = time.perf_counter() - start
    finally:
        host.stop()
    done = int(lib.catalog.read("SELECT count(*) FROM jobs WHERE state = 'done'")[0][0])
    start = time.perf_counter()
    again = lib.import_paths([folder])
    reimport = time.perf_counter() - start
    assert again.unchanged == summary.files_seen and again.items_new == 0
    lib.close()
    return first, reimport, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    folder = OUT / "jpeg12mp"
    files = write_large_jpegs(folder, args.count)
    sub = OUT / f"jpeg12mp-{args.count}"
    if not sub.exists() or len(list(sub.iterdir())) != args.count:
        shutil.rmtree(sub, ignore_errors=True)
        sub.mkdir(parents=True)
        for path in files[: args.count]:
            (sub / path.name).symlink_to(path.resolve())
    files = sorted(sub.iterdir())
    warm_page_cache(files)

    refs, runs, reimports = [], [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            refs.append(reference(files, Path(tmp)))
        with tempfile.TemporaryDirectory() as tmp:
            first, reimport, done = shoebox(sub, Path(tmp) / "lib")
            assert done == 2 * len(files), done
            runs.append(first)
            reimports.append(reimport)
        print(
            f"round: reference {refs[-1]:.2f}s, shoebox {runs[-1]:.2f}s, "
            f"re-import {reimports[-1]:.3f}s",
            flush=True,
        )
    ref_s, sb_s = min(refs), min(runs)
    emit(
        {
            "benchmark": "import_cpu",
            "files": len(files),
            "megapixels": 12,
            "workers": WORKERS,
            "cpus": cpu_count(),
            "reference_s": round(ref_s, 3),
            "shoebox_s": round(sb_s, 3),
            "files_per_s": round(len(files) / sb_s, 2),
            "ratio": round(ref_s / sb_s, 3),
            "reimport_s": round(min(reimports), 4),
            "reimport_fraction": round(min(reimports) / sb_s, 4),
        }
    )


if __name__ == "__main__":
    main()
