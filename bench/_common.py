"""Shared bits for benchmarks: repo on sys.path, data cache folder, JSON output."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "out"


def emit(result: dict[str, Any]) -> None:
    """The last line of every benchmark's output is one JSON object."""
    print(json.dumps(result, sort_keys=True), flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def warm_page_cache(paths: list[Path]) -> None:
    """Read every file once so both sides of a comparison start with the same cache."""
    for path in paths:
        with open(path, "rb") as fh:
            while fh.read(1 << 20):
                pass


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# -- job-core benchmarks: synthetic stages and bulk-filled ledgers --------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def noop_stage(name: str = "noop", version: str = "1", lane: str = "import") -> Any:
    """A per-item stage that does nothing and stores nothing: the job core's own cost."""
    from engine.pipeline.types import ItemStage, StageOutput

    class NoopStage(ItemStage):
        reads_original = False
        kinds = frozenset({"photo"})

        def run(self, item: Any, ctx: Any) -> StageOutput:
            return StageOutput()

        def store(self, conn: Any, item: Any, output: Any, seq: int) -> None:
            pass

    stage = NoopStage()
    stage.name, stage.version, stage.lane = name, version, lane
    return stage


def noop_batch_stage(
    name: str = "noop_batch", version: str = "1", lane: str = "batch", batch_size: int = 256
) -> Any:
    """A batched stage (prepare / run_batch / store_many) that does nothing."""
    from engine.pipeline.types import StageOutput

    class NoopBatchStage:
        kinds = frozenset({"photo"})
        requires: tuple[str, ...] = ()
        reads_original = False
        timeout_s = None

        def __init__(self) -> None:
            self.name, self.version, self.lane = name, version, lane
            self.batch_size = batch_size
            self.calls: list[int] = []  # size of each run_batch call

        def prepare(self, item: Any, ctx: Any) -> Any:
            return item

        def run_batch(self, inputs: Any, ctx: Any) -> list[Any]:
            self.calls.append(len(inputs))
            return [StageOutput() for _ in inputs]

        def store_many(self, conn: Any, results: Any, seq: int) -> None:
            pass

    return NoopBatchStage()


def fill_items(conn: Any, first_id: int, count: int, seq: int, now: float) -> None:
    """`count` photo items with ids first_id.. (no paths: synthetic stages read no file).
    Inside the caller's write transaction."""
    conn.executemany(
        """INSERT INTO items (id, hash, kind, format, size, added_at, seq)
           VALUES (?, ?, 'photo', 'jpeg', 1000, ?, ?)""",
        ((i, f"{i:064x}", now, seq) for i in range(first_id, first_id + count)),
    )


def fill_jobs(
    conn: Any,
    stage: str,
    item_ids: range,
    *,
    lane: str,
    seq: int,
    now: float,
    state: str = "queued",
    version: str = "1",
    session_id: int | None = None,
    max_attempts: int = 3,
) -> None:
    """One job per item for `stage`, inserted with the job_counts trigger suspended and
    job_counts brought up to date by hand (as the trigger would). `done` jobs get their
    result_version and finished_at. Inside the caller's write transaction."""
    from engine.store.db import suspended_trigger

    done = state == "done"
    with suspended_trigger(conn, "jobs_count_insert"):
        conn.executemany(
            """INSERT INTO jobs (item_id, stage, version, result_version, lane, session_id,
                                 state, attempts, max_attempts, created_at, started_at,
                                 finished_at, seq)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                (
                    i,
                    stage,
                    version,
                    version if done else None,
                    lane,
                    session_id,
                    state,
                    1 if done else 0,
                    max_attempts,
                    now,
                    now if done else None,
                    now if done else None,
                    seq,
                )
                for i in item_ids
            ),
        )
    conn.execute(
        """INSERT INTO job_counts (lane, stage, state, session_id, n) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (lane, stage, state, session_id) DO UPDATE SET n = n + excluded.n""",
        (lane, stage, state, session_id or 0, len(item_ids)),
    )


def child_env() -> dict[str, str]:
    """Environment for a benchmark's child process: the repo importable, no fault hooks."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    for name in [k for k in env if k.startswith("SHOEBOX_FAULT_")]:
        env.pop(name)
    return env


def run_host_until_idle(lib: Any, timeout: float = 3600.0) -> tuple[float, Any]:
    """An in-process worker host from start to idle: (seconds, host.stats). The clock
    runs from `start()` (recovery, version sync, Huey start-up included) until the
    ledger has nothing pending; stopping the host is not counted."""
    from engine.jobs.host import WorkerHost

    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    start = time.perf_counter()
    host.start()
    try:
        host.wait_idle(timeout=timeout)
        elapsed = time.perf_counter() - start
    finally:
        host.stop()
    return elapsed, host.stats
