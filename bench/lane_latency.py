"""Lanes under load: the interactive lane starts at once; batch work yields to imports.

An in-process worker host with the default worker settings runs two per-item
stages whose `run` burns CPU in pure Python (~30 ms each, holding the GIL like
real decoding in Python would): thousands of jobs queued in the import lane and
as many in the batch lane, so every pool thread is busy. Every ~200 ms the
benchmark makes one item's job interactive, alternating two ways:
- `fresh`: a new item with a job queued straight in the interactive lane (as the
  GUI does for a file the user opens before its import reached it);
- `prioritize`: `Library.prioritize([item])` on an import job far back in the
  queue (as the GUI does for the items on screen).
The latency of each is from the request's commit to the job's `started_at` in
the ledger (set when a worker claims it).

Then, in the same run: how many batch-lane jobs started while import jobs were
waiting (`batch_started_while_import_waiting`, expected 0: the feeder fills the
shared pool in lane order and import messages overtake batch ones). As a check
that batch work is not simply stuck, the import lane is then paused for a while
and the batch jobs that start meanwhile are counted (`batch_started_import_paused`).

Three kinds of load, in the same run:
- `native` (the headline figures): every pool thread burns CPU in C with the GIL
  released (SHA-256 over a 1 MB buffer), as Shoebox's real stages do: Pillow
  decoding, torch, a tesseract child process. Both cores are saturated.
- `python` (`python_*` figures): the same CPU time spent in pure Python, holding
  the GIL: the worst case, where every statement on the interactive path waits for
  a GIL hand-over (each SQLite call releases and re-takes it).
- `sleep` (`reference_*` figures): stages that wait without using the CPU: the
  host's own latency.

Prints JSON; figures: `interactive_start_p95_ms` (target < 100), p50 and max,
and `batch_started_while_import_waiting` (target ~0).
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import cpu_count, emit, fill_items, fill_jobs, percentile

from engine.jobs.host import WorkerHost
from engine.library import Library
from engine.pipeline.registry import StageRegistry
from engine.pipeline.types import ItemStage, StageOutput
from engine.store.db import next_seq


def burn(n: int) -> int:
    x = 0
    for i in range(n):
        x += i * i % 7
    return x


BUFFER = bytes(range(256)) * 4096  # 1 MB


def burn_native(n: int) -> None:
    for _ in range(n):
        hashlib.sha256(BUFFER).digest()  # releases the GIL while hashing


def calibrate(ms: float) -> int:
    """Loop iterations that take `ms` on this machine, one thread, best of 5."""
    n = 100_000
    best = min(_time(n) for _ in range(5))
    return max(1000, int(n * ms / 1000 / best))


def calibrate_native(ms: float) -> int:
    t = time.perf_counter()
    burn_native(20)
    per = (time.perf_counter() - t) / 20
    return max(1, round(ms / 1000 / per))


def _time(n: int) -> float:
    t = time.perf_counter()
    burn(n)
    return time.perf_counter() - t


class BurnStage(ItemStage):
    reads_original = False
    kinds = frozenset({"photo"})

    def __init__(self, name: str, lane: str, iterations: int, mode: str, sleep_ms: float) -> None:
        self.name, self.version, self.lane = name, "1", lane
        self.iterations, self.mode = iterations, mode
        self.sleep_s = sleep_ms / 1000

    def run(self, item: Any, ctx: Any) -> StageOutput:
        if self.mode == "sleep":
            time.sleep(self.sleep_s)
        elif self.mode == "native":
            burn_native(self.iterations)
        else:
            burn(self.iterations)
        return StageOutput()

    def store(self, conn: Any, item: Any, output: Any, seq: int) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--import-jobs", type=int, default=3000)
    parser.add_argument("--batch-jobs", type=int, default=3000)
    parser.add_argument("--job-ms", type=float, default=30.0, help="CPU per job (one thread)")
    parser.add_argument("--samples", type=int, default=100, help="interactive requests")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between requests")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--paused-s", type=float, default=3.0, help="import lane paused (check)")
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the GIL-free (sleeping) reference run"
    )
    args = parser.parse_args()

    result = run_phase(args, calibrate_native(args.job_ms), mode="native")
    others = [] if args.no_reference else [("python", "python"), ("sleep", "reference")]
    for mode, prefix in others:
        iterations = calibrate(args.job_ms) if mode == "python" else 0
        ref = run_phase(args, iterations, mode=mode)
        for key in (
            "interactive_start_p50_ms",
            "interactive_start_p95_ms",
            "interactive_start_max_ms",
            "batch_started_while_import_waiting",
            "batch_started_import_paused",
            "import_jobs_started",
        ):
            result[f"{prefix}_{key}"] = ref[key]
    result.update(
        {
            "benchmark": "lane_latency",
            "cpus": cpu_count(),
            "job_ms": args.job_ms,
            "target_p95_ms": 100,
        }
    )
    emit(result)


def run_phase(args: argparse.Namespace, iterations: int, *, mode: str) -> dict[str, Any]:
    """One host run under one kind of load (native | python | sleep)."""
    stage_import = BurnStage("burn_import", "import", iterations, mode, args.job_ms)
    stage_batch = BurnStage("burn_batch", "batch", iterations, mode, args.job_ms)
    n_import, n_batch = args.import_jobs, args.batch_jobs
    with tempfile.TemporaryDirectory(prefix="shoebox-lanes-") as tmp:
        lib = Library(Path(tmp) / "lib", registry=StageRegistry([stage_import, stage_batch]))
        workers = lib.settings.workers
        now = time.time()
        with lib.catalog.write() as conn:
            seq = next_seq(conn)
            fill_items(conn, 1, n_import + n_batch, seq, now)
            fill_jobs(conn, "burn_import", range(1, n_import + 1), lane="import", seq=seq, now=now)
            fill_jobs(
                conn,
                "burn_batch",
                range(n_import + 1, n_import + n_batch + 1),
                lane="batch",
                seq=seq,
                now=now,
            )
            conn.executemany(
                "INSERT INTO stage_versions (stage, version) VALUES (?, '1')",
                [("burn_import",), ("burn_batch",)],
            )
        what = f"{mode} ({iterations:,} iterations)"
        print(
            f"{n_import:,} import + {n_batch:,} batch jobs of ~{args.job_ms:g} ms, {what}; "
            f"pool {workers.pool}, interactive {workers.interactive}, "
            f"import ≤{workers.import_}, batch ≤{workers.batch}",
            flush=True,
        )
        host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
        host_t0 = time.time()
        host.start()
        try:
            time.sleep(args.warmup)
            samples = request_interactive(lib, args, n_import, n_import + n_batch + 1)
            deadline = time.monotonic() + 30
            ids = [s[0] for s in samples]
            while time.monotonic() < deadline and not all_started(lib, ids):
                time.sleep(0.05)
            t_pause = time.time()
            lib.pause("import")
            time.sleep(args.paused_s)
            t_end = time.time()
        finally:
            host.stop()
        result = measure(lib, samples, host_t0, t_pause, t_end)
        lib.close()
    result.update(
        {
            "workers_pool": workers.pool,
            "workers_interactive": workers.interactive,
            "workers_import": workers.import_,
            "workers_batch": workers.batch,
        }
    )
    return result


def request_interactive(
    lib: Library, args: argparse.Namespace, n_import: int, next_item: int
) -> list[tuple[int, float, str]]:
    """(job id, request time, kind) for each request, one every `interval` seconds."""
    samples: list[tuple[int, float, str]] = []
    tail = n_import  # prioritize from the back of the import queue: not dispatched yet
    next_tick = time.perf_counter()
    for k in range(args.samples):
        if k % 2 == 0:
            t0 = time.time()
            with lib.catalog.write() as conn:
                seq = next_seq(conn)
                conn.execute(
                    """INSERT INTO items (id, hash, kind, format, size, added_at, seq)
                       VALUES (?, ?, 'photo', 'jpeg', 1000, ?, ?)""",
                    (next_item, f"{next_item:064x}", t0, seq),
                )
                job_id = conn.execute(
                    """INSERT INTO jobs (item_id, stage, version, lane, state, max_attempts,
                                         created_at, seq)
                       VALUES (?, 'burn_import', '1', 'interactive', 'queued', 3, ?, ?)
                       RETURNING id""",
                    (next_item, t0, seq),
                ).fetchone()[0]
            next_item += 1
            # From the commit: the request's own transaction runs in the GUI's process
            # in the app, and here would only measure this thread's GIL wait.
            samples.append((int(job_id), time.time(), "fresh"))
        else:
            moved = lib.prioritize([tail])
            t0 = time.time()
            if moved:
                job_id = lib.catalog.read(
                    "SELECT id FROM jobs WHERE item_id = ? AND stage = 'burn_import'", (tail,)
                )[0][0]
                samples.append((int(job_id), t0, "prioritize"))
            tail -= 1
        next_tick += args.interval
        time.sleep(max(0.0, next_tick - time.perf_counter()))
    return samples


def all_started(lib: Library, job_ids: list[int]) -> bool:
    marks = ",".join("?" * len(job_ids))
    row = lib.catalog.read(
        f"SELECT count(*) FROM jobs WHERE id IN ({marks}) AND started_at IS NULL", tuple(job_ids)
    )
    return int(row[0][0]) == 0


def measure(
    lib: Library,
    samples: list[tuple[int, float, str]],
    host_t0: float,
    t_pause: float,
    t_end: float,
) -> dict[str, Any]:
    started = {
        int(r[0]): r[1]
        for r in lib.catalog.read(
            f"SELECT id, started_at FROM jobs WHERE id IN ({','.join('?' * len(samples))})",
            tuple(s[0] for s in samples),
        )
    }
    lat: dict[str, list[float]] = {"fresh": [], "prioritize": []}
    not_started = 0
    for job_id, t0, kind in samples:
        s = started.get(job_id)
        if s is None:
            not_started += 1
            continue
        lat[kind].append((float(s) - t0) * 1000)
    every = lat["fresh"] + lat["prioritize"]
    # Batch jobs claimed at a moment when some import-lane job had been created and not
    # yet claimed (import work waiting), before the import lane was paused.
    batch_while_waiting = int(
        lib.catalog.read(
            """SELECT count(*) FROM jobs b
               WHERE b.stage = 'burn_batch' AND b.started_at IS NOT NULL AND b.started_at < ?
                 AND EXISTS (SELECT 1 FROM jobs i WHERE i.lane = 'import'
                               AND i.created_at <= b.started_at
                               AND (i.started_at IS NULL OR i.started_at > b.started_at))""",
            (t_pause,),
        )[0][0]
    )

    def count(sql: str, *params: object) -> int:
        return int(lib.catalog.read(sql, params)[0][0])

    batch_paused = count(
        "SELECT count(*) FROM jobs WHERE stage = 'burn_batch' AND started_at >= ?", t_pause
    )
    import_started = count(
        "SELECT count(*) FROM jobs WHERE lane = 'import' AND started_at IS NOT NULL"
    )
    import_waiting = count("SELECT count(*) FROM jobs WHERE lane = 'import' AND state = 'queued'")
    run_s = t_pause - host_t0
    out: dict[str, Any] = {
        "samples": len(every),
        "not_started": not_started,
        "interactive_start_p50_ms": round(percentile(every, 50), 1),
        "interactive_start_p95_ms": round(percentile(every, 95), 1),
        "interactive_start_max_ms": round(max(every, default=float("nan")), 1),
        "run_s_before_pause": round(run_s, 1),
        "import_jobs_started": import_started,
        "import_jobs_waiting_at_end": import_waiting,
        "batch_started_while_import_waiting": batch_while_waiting,
        "batch_started_import_paused": batch_paused,
        "import_paused_s": round(t_end - t_pause, 1),
    }
    for kind, values in lat.items():
        out[f"{kind}_samples"] = len(values)
        out[f"{kind}_p50_ms"] = round(percentile(values, 50), 1)
        out[f"{kind}_p95_ms"] = round(percentile(values, 95), 1)
        out[f"{kind}_max_ms"] = round(max(values, default=float("nan")), 1)
    print(
        f"interactive start: p50 {out['interactive_start_p50_ms']} ms, p95 "
        f"{out['interactive_start_p95_ms']} ms, max {out['interactive_start_max_ms']} ms "
        f"({len(every)} samples); batch started while imports waited: {batch_while_waiting}",
        flush=True,
    )
    return out


if __name__ == "__main__":
    main()
