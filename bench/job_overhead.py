"""The job core's own cost per job: a per-item stage that does nothing.

N jobs of a no-op per-item stage (default 20,000, import lane) are bulk-inserted
into the ledger (not timed); then an in-process worker host (real ledger, Huey,
feeder, pool threads) runs them all. The clock runs from `host.start()` until the
ledger is idle; the figure is that time divided by the number of jobs.

Each job still costs a claim and a finish in the ledger (one commit per job: the
finish of one and the claim of the next share a transaction); Huey carries runs of
jobs, so the message count shows the grouping.

Prints JSON; figures: `ms_per_job` (target ≤ 0.5), `jobs_per_s`, `messages` and
`jobs_per_message`. Rounds (default 3) each use a fresh library; the best round is
the figure (the machine is shared), the median is reported beside it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import cpu_count, emit, fill_items, fill_jobs, noop_stage, run_host_until_idle

from engine.library import Library
from engine.pipeline.registry import StageRegistry
from engine.store.db import next_seq


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000, help="jobs to run")
    parser.add_argument("--lane", default="import", choices=("import", "batch"))
    parser.add_argument("--pool", type=int, default=0, help="pool threads (0: the default)")
    parser.add_argument("--rounds", type=int, default=3, help="best round is the figure")
    args = parser.parse_args()

    stage = noop_stage(lane=args.lane)
    rounds = [one_round(stage, args) for _ in range(args.rounds)]
    best = min(rounds, key=lambda r: r["elapsed"])
    ms = [r["elapsed"] / max(r["done"], 1) * 1000 for r in rounds]
    emit(
        {
            "benchmark": "job_overhead",
            "cpus": cpu_count(),
            "lane": args.lane,
            "pool_threads": best["pool"],
            "lane_workers": best["lane_workers"],
            "jobs": args.count,
            "jobs_done": best["done"],
            "fill_s": round(best["fill_s"], 2),
            "elapsed_s": round(best["elapsed"], 3),
            "ms_per_job": round(min(ms), 4),
            "ms_per_job_median": round(statistics.median(ms), 4),
            "ms_per_job_rounds": [round(x, 4) for x in ms],
            "jobs_per_s": round(best["done"] / best["elapsed"], 1),
            "messages": best["messages"],
            "jobs_per_message": round(best["done"] / max(best["messages"], 1), 1),
            "target_ms_per_job": 0.5,
        }
    )


def one_round(stage: Any, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="shoebox-job-overhead-") as tmp:
        lib = Library(Path(tmp) / "lib", registry=StageRegistry([stage]))
        if args.pool:
            lib.settings.workers.pool = args.pool
        t = time.perf_counter()
        now = time.time()
        with lib.catalog.write() as conn:
            seq = next_seq(conn)
            fill_items(conn, 1, args.count, seq, now)
            fill_jobs(conn, stage.name, range(1, args.count + 1), lane=args.lane, seq=seq, now=now)
            conn.execute(
                "INSERT INTO stage_versions (stage, version) VALUES (?, ?)",
                (stage.name, stage.version),
            )
        fill_s = time.perf_counter() - t
        elapsed, stats = run_host_until_idle(lib)
        done = int(lib.catalog.read("SELECT count(*) FROM jobs WHERE state = 'done'")[0][0])
        workers = lib.settings.workers
        lib.close()
    print(
        f"{done:,} jobs in {elapsed:.2f}s: {elapsed / done * 1000:.3f} ms/job, "
        f"{stats.messages:,} messages (fill {fill_s:.1f}s, not timed)",
        flush=True,
    )
    return {
        "done": done,
        "elapsed": elapsed,
        "fill_s": fill_s,
        "messages": stats.messages,
        "pool": workers.pool,
        "lane_workers": workers.for_lane(args.lane),
    }


if __name__ == "__main__":
    main()
