"""Faults injected into the worker host, seeded and repeatable; after recovery the
invariants of `harness.Harness.check` hold (nothing lost, nothing doubled, the
catalog intact, everything reported done still there, originals untouched).

The fast slice (a few seeds) runs in `make test`; `make reliability` runs every
seed (`-m reliability`). SHOEBOX_TEST_SEED=<n> replays one seed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.reliability.harness import Harness, seeds

FAST_SEEDS = (1, 2)
FULL_SEEDS = tuple(range(100, 120))  # 20 seeded runs in the full suite
N_FILES = 40  # 80 jobs (metadata, thumbnail): more than the kills can reach


def _kill_runs(h: Harness, env: dict[str, str], kills: int, what: str) -> list[object]:
    """Run hosts that die by the fault in `env`; a snapshot after each death."""
    snaps: list[object] = []
    for k in range(kills):
        proc = h.work(env)
        assert proc.returncode in (0, -signal.SIGKILL), (
            f"{what} run {k}: exit {proc.returncode}: {proc.stderr[-2000:]} {h.tag}"
        )
        snaps.append(h.snapshot())
        if proc.returncode == 0:
            break  # the queue ran out before the kill point
    return snaps


def _random_kills(tmp_path: Path, seed: int) -> None:
    h = Harness(tmp_path, seed)
    distinct = h.build_source(N_FILES)
    h.import_source()
    total = h.total_jobs()
    plan = [h.rng.randint(3, 16) for _ in range(3)]
    assert sum(plan) < total, h.tag
    snaps = []
    for n in plan:
        snaps += _kill_runs(h, h.env(SHOEBOX_FAULT_KILL_AT_JOB=str(n)), 1, f"kill at job {n}")
    assert h.kills >= 1, f"no host died: plan {plan} {h.tag}"
    stats = h.work_clean()
    assert any(stats["recovered"].values()), f"the last kill left nothing to recover {h.tag}"
    h.next_start_clean()
    check = h.check(distinct, snaps)
    h.record("sigkill_host", check, faults=h.kills, plan=plan)
    h.assert_ok(check)


@pytest.mark.parametrize("seed", seeds(FAST_SEEDS))
def test_sigkill_at_random_jobs(tmp_path: Path, seed: int) -> None:
    _random_kills(tmp_path, seed)


@pytest.mark.reliability
@pytest.mark.parametrize("seed", seeds(FULL_SEEDS))
def test_sigkill_at_random_jobs_full(tmp_path: Path, seed: int) -> None:
    _random_kills(tmp_path, seed)


def _store_kill(tmp_path: Path, seed: int, point: str) -> None:
    """SIGKILL inside the n-th finishing transaction (everything written, not committed)
    or right after its commit: the next start is clean, nothing reported done is lost."""
    h = Harness(tmp_path, seed)
    distinct = h.build_source(N_FILES // 2)
    h.import_source()
    snaps = []
    for _ in range(2):
        n = h.rng.randint(2, 10)
        env = h.env(SHOEBOX_FAULT_KILL_IN_STORE=str(n), SHOEBOX_FAULT_KILL_IN_STORE_AT=point)
        before_done = h.count("state = 'done'")
        proc = h.work(env)
        assert proc.returncode == -signal.SIGKILL, f"{point} {n}: exit {proc.returncode} {h.tag}"
        snaps.append(h.snapshot())
        done = h.count("state = 'done'") - before_done
        # Before commit: the killed transaction's job is not done; after: it is.
        assert done >= n - 1, f"{point} {n}: only {done} jobs done {h.tag}"
        if point == "before_commit":  # the killed transaction's own job is still running
            assert h.count("state = 'running'") >= 1, f"{point}: nothing was running {h.tag}"
        # after_commit: that job is done; whether another was running is timing
    h.work_clean()
    h.next_start_clean()
    check = h.check(distinct, snaps)
    h.record(f"sigkill_store_{point}", check, faults=h.kills)
    h.assert_ok(check)


@pytest.mark.parametrize("point", ["before_commit", "after_commit"])
def test_sigkill_during_catalog_write(tmp_path: Path, point: str) -> None:
    _store_kill(tmp_path, seeds((7,))[0], point)


@pytest.mark.reliability
@pytest.mark.parametrize("point", ["before_commit", "after_commit"])
@pytest.mark.parametrize("seed", seeds(range(200, 205)))
def test_sigkill_during_catalog_write_full(tmp_path: Path, point: str, seed: int) -> None:
    _store_kill(tmp_path, seed, point)


def test_second_host_is_refused_and_nothing_is_lost(tmp_path: Path) -> None:
    """A second `shoebox work` on a library that a host serves exits with EXIT_LOCKED
    (3) and a message; the first host finishes everything."""
    from engine.jobs.supervisor import EXIT_LOCKED

    h = Harness(tmp_path, seeds((11,))[0])
    distinct = h.build_source(12)
    h.import_source()
    # The first host stalls on one file, so it is certainly serving when the second starts.
    slow = h.env(SHOEBOX_FAULT_SLOW_PATH="p0003", SHOEBOX_FAULT_SLOW_S="3")
    first = h.start("work", "--until-idle", "--json", env=slow)
    deadline = time.monotonic() + 60
    while h.count("state = 'running'") == 0 and first.poll() is None:
        assert time.monotonic() < deadline, f"the first host never started a job {h.tag}"
        time.sleep(0.02)
    second = h.work()
    assert second.returncode == EXIT_LOCKED, f"{second.returncode}: {second.stderr} {h.tag}"
    assert "already processing this library" in second.stderr, second.stderr
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err[-2000:]
    assert json.loads(out)["done"] == 2 * distinct
    h.next_start_clean()
    check = h.check(distinct)
    h.record("second_host", check, faults=1, outcome="refused (EXIT_LOCKED)")
    h.assert_ok(check)


HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def test_catalog_held_locked_by_another_process(tmp_path: Path) -> None:
    """Another process holds the catalog with BEGIN EXCLUSIVE for seconds while a host
    works: the host waits on the lock (busy timeout), then finishes; no job lost."""
    h = Harness(tmp_path, seeds((13,))[0])
    distinct = h.build_source(20)
    h.import_source()
    host = h.start("work", "--until-idle", "--json")
    deadline = time.monotonic() + 60
    while h.count("state = 'done'") == 0:
        assert time.monotonic() < deadline and host.poll() is None, f"no job finished {h.tag}"
        time.sleep(0.005)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(h.library / "catalog.db"), "3"],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    done_while_locked = h.count("state = 'done'")  # read-only: WAL readers pass an EXCLUSIVE
    holder.wait(timeout=30)
    out, err = host.communicate(timeout=120)
    assert host.returncode == 0, err[-2000:]
    stats = json.loads(out)
    assert stats["failed"] == 0 and stats["dead"] == 0 and stats["retried"] == 0, stats
    assert done_while_locked < 2 * distinct, "the host had finished before the lock was taken"
    h.next_start_clean()
    check = h.check(distinct)
    h.record("catalog_locked", check, faults=1, lock_s=3)
    h.assert_ok(check)
