"""Kill tests: SIGKILL the worker host at random moments; nothing may be lost or doubled."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine.jobs.ledger import CRASH_REASON
from engine.library import Library
from tests.conftest import REPO, cli_env
from tests.engine.helpers import jpeg

N_FILES = 260  # two stages each: 520 jobs, plus the crashing file's two


def _work(library_dir: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "--library", str(library_dir), "work", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _done(lib: Library) -> int:
    return int(lib.catalog.read("SELECT count(*) FROM jobs WHERE state = 'done'")[0][0])


def test_sigkill_at_random_moments_loses_and_doubles_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("SHOEBOX_TEST_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    src = tmp_path / "src"
    for i in range(N_FILES):
        jpeg(src / f"d{i % 5}" / f"{i:04d}.jpg", i, (640, 480))
    jpeg(src / "d2" / "0100-crash-me.jpg", 99_999, (640, 480))
    library_dir = tmp_path / "lib"
    lib = Library(library_dir)
    summary = lib.import_paths([src])
    assert summary.jobs_queued == 2 * (N_FILES + 1) >= 500
    env = cli_env()
    env["SHOEBOX_FAULT_CRASH_PATH"] = "crash-me"

    kills = 0
    while kills < 3:
        before = _done(lib)
        host = _work(library_dir, env=env)
        deadline = time.monotonic() + 30
        while _done(lib) < before + 10 and host.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.4))
        if host.poll() is None:
            host.send_signal(signal.SIGKILL)
            kills += 1
        host.wait()
        assert _done(lib) < 2 * N_FILES, f"finished before the kills (seed {seed})"

    finals = []
    for _ in range(15):  # the crashing file takes the host down until it is dead-lettered
        host = _work(library_dir, "--until-idle", env=env)
        finals.append(host.wait(timeout=120))
        if finals[-1] == 0:
            break
    assert finals[-1] == 0, f"work --until-idle never finished cleanly: {finals} (seed {seed})"

    counts = dict(lib.catalog.read("SELECT state, count(*) FROM jobs GROUP BY state"))
    assert counts == {"done": 2 * N_FILES, "dead": 2}, f"seed {seed}"
    dead = lib.catalog.read(
        """SELECT p.display, j.attempts, j.error FROM jobs j JOIN paths p ON p.item_id = j.item_id
           WHERE j.state = 'dead'"""
    )
    prefix = CRASH_REASON.split("{n}")[0]
    for display, attempts, error in dead:
        assert display.endswith("crash-me.jpg")
        assert attempts == 3
        assert error.startswith(prefix)
    results = lib.catalog.read("SELECT count(*), count(DISTINCT item_id || stage) FROM results")[0]
    assert tuple(results) == (2 * N_FILES, 2 * N_FILES), "a result row is missing or doubled"
    thumbs = lib.catalog.read("SELECT count(*) FROM thumbnails")[0][0]
    assert thumbs == 2 * N_FILES
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
    assert kept == actual
    lib.close()


def test_graceful_sigterm_finishes_running_jobs(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(40):
        jpeg(src / f"{i}.jpg", i, (1600, 1200))
    lib = Library(tmp_path / "lib")
    lib.import_paths([src])
    host = _work(lib.root, env=cli_env())
    deadline = time.monotonic() + 30
    while _done(lib) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    host.send_signal(signal.SIGTERM)
    assert host.wait(timeout=30) == 0
    running = lib.catalog.read("SELECT count(*) FROM jobs WHERE state = 'running'")[0][0]
    assert running == 0  # graceful: what had started, finished
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
        env=cli_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    host_pid = int(parent.stdout.readline())
    time.sleep(1.0)  # let the host take the library's lock
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    # Within a few seconds the orphaned host has stopped and released the library's lock:
    # a new host gets it (exit 0, not EXIT_LOCKED).
    codes = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        codes.append(_work(lib.root, "--until-idle", env=cli_env()).wait(timeout=30))
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
