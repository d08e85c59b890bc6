"""Kill tests: SIGKILL the worker host mid-run, stop it gracefully; nothing may be lost or doubled.

The kills happen at job counts (engine.faults: SHOEBOX_FAULT_KILL_AT_JOB), not at
time offsets, so the test proves the same thing on a fast machine as on a slow one.
Kill counts and the crashing file's position come from a seeded RNG: the seed is in
every assertion message, and SHOEBOX_TEST_SEED=<seed> replays a run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.jobs.ledger import CRASH_REASON
from engine.library import Library
from tests.conftest import REPO, cli_env
from tests.engine.helpers import jpeg

# The queue suite runs on both brokers: the embedded SQLite queue and Redis.
pytestmark = pytest.mark.usefixtures("queue_backend")

N_FILES = 260  # two stages each: 520 jobs, plus the crashing file's two
PLANNED_KILLS = 4
RUN_TIMEOUT_S = 120.0
CRASH_NEEDLE = "crash-me"
WORK_ARGS = ("--until-idle", "--json")


def _work(library_dir: Path, *args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`shoebox work …` as a child process; its stderr goes to `log` (a pipe nobody
    reads could fill up and hang the host)."""
    with open(log, "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "--library", str(library_dir), "work", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _finish(proc: subprocess.Popen[bytes], what: str, log: Path, library_dir: Path) -> int:
    """Wait for a host process; a hang is a failure with a reason, not a runner timeout."""
    try:
        return proc.wait(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        tail = log.read_text(errors="replace")[-3000:]
        pytest.fail(
            f"{what}: the host was still running after {RUN_TIMEOUT_S:g} s; "
            f"unfinished jobs:\n{_unfinished(library_dir)}\nhost log:\n{tail}"
        )


def _unfinished(library_dir: Path) -> str:
    """The jobs not done, one line each (at most 20), for a failure message."""
    import sqlite3

    conn = sqlite3.connect(library_dir / "catalog.db", timeout=10)
    try:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT * FROM jobs WHERE state != 'done' ORDER BY id LIMIT 20"
        ).fetchall()
        return "\n".join(str(dict(r)) for r in rows) or "(none)"
    finally:
        conn.close()


def _env(**faults: str) -> dict[str, str]:
    """The child's environment: no fault injection but the ones asked for."""
    env = {k: v for k, v in cli_env().items() if not k.startswith("SHOEBOX_FAULT_")}
    return {**env, **faults}


def _count(lib: Library, where: str) -> int:
    return int(lib.catalog.read(f"SELECT count(*) FROM jobs WHERE {where}")[0][0])


def _attempts(lib: Library) -> int:
    return int(lib.catalog.read("SELECT coalesce(sum(attempts), 0) FROM jobs")[0][0])


def _orphans(lib: Library) -> list[tuple[int, str]]:
    """Jobs left `running` by a dead host (read before the next host recovers them)."""
    return [
        (int(r[0]), str(r[1]))
        for r in lib.catalog.read(
            """SELECT j.id, coalesce((SELECT p.display FROM paths p WHERE p.item_id = j.item_id
                                     ORDER BY p.id LIMIT 1), '')
               FROM jobs j WHERE j.state = 'running'"""
        )
    ]


def _concurrency(lib: Library) -> int:
    """At most how many of the queued jobs run at once (their lanes' worker caps)."""
    lanes = [str(r[0]) for r in lib.catalog.read("SELECT DISTINCT lane FROM jobs")]
    return sum(max(1, lib.settings.workers.for_lane(lane)) for lane in lanes)


@dataclass
class _Deaths:
    """What the SIGKILLs did, classified from the ledger after each one."""

    planned: list[int] = field(default_factory=list)  # KILL_AT_JOB of each planned kill
    crash_runs: int = 0  # host deaths with the crashing file's job among the orphans
    crash_attempts: int = 0  # the crashing file's jobs orphaned (= its attempts)
    innocent_orphans: int = 0  # other jobs orphaned (each runs once more)
    codes: list[int] = field(default_factory=list)  # every non-zero exit status


def test_sigkill_at_job_counts_loses_and_doubles_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("SHOEBOX_TEST_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    tag = f"(seed {seed}; rerun with SHOEBOX_TEST_SEED={seed})"
    print(f"random-kill test {tag}")

    src = tmp_path / "src"
    crash_at = rng.randrange(N_FILES + 1)  # where the crashing file sits: it must not matter
    for i in range(N_FILES):
        jpeg(src / f"d{i % 5}" / f"{i:04d}.jpg", i, (640, 480))
    jpeg(src / f"d{crash_at % 5}" / f"{crash_at:04d}-{CRASH_NEEDLE}.jpg", 99_999, (640, 480))
    library_dir = tmp_path / "lib"
    lib = Library(library_dir)
    summary = lib.import_paths([src])
    total = 2 * N_FILES
    assert summary.jobs_queued == total + 2 >= 500
    max_attempts = lib.settings.max_attempts
    workers = _concurrency(lib)
    log = tmp_path / "hosts.log"
    env = _env(SHOEBOX_FAULT_CRASH_PATH=CRASH_NEEDLE)

    # A host dies as its n-th job starts. The few jobs running then are orphans that
    # the next host runs first, one at a time (suspects); n > workers + 1 lets those
    # finish before the next kill, so no innocent job is killed twice. Each run does
    # at most n jobs, so the planned kills together cannot reach the end of the queue.
    plan = [rng.randint(workers + 2, workers + 25) for _ in range(PLANNED_KILLS)]
    assert (len(plan) + 2 * max_attempts) * (max(plan) + workers) < total, tag
    print(f"kill plan (job counts): {plan} {tag}")
    deaths = _Deaths()

    def died(code: int, what: str) -> list[tuple[int, str]]:
        """Record a host's death; returns the jobs it left running."""
        assert code == -signal.SIGKILL, f"{what}: exit status {code}, not SIGKILL {tag}"
        deaths.codes.append(code)
        orphans = _orphans(lib)
        # The host died with a job started and unfinished: the kill was mid-run.
        assert orphans, f"{what}: the host died with no job running {tag}"
        crashing = [o for o in orphans if CRASH_NEEDLE in o[1]]
        deaths.crash_attempts += len(crashing)
        deaths.innocent_orphans += len(orphans) - len(crashing)
        if crashing:
            deaths.crash_runs += 1
        return crashing

    pending = list(plan)
    runs = 0
    while pending:
        runs += 1
        assert runs <= len(plan) + 2 * max_attempts, (
            f"more host runs than planned kills plus crashes: {deaths} {tag}"
        )
        n = pending[0]
        claims_before = _attempts(lib)
        run_env = {**env, "SHOEBOX_FAULT_KILL_AT_JOB": str(n)}
        what = f"run {runs} (kill at job {n})"
        code = _finish(
            _work(library_dir, "--until-idle", env=run_env, log=log), what, log, library_dir
        )
        assert code != 0, f"{what}: finished its work before its {n}th job {tag}"
        crashing = died(code, what)
        claims = _attempts(lib) - claims_before  # jobs this host started
        if crashing:
            # The crashing file took it down first (or as its n-th job): plan again.
            assert claims <= n + workers, f"{what}: {claims} jobs started {tag}"
            continue
        # It died at its n-th job (plus any claimed by other workers in that instant).
        assert n <= claims <= n + workers, f"{what}: died after {claims} jobs {tag}"
        done = _count(lib, "state = 'done'")
        assert done < total, f"{what}: all jobs done before the kill {tag}"
        assert _count(lib, "state = 'queued'") > 0, f"{what}: nothing left to do {tag}"
        deaths.planned.append(n)
        pending.pop(0)

    finals = []
    for _ in range(2 * max_attempts + 1):  # the crashing file kills hosts until it is dead
        code = _finish(
            _work(library_dir, "--until-idle", env=env, log=log), "final run", log, library_dir
        )
        finals.append(code)
        if code == 0:
            break
        assert died(code, "final run"), f"a final run died without the crashing file {tag}"
    assert finals[-1] == 0, f"work --until-idle never finished cleanly: {finals} {tag}"
    print(f"crashing file at {crash_at}; {deaths}; final runs {finals} {tag}")

    # The kills that happened are exactly the planned ones; every other death was the
    # crashing file, once per attempt of each of its two jobs.
    assert deaths.planned == plan, f"{deaths} {tag}"
    assert deaths.crash_attempts == 2 * max_attempts, f"{deaths} {tag}"
    assert len(deaths.codes) == len(plan) + deaths.crash_runs, f"{deaths} {tag}"
    assert all(c == -signal.SIGKILL for c in deaths.codes), f"{deaths} {tag}"

    counts = dict(lib.catalog.read("SELECT state, count(*) FROM jobs GROUP BY state"))
    assert counts == {"done": total, "dead": 2}, f"{counts} {deaths} {tag}"
    dead = lib.catalog.read(
        """SELECT p.display, j.attempts, j.error FROM jobs j JOIN paths p ON p.item_id = j.item_id
           WHERE j.state = 'dead'"""
    )
    prefix = CRASH_REASON.split("{n}")[0]
    assert len(dead) == 2, tag
    for display, attempts, error in dead:
        assert display.endswith(f"{CRASH_NEEDLE}.jpg"), f"{display} {tag}"
        assert attempts == max_attempts, f"{display}: {attempts} attempts {tag}"
        assert error.startswith(prefix), f"{display}: {error!r} {tag}"
    # Every start is accounted for: one per job, one more per orphaned job, and the
    # crashing file's. A job run twice without a crash would show here.
    assert _attempts(lib) == total + deaths.innocent_orphans + 2 * max_attempts, f"{deaths} {tag}"
    results = lib.catalog.read("SELECT count(*), count(DISTINCT item_id || stage) FROM results")[0]
    assert tuple(results) == (total, total), f"a result row is missing or doubled {tag}"
    done_without_result = _count(
        lib,
        """state = 'done' AND NOT EXISTS (
               SELECT 1 FROM results r WHERE r.item_id = jobs.item_id AND r.stage = jobs.stage)""",
    )
    assert done_without_result == 0, tag
    thumbs = lib.catalog.read("SELECT count(*) FROM thumbnails")[0][0]
    assert thumbs == total, tag
    # The trigger-kept counters agree with the rows after all those crashes.
    kept = {
        (r[0], r[1]): r[2]
        for r in lib.catalog.read("SELECT stage, state, sum(n) FROM job_counts GROUP BY 1, 2")
        if r[2]
    }
    actual = {
        (r[0], r[1]): r[2]
        for r in lib.catalog.read("SELECT stage, state, count(*) FROM jobs GROUP BY 1, 2")
    }
    assert kept == actual, tag
    lib.close()


SLOW_NEEDLE = "slow-decoder"
SLOW_S = 1.5  # the slow file's jobs stall this long: running at the SIGTERM, for certain


@pytest.mark.parametrize(
    ("grace_s", "slow_ends"),
    [(None, "done"), (0.001, "handed back")],
    ids=["running-jobs-finish", "short-grace-hands-back"],
)
def test_graceful_sigterm_loses_no_started_job_and_counts_no_attempt(
    tmp_path: Path, grace_s: float | None, slow_ends: str
) -> None:
    """SIGTERM while jobs run. With the default grace (10 s) the running jobs finish;
    with a tiny one, a job still running is handed back at its next check, without
    costing an attempt. Either way no job is lost, none is counted as a crash, and
    the next run does each job once."""
    src = tmp_path / "src"
    for i in range(40):
        jpeg(src / f"{i:02d}.jpg", i, (1600, 1200))
    jpeg(src / f"20-{SLOW_NEEDLE}.jpg", 999, (1600, 1200))  # mid-queue
    lib = Library(tmp_path / "lib")
    lib.import_paths([src])
    if grace_s is not None:
        (lib.root / "settings.toml").write_text(f"[general]\nstop_grace_s = {grace_s}\n")
    total = _count(lib, "1")
    slow_jobs = {
        int(r[0])
        for r in lib.catalog.read(
            "SELECT j.id FROM jobs j JOIN paths p ON p.item_id = j.item_id WHERE p.display LIKE ?",
            (f"%{SLOW_NEEDLE}%",),
        )
    }
    assert slow_jobs
    log = tmp_path / "hosts.log"
    env = _env(SHOEBOX_FAULT_SLOW_PATH=SLOW_NEEDLE, SHOEBOX_FAULT_SLOW_S=str(SLOW_S))
    host = _work(lib.root, env=env, log=log)
    running_at_term: set[int] = set()
    deadline = time.monotonic() + 30
    while not (running_at_term & slow_jobs) and host.poll() is None:
        assert time.monotonic() < deadline, "the slow file's job never started"
        running_at_term = {
            int(r[0]) for r in lib.catalog.read("SELECT id FROM jobs WHERE state = 'running'")
        }
        time.sleep(0.005)  # polling the catalog for a condition, not waiting for time
    slow_running = running_at_term & slow_jobs
    assert slow_running, f"the host stopped early (status {host.poll()})"
    host.send_signal(signal.SIGTERM)
    assert _finish(host, "graceful stop", log, lib.root) == 0
    rows = {
        int(r[0]): (r[1], r[2], r[3], r[4], r[5])
        for r in lib.catalog.read(
            "SELECT id, state, attempts, started_at IS NOT NULL, suspect, error FROM jobs"
        )
    }
    assert not [j for j, r in rows.items() if r[0] == "running"], "a job was left running"
    # Jobs that had started before the SIGTERM: seen running just before it, or
    # marked started. (A job handed back may have its started_at cleared; the
    # ones seen running are known to have started either way.)
    started = running_at_term | {j for j, r in rows.items() if r[2]}
    prefix = CRASH_REASON.split("{n}")[0]
    for job in started:
        state, attempts, _, suspect, error = rows[job]
        finished = state == "done" and attempts == 1
        handed_back = state == "queued" and attempts == 0 and not suspect
        assert finished or handed_back, (
            f"job {job} started before the SIGTERM ended {state}, attempts {attempts}, "
            f"suspect {suspect}, error {error!r}: a graceful stop must finish it or hand "
            "it back without counting an attempt"
        )
        assert not (error or "").startswith(prefix), f"job {job} counted as a crash: {error!r}"
    for job in slow_running:  # certainly still running when the stop began
        state, attempts = rows[job][:2]
        expected = ("done", 1) if slow_ends == "done" else ("queued", 0)
        assert (state, attempts) == expected, (
            f"slow job {job}: {state}, attempts {attempts}; expected {slow_ends} {expected}"
        )
    for job, (state, attempts, _, _, _) in rows.items():
        if job not in started:
            assert (state, attempts) == ("queued", 0), f"job {job}: {state}, {attempts}"
    assert _count(lib, "state = 'done'") < total, "the stop came after all the work was done"
    handed = sorted(j for j in started if rows[j][0] == "queued")
    print(f"graceful stop ({grace_s=}): {len(started)} started, handed back {handed}")

    again = subprocess.run(
        [sys.executable, "-m", "engine.cli", "--library", str(lib.root), "work", *WORK_ARGS],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    recovered = json.loads(again.stdout)["recovered"]
    # Nothing was left for crash recovery: the graceful stop is not counted as a crash.
    assert recovered.get("dead", 0) == 0 and recovered.get("requeued", 0) == 0, recovered
    final = lib.catalog.read("SELECT state, attempts, count(*) FROM jobs GROUP BY 1, 2")
    assert [tuple(r) for r in final] == [("done", 1, total)], (
        f"after the restart: {[tuple(r) for r in final]} (an attempt was lost to the stop?)"
    )
    lib.close()


def test_host_stops_when_the_process_that_started_it_dies(tmp_path: Path) -> None:
    lib = Library(tmp_path / "lib")
    # A parent that starts a host (as the app does) and is then SIGKILLed.
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path;"
            "from engine.jobs.supervisor import HostProcess;"
            "h = HostProcess(Path(sys.argv[1])); h.start();"
            "print(h.pid, flush=True); time.sleep(60)",
            str(lib.root),
        ],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    host_pid = int(parent.stdout.readline())
    # The host writes its owner ("host:pid") into host.lock once it holds the lock.
    lock = lib.root / "host.lock"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if lock.exists() and lock.read_text().strip().endswith(f":{host_pid}"):
            break
        time.sleep(0.05)
    else:
        parent.kill()
        pytest.fail("the host never took the library's lock")
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    # Within a few seconds the orphaned host has stopped and released the library's lock:
    # a new host gets it (exit 0, not EXIT_LOCKED).
    codes = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        codes.append(
            _work(lib.root, "--until-idle", env=_env(), log=tmp_path / "h.log").wait(timeout=30)
        )
        if codes[-1] == 0:
            break
        time.sleep(0.5)
    assert codes[-1] == 0, f"the host outlived the process that started it: {codes}"
    assert _state_of(host_pid) in ("gone", "zombie")
    lib.close()


def _state_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("State:"):
                    return "zombie" if "Z" in line.split()[1] else "alive"
    except FileNotFoundError:
        return "gone"
    return "alive"
