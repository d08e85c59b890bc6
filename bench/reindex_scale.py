"""Re-indexing a 1,000,000-item library after a version bump, with a GUI polling it.

1. A library of N items (default 1,000,000; rows inserted with SQL) whose no-op
   batched stage (batch 256, batch lane) is done at version 1 for every item.
2. The stage is bumped to version 2. The worker host runs as a child process
   (`--role host`: the same registry with version 2, `WorkerHost` until idle), as
   `shoebox work` would: `start()` notices the new version and opens a re-index
   session whose jobs the feeder creates in chunks.
3. A second child process stands in for the GUI (`--role gui`): every 250 ms it
   calls `Library.changes_since(seq)`, `Library.progress()` and
   `Library.sessions()`, timing each poll, until the host is done.

Figures (last line, JSON): `first_result_s` (host start → first version-2 result
committed), `reindex_s` and `items_per_s` (host start → idle), `host_peak_rss_mb`
(< 500), `gui_peak_rss_mb` (< 300), `gui_poll_p99_ms` (< 50), plus the per-call
p99 of the GUI's three reads.

    .venv/bin/python bench/reindex_scale.py                       # the full run
    .venv/bin/python bench/reindex_scale.py --count 100000         # a quick one
    .venv/bin/python bench/reindex_scale.py --max-seconds 60       # stop 60 s after
                                                                   # the first result
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import (
    child_env,
    cpu_count,
    emit,
    fill_items,
    fill_jobs,
    noop_batch_stage,
    percentile,
)

from engine.library import Library
from engine.pipeline.registry import StageRegistry
from engine.store.db import next_seq

STAGE = "noop_batch"
POLL_S = 0.25


def registry(version: str, batch_size: int) -> StageRegistry:
    return StageRegistry([noop_batch_stage(STAGE, version, "batch", batch_size)])


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the library ---------------------------------------------------------------------------


def build(lib_dir: Path, count: int, batch_size: int) -> float:
    """`count` items, each with its no-op job done at version 1. Returns seconds."""
    start = time.perf_counter()
    lib = Library(lib_dir, registry=registry("1", batch_size))
    now = time.time() - 3600  # finished an hour ago: outside every rate window
    chunk = 250_000
    with lib.catalog.write() as conn:
        seq = next_seq(conn)
        for first in range(1, count + 1, chunk):
            n = min(chunk, count + 1 - first)
            fill_items(conn, first, n, seq, now)
        for first in range(1, count + 1, chunk):
            n = min(chunk, count + 1 - first)
            fill_jobs(
                conn, STAGE, range(first, first + n), lane="batch", seq=seq, now=now, state="done"
            )
        conn.execute("INSERT INTO stage_versions (stage, version) VALUES (?, '1')", (STAGE,))
    lib.catalog.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    lib.close()
    return time.perf_counter() - start


# -- child: the worker host ----------------------------------------------------------------


def host_main(args: argparse.Namespace) -> None:
    from engine.jobs.host import WorkerHost

    lib = Library(args.library, registry=registry("2", args.batch_size))
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    t0_wall = time.time()
    t0 = time.perf_counter()
    host.start()
    started_s = time.perf_counter() - t0
    first_result_s = None
    conn = lib.catalog.conn
    deadline = None
    limited = False
    while True:
        if first_result_s is None:
            # Read through the jobs_finished index: only rows finished since t0.
            row = conn.execute(
                """SELECT 1 FROM jobs WHERE finished_at >= ? AND result_version = '2'
                   AND stage = ? LIMIT 1""",
                (t0_wall, STAGE),
            ).fetchone()
            if row is not None:
                first_result_s = time.perf_counter() - t0
                print(f"host: first result after {first_result_s:.3f}s", flush=True)
                if args.max_seconds:
                    deadline = time.perf_counter() + args.max_seconds
            time.sleep(0.005)
            continue
        if not lib.has_pending_work():
            break
        if deadline is not None and time.perf_counter() > deadline:
            limited = True
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - t0
    done = host.stats.done
    host.stop()
    sessions = conn.execute(
        "SELECT id, state, planned, cursor FROM sessions WHERE kind = 'reindex'"
    ).fetchall()
    lib.close()
    print(
        json.dumps(
            {
                "host_start_s": round(started_s, 3),
                "first_result_s": round(first_result_s or float("nan"), 3),
                "elapsed_s": round(elapsed, 2),
                "done": done,
                "stopped_early": limited,
                "messages": host.stats.messages,
                "reindex_sessions": [list(r) for r in sessions],
                "peak_rss_mb": round(rss_mb(), 1),
            }
        ),
        flush=True,
    )


# -- child: the GUI's polls ----------------------------------------------------------------


def gui_main(args: argparse.Namespace) -> None:
    lib = Library(args.library)
    stop_file = Path(args.stop_file)
    seq = lib.seq()
    polls: list[float] = []
    calls: dict[str, list[float]] = {"changes_since": [], "progress": [], "sessions": []}
    overflows = 0
    print("gui: ready", flush=True)
    next_tick = time.perf_counter()
    while not stop_file.exists():
        t = time.perf_counter()
        changes = lib.changes_since(seq)
        t1 = time.perf_counter()
        seq = changes.seq
        overflows += int(changes.overflow)
        lib.progress()
        t2 = time.perf_counter()
        lib.sessions()
        t3 = time.perf_counter()
        polls.append((t3 - t) * 1000)
        calls["changes_since"].append((t1 - t) * 1000)
        calls["progress"].append((t2 - t1) * 1000)
        calls["sessions"].append((t3 - t2) * 1000)
        next_tick += POLL_S
        time.sleep(max(0.0, next_tick - time.perf_counter()))
        next_tick = max(next_tick, time.perf_counter())
    lib.close()
    out: dict[str, Any] = {
        "polls": len(polls),
        "poll_p50_ms": round(percentile(polls, 50), 2),
        "poll_p99_ms": round(percentile(polls, 99), 2),
        "poll_max_ms": round(max(polls, default=float("nan")), 2),
        "overflows": overflows,
        "peak_rss_mb": round(rss_mb(), 1),
    }
    for name, values in calls.items():
        out[f"{name}_p99_ms"] = round(percentile(values, 99), 2)
    print(json.dumps(out), flush=True)


# -- the parent ------------------------------------------------------------------------------


def last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)  # type: ignore[no-any-return]
    raise RuntimeError(f"no JSON line in the child's output:\n{text[-2000:]}")


def child(role: str, args: argparse.Namespace, lib_dir: Path, *extra: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--role",
        role,
        "--library",
        str(lib_dir),
        "--batch-size",
        str(args.batch_size),
        *extra,
    ]
    return subprocess.Popen(
        cmd, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def parent_main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="shoebox-reindex-") as tmp:
        lib_dir = Path(tmp) / "lib"
        fill_s = build(lib_dir, args.count, args.batch_size)
        print(
            f"library: {args.count:,} items, jobs done at version 1, in {fill_s:.1f}s", flush=True
        )
        size_mb = (lib_dir / "catalog.db").stat().st_size / 2**20
        stop_file = Path(tmp) / "stop-gui"
        gui = child("gui", args, lib_dir, "--stop-file", str(stop_file))
        assert gui.stdout is not None
        ready = gui.stdout.readline()
        if "ready" not in ready:
            raise RuntimeError(f"the GUI child did not start: {ready}{gui.stdout.read()}")
        gui_lines: list[str] = []
        reader = threading.Thread(target=lambda: gui_lines.extend(gui.stdout or []), daemon=True)
        reader.start()
        extra = ["--max-seconds", str(args.max_seconds)] if args.max_seconds else []
        t = time.perf_counter()
        host = child("host", args, lib_dir, *extra)
        assert host.stdout is not None
        host_lines = []
        for line in host.stdout:
            host_lines.append(line)
            if not line.startswith("{"):
                print(line.rstrip(), flush=True)
        host.wait()
        host_wall_s = time.perf_counter() - t
        stop_file.write_text("stop")
        gui.wait(timeout=120)
        reader.join(timeout=10)
        if host.returncode != 0:
            raise RuntimeError("the host child failed:\n" + "".join(host_lines)[-4000:])
        h = last_json("".join(host_lines))
        g = last_json("".join(gui_lines))
        lib = Library(lib_dir)
        reindexed = int(
            lib.catalog.read(
                "SELECT count(*) FROM jobs WHERE stage = ? AND result_version = '2'", (STAGE,)
            )[0][0]
        )
        lib.close()

    print(f"host: {h}", flush=True)
    print(f"gui: {g}", flush=True)
    steady_s = h["elapsed_s"] - h["first_result_s"]
    emit(
        {
            "benchmark": "reindex_scale",
            "cpus": cpu_count(),
            "items": args.count,
            "batch_size": args.batch_size,
            "fill_s": round(fill_s, 1),
            "catalog_mb": round(size_mb, 1),
            "host_start_s": h["host_start_s"],
            "first_result_s": h["first_result_s"],
            "reindex_s": h["elapsed_s"],
            "host_process_wall_s": round(host_wall_s, 2),
            "stopped_early": h["stopped_early"],
            "items_reindexed": reindexed,
            "items_per_s": round(reindexed / h["elapsed_s"], 1),
            "steady_items_per_s": round(reindexed / steady_s, 1) if steady_s > 0 else None,
            "host_messages": h["messages"],
            "host_peak_rss_mb": h["peak_rss_mb"],
            "gui_peak_rss_mb": g["peak_rss_mb"],
            "gui_polls": g["polls"],
            "gui_poll_p50_ms": g["poll_p50_ms"],
            "gui_poll_p99_ms": g["poll_p99_ms"],
            "gui_poll_max_ms": g["poll_max_ms"],
            "gui_changes_since_p99_ms": g["changes_since_p99_ms"],
            "gui_progress_p99_ms": g["progress_p99_ms"],
            "gui_sessions_p99_ms": g["sessions_p99_ms"],
            "gui_overflows": g["overflows"],
            "reindex_sessions": h["reindex_sessions"],
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="items in the library")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=0,
        help="stop this long after the first result and report the rate so far (0: finish)",
    )
    parser.add_argument("--role", choices=("host", "gui"), help=argparse.SUPPRESS)
    parser.add_argument("--library", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stop-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "host":
        host_main(args)
    elif args.role == "gui":
        gui_main(args)
    else:
        parent_main(args)


if __name__ == "__main__":
    main()
