"""Importing a tree of 100,000 tiny files: memory and broker size stay bounded.

Catalogues the tree while an in-process worker host processes it (as the app
does), sampling this process's RSS and the number of messages in Huey across all
lanes. Reference for the memory figure: the RSS of the same process after start-up,
before the import.

Prints JSON; figures: `peak_rss_mb` (target < 500) and `max_queue_messages`
(bounded by workers × queue_depth_per_worker per lane, independent of the file count).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import psutil
from _common import OUT, emit, peak_rss_mb

from engine.jobs.host import WorkerHost
from engine.library import Library
from tests.corpus import write_tiny_tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--no-process", action="store_true", help="catalogue only")
    args = parser.parse_args()

    tree = OUT / f"tiny-{args.count}"
    marker = tree / ".complete"
    if not marker.exists():
        write_tiny_tree(tree, args.count)
        marker.write_text("ok")

    proc = psutil.Process()
    baseline_mb = proc.memory_info().rss / 2**20
    with tempfile.TemporaryDirectory() as tmp:
        lib = Library(Path(tmp) / "lib")
        host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
        bound = sum(
            max(1, lib.settings.workers.for_lane(lane)) * lib.settings.queue_depth_per_worker
            for lane in ("interactive", "import", "batch", "learning")
        )
        max_messages = 0
        rss_samples: list[float] = []
        stop = threading.Event()

        def sample() -> None:
            nonlocal max_messages
            while not stop.wait(0.2):
                rss_samples.append(proc.memory_info().rss / 2**20)
                if not args.no_process:
                    max_messages = max(max_messages, sum(host.queue_messages().values()))

        sampler = threading.Thread(target=sample, daemon=True)
        if not args.no_process:
            host.start()
        sampler.start()
        start = time.perf_counter()
        summary = lib.import_paths([tree])
        catalogued_s = time.perf_counter() - start
        print(f"catalogued {summary.files_seen} files in {catalogued_s:.1f}s", flush=True)
        if not args.no_process:
            host.wait_idle()
            host.stop()
            max_messages = max(max_messages, host.stats.max_queue_messages)
        total_s = time.perf_counter() - start
        stop.set()
        sampler.join()
        done = int(lib.catalog.read("SELECT count(*) FROM jobs WHERE state = 'done'")[0][0])
        lib.close()

    emit(
        {
            "benchmark": "import_scale",
            "files": summary.files_seen,
            "items_new": summary.items_new,
            "jobs_done": done,
            "catalogue_s": round(catalogued_s, 2),
            "catalogue_files_per_s": round(summary.files_seen / catalogued_s, 1),
            "total_s": round(total_s, 2),
            "baseline_rss_mb": round(baseline_mb, 1),
            "peak_rss_mb": round(max(peak_rss_mb(), *rss_samples, 0.0), 1),
            "max_queue_messages": max_messages,
            "queue_bound": bound,
        }
    )


if __name__ == "__main__":
    main()
