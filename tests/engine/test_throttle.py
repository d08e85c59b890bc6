"""Background work that yields (engine/jobs/throttle.py): the modes' decisions, the
gate, rate limits by a simulated clock, and the priority a process gets."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine.jobs.throttle import (
    Gate,
    LimitsError,
    RateLimits,
    Signals,
    Throttle,
    TokenBucket,
    io_priority_class,
    parse_limits,
)


def test_full_speed_never_backs_off() -> None:
    t = Throttle("full", 4)
    assert t.update(Signals(other_cpu=1.0, on_battery=True, user_idle_s=0), 4).workers == 4


def test_balanced_backs_off_under_load_and_on_battery_and_recovers_one_at_a_time() -> None:
    t = Throttle("balanced", 4)
    assert t.update(Signals(other_cpu=0.1), 4).workers == 4
    loaded = t.update(Signals(other_cpu=0.9), 4)
    assert loaded.workers == 1 and "90%" in loaded.why
    battery = t.update(Signals(on_battery=True), 4)
    assert battery.workers == 1 and "battery" in battery.why
    counts = [t.update(Signals(other_cpu=0.0), 4).workers for _ in range(4)]
    assert counts == [2, 3, 4, 4]
    assert t.update(Signals(other_cpu=0.0), 4).why == ""


def test_only_when_idle_waits_for_the_user_to_step_away() -> None:
    t = Throttle("idle", 2, idle_after_s=120)
    busy = t.update(Signals(user_idle_s=5), 2)
    assert busy.workers == 0 and "idle" in busy.why
    assert t.update(Signals(user_idle_s=600), 2).workers == 1
    assert t.update(Signals(user_idle_s=600), 2).workers == 2


def test_the_gate_holds_running_jobs_to_its_limit() -> None:
    gate = Gate(3)
    started = threading.Barrier(3)
    release = threading.Event()

    def job() -> None:
        assert gate.acquire(lambda: False)
        started.wait(5)
        release.wait(5)
        gate.release()

    threads = [threading.Thread(target=job) for _ in range(3)]
    for th in threads:
        th.start()
    gate.set_limit(1)
    release.set()
    for th in threads:
        th.join(5)
    assert gate.running == 0 and gate.peak == 3
    assert gate.acquire(lambda: False) and not gate.acquire(lambda: True)  # 1: full now


def test_limits_are_parsed_and_bad_ones_named() -> None:
    assert parse_limits("ocr=2; thumbnail = 20", folders=False) == {"ocr": 2.0, "thumbnail": 20.0}
    assert parse_limits("/mnt/nas,2020=5", folders=True) == {"/mnt/nas,2020": 5.0}
    for bad in ("ocr", "ocr=0", "=3", "ocr=fast"):
        with pytest.raises(LimitsError):
            parse_limits(bad, folders=False)


def test_a_rate_limit_holds_within_ten_percent_over_a_simulated_minute() -> None:
    now = [0.0]
    limits = RateLimits({"ocr": 5.0}, {"/mnt/nas": 2.0}, clock=lambda: now[0])

    def run(stage: str, path: str, reads: bool) -> int:
        now[0] = 0.0
        done = 0
        while now[0] < 60.0:
            delay = limits.delay(stage, [path], reads)
            now[0] += delay + 0.001  # the job itself takes 1 ms
            done += 1
        return done

    assert abs(run("ocr", "/home/x.jpg", True) - 300) <= 30
    limits.stages.clear()
    assert abs(run("thumbnail", "/mnt/nas/a/b.jpg", True) - 120) <= 12
    assert run("embed", "/mnt/nas/a/b.jpg", False) > 10_000  # previews: not the share's


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_processes_of_one_library_share_a_folder_limit(tmp_path: Path) -> None:
    # The importer and the host are separate processes; two RateLimits on one folder are
    # as separate as they get (flock locks an open file, not a process).
    now = [1_000.0]
    importer = RateLimits({}, {"/mnt/nas": 4.0}, clock=lambda: now[0], shared_dir=tmp_path)
    host = RateLimits({}, {"/mnt/nas": 4.0}, clock=lambda: now[0], shared_dir=tmp_path)
    done = 0
    while now[0] < 1_060.0:  # a minute, alternating readers
        for limits in (importer, host):
            now[0] += limits.delay("thumbnail", ["/mnt/nas/a.jpg"], True) + 0.001
            done += 1
    assert abs(done - 240) <= 24, done  # the pair together, not 4 each
    now[0] -= 3_600  # the clock set back an hour: no stall, no burst
    assert importer.delay("thumbnail", ["/mnt/nas/a.jpg"], True) <= 0.5
    # A torn file (a crash mid-write) is a fresh bucket, not an error.
    [bucket] = list(tmp_path.glob("*.bucket"))
    bucket.write_bytes(b"12")
    assert host.delay("thumbnail", ["/mnt/nas/b.jpg"], True) == 0.0


def test_a_bucket_starts_with_one_token_not_a_burst() -> None:
    now = [100.0]
    bucket = TokenBucket(10.0, clock=lambda: now[0])
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="nice and ioprio: Linux")
def test_a_process_that_lowers_its_priority_is_nicer_and_idle_for_io() -> None:
    code = (
        "import os, time; from engine.jobs.throttle import lower_priority; "
        "print(lower_priority(10), flush=True); time.sleep(30)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert "'io': 'idle'" in line
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == 10 > os.getpriority(os.PRIO_PROCESS, 0)
        assert io_priority_class(proc.pid) == 3
    finally:
        proc.kill()
        proc.wait()
