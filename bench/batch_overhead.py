"""Batched stages through the real job core: a no-op stage with batches of 256.

N items (default 100,000) with one queued job each for a no-op batched stage
(`prepare` / `run_batch` / `store_many` do nothing; batch_size 256) are
bulk-inserted (not timed); an in-process worker host (ledger, Huey, feeder, pool,
prepare pool) runs them. Reference, in the same run: the same host running a
per-item no-op stage over a subset (default 20,000 jobs: per-item costs scale
linearly), in the same lane with the same workers. Rounds alternate
reference / batched; the best round of each is reported.

Prints JSON; figures: `items_per_s` (target ≥ 5,000), `per_item_jobs_per_s` and
`ratio_vs_per_item` (batched items/s ÷ per-item jobs/s).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    cpu_count,
    emit,
    fill_items,
    fill_jobs,
    noop_batch_stage,
    noop_stage,
    run_host_until_idle,
)

from engine.library import Library
from engine.pipeline.registry import StageRegistry
from engine.store.db import next_seq


def one_round(stage: Any, count: int, pool: int) -> dict[str, Any]:
    calls = getattr(stage, "calls", None)
    if calls is not None:
        calls.clear()
    with tempfile.TemporaryDirectory(prefix="shoebox-batch-overhead-") as tmp:
        lib = Library(Path(tmp) / "lib", registry=StageRegistry([stage]))
        if pool:
            lib.settings.workers.pool = pool
        now = time.time()
        with lib.catalog.write() as conn:
            seq = next_seq(conn)
            fill_items(conn, 1, count, seq, now)
            fill_jobs(conn, stage.name, range(1, count + 1), lane=stage.lane, seq=seq, now=now)
            conn.execute(
                "INSERT INTO stage_versions (stage, version) VALUES (?, ?)",
                (stage.name, stage.version),
            )
        elapsed, stats = run_host_until_idle(lib)
        done = int(lib.catalog.read("SELECT count(*) FROM jobs WHERE state = 'done'")[0][0])
        lib.close()
    kind = "batched" if stage.batch_size > 1 else "per-item"
    print(
        f"{kind}: {done:,} jobs in {elapsed:.2f}s = {done / elapsed:,.0f}/s, "
        f"{stats.messages:,} messages",
        flush=True,
    )
    out = {"done": done, "elapsed": elapsed, "rate": done / elapsed, "messages": stats.messages}
    if calls:
        out["mean_batch"] = sum(calls) / len(calls)
        out["full_batches"] = sum(1 for n in calls if n == stage.batch_size) / len(calls)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="items for the batched stage")
    parser.add_argument(
        "--reference-count", type=int, default=20_000, help="jobs for the per-item reference"
    )
    parser.add_argument("--lane", default="batch", choices=("import", "batch"))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--pool", type=int, default=0, help="pool threads (0: the default)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    batched = noop_batch_stage(lane=args.lane, batch_size=args.batch_size)
    per_item = noop_stage(name="noop_per_item", lane=args.lane)
    refs, runs = [], []
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}", flush=True)
        refs.append(one_round(per_item, args.reference_count, args.pool))
        runs.append(one_round(batched, args.count, args.pool))
    best = max(runs, key=lambda x: x["rate"])
    best_ref = max(refs, key=lambda x: x["rate"])
    emit(
        {
            "benchmark": "batch_overhead",
            "cpus": cpu_count(),
            "lane": args.lane,
            "batch_size": args.batch_size,
            "items": args.count,
            "items_done": best["done"],
            "elapsed_s": round(best["elapsed"], 3),
            "items_per_s": round(best["rate"], 1),
            "items_per_s_rounds": [round(x["rate"], 1) for x in runs],
            "messages": best["messages"],
            # What the feeder sends: run_batch calls' mean size, share of full batches.
            "mean_run_batch_size": round(best["mean_batch"], 1),
            "full_batch_fraction": round(best["full_batches"], 3),
            "reference_jobs": args.reference_count,
            "per_item_jobs_per_s": round(best_ref["rate"], 1),
            "per_item_jobs_per_s_rounds": [round(x["rate"], 1) for x in refs],
            "per_item_messages": best_ref["messages"],
            "ratio_vs_per_item": round(best["rate"] / best_ref["rate"], 2),
            "ratio_median": round(
                statistics.median(x["rate"] for x in runs)
                / statistics.median(x["rate"] for x in refs),
                2,
            ),
            "target_items_per_s": 5000,
        }
    )


if __name__ == "__main__":
    main()
