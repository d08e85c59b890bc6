"""Scale-out through Redis: 1 worker process against 2, and the dispatch overhead.

A library's owner (a worker host in this process, queue on a private redis-server)
hands a CPU-bound stage (`crunch`: SHA-256 rounds, tests/engine/remote_stages.py) to
worker processes (`shoebox --broker URL worker`). Measured in the same run:

- `t1_s`, `t2_s`: wall time for N items with 1 and then 2 worker processes (one slot
  each), from the jobs' creation to the last result in the catalog;
  `speedup_2 = t1_s / t2_s`;
- `overhead_ms_per_job`: the same N items with a stage that does nothing (0 rounds),
  through 1 remote worker, minus the same on the embedded queue with no workers, per
  job: what signing, the broker round trips and the owner's ingest cost.

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, emit

sys.path.insert(0, str(REPO))

from engine.jobs.host import WorkerHost
from engine.remote import enrol
from tests.engine.jobstages import add_items, library_with, states
from tests.engine.remote_stages import Crunch
from tests.redis_server import RedisServer


def worker_procs(url: str, tokens: list[str], rounds: int) -> list[subprocess.Popen[bytes]]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(REPO),
        SHOEBOX_EXTRA_STAGES="tests.engine.remote_stages:stages",
        SHOEBOX_CRUNCH_ROUNDS=str(rounds),
    )
    cmd = [sys.executable, "-m", "engine.cli", "--broker", url, "worker", "--workers", "1"]
    return [
        subprocess.Popen(
            [*cmd, "--token", token],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for token in tokens
    ]


def run(folder: Path, url: str, n: int, workers: int, rounds: int) -> float:
    """Seconds for `n` crunch jobs with `workers` remote worker processes (0: local)."""
    if url:
        os.environ["SHOEBOX_BROKER"] = url
    else:
        os.environ.pop("SHOEBOX_BROKER", None)
    lib = library_with(folder, Crunch(rounds=rounds))
    lib.settings.workers.pool = 1
    tokens = []
    for i in range(workers):
        with lib.catalog.write() as conn:
            tokens.append(enrol.add_worker(conn, f"w{i}").encode())
    procs = worker_procs(url, tokens, rounds) if workers else []
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    try:
        host.start()
        if workers:
            deadline = time.monotonic() + 60
            while host.remote.live_slots(time.time()) < workers:
                if time.monotonic() > deadline:
                    raise SystemExit("the workers did not come up")
                time.sleep(0.02)
        started = time.monotonic()
        add_items(lib, n)
        host.wait_idle(timeout=900)
        seconds = time.monotonic() - started
    finally:
        host.stop()
        for proc in procs:
            proc.terminate()
            proc.wait(30)
        lib.close()
    if states(library_with(folder, Crunch())) != {"done": n}:
        raise SystemExit("not every job finished")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=160)
    parser.add_argument("--rounds", type=int, default=150_000, help="SHA-256 rounds per item")
    parser.add_argument("--light-items", type=int, default=300)
    args = parser.parse_args()
    server = RedisServer()
    server.start()
    tmp = Path(tempfile.mkdtemp(prefix="shoebox-scaleout-"))
    try:
        t1 = run(tmp / "one", server.url, args.items, 1, args.rounds)
        print(f"1 worker: {t1:.2f} s", file=sys.stderr)
        t2 = run(tmp / "two", server.url, args.items, 2, args.rounds)
        print(f"2 workers: {t2:.2f} s", file=sys.stderr)
        remote = run(tmp / "light-remote", server.url, args.light_items, 1, 0)
        local = run(tmp / "light-local", "", args.light_items, 0, 0)
        print(f"no-op jobs: remote {remote:.2f} s, local {local:.2f} s", file=sys.stderr)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(server.folder, ignore_errors=True)
    emit(
        {
            "bench": "scaleout",
            "items": args.items,
            "rounds": args.rounds,
            "cpus": os.cpu_count(),
            "t1_s": round(t1, 2),
            "t2_s": round(t2, 2),
            "speedup_2": round(t1 / t2, 3),
            "light_items": args.light_items,
            "remote_light_s": round(remote, 2),
            "local_light_s": round(local, 2),
            "overhead_ms_per_job": round((remote - local) / args.light_items * 1000, 2),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
