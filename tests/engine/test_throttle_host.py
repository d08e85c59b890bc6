"""The worker host shares the machine: fewer running workers under real CPU load and on a
simulated battery, and back again after; "Only when idle" waits while the user works and
never holds the interactive lane; a stage rate limit read from settings.toml; the host
process below the app; the figures in `shoebox metrics` and on a loopback port.

Counts and events, not sleeps: each phase waits for the host's own decision, then
counts how many jobs ran at once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from engine.config import save_settings
from engine.jobs import host as host_module
from engine.jobs.host import WorkerHost
from engine.jobs.metrics import MemoryMetrics, prometheus, serve_prometheus, summary
from engine.jobs.throttle import Signals, SystemProbe, io_priority_class
from engine.library import Library
from engine.pipeline.registry import StageRegistry
from engine.pipeline.types import ItemRef, StageContext
from engine.queries import host_background
from tests.engine.jobstages import Recorder, add_items, fast_settings, library_with, wait_for

REPO = Path(__file__).resolve().parents[2]
POOL = 4


class Concurrency:
    """A stage body that sleeps `seconds` and counts how many run at once."""

    def __init__(self, seconds: float = 0.03) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0
        self.started = 0
        self.start_times: list[float] = []

    def reset_peak(self) -> None:
        with self.lock:
            self.peak = self.now

    def __call__(self, item: ItemRef, ctx: StageContext) -> None:
        with self.lock:
            self.now += 1
            self.started += 1
            self.peak = max(self.peak, self.now)
            self.start_times.append(time.monotonic())
        time.sleep(self.seconds)
        with self.lock:
            self.now -= 1


class FakeProbe:
    """The machine as the test says it is (a laptop's power source, the user's input)."""

    def __init__(self, signals: Signals = Signals()) -> None:  # noqa: B008
        self.signals = signals

    def read(self) -> Signals:
        return self.signals


@pytest.fixture(autouse=True)
def quick_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_module, "THROTTLE_CHECK_S", 0.2)


def busy_library(tmp_path: Path, body: Concurrency, mode: str, n: int = 3000) -> Library:
    lib = library_with(tmp_path / "lib", Recorder("noop", body=body))
    fast_settings(lib, pool=POOL, import_=POOL)
    lib.settings.background.mode = mode
    add_items(lib, n)
    return lib


def settle(host: WorkerHost, body: Concurrency, workers: int, starts: int = 40) -> int:
    """Once the decision is `workers` and the jobs begun before it have ended: the most
    jobs seen running at once over the next `starts` job starts."""
    wait_for(lambda: host.decision.workers == workers, 30, f"{workers} workers decided")
    wait_for(lambda: host.gate.running <= workers, 10, "running jobs down to the limit")
    body.reset_peak()
    first = body.started
    wait_for(lambda: body.started >= first + starts, 30, f"{starts} more jobs started")
    return body.peak


def test_on_battery_one_worker_runs_and_all_come_back_when_plugged_in(tmp_path: Path) -> None:
    body = Concurrency()
    lib = busy_library(tmp_path, body, "balanced")
    probe = FakeProbe(Signals(other_cpu=0.0, on_battery=False))
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings, probe=probe)
    host.start()
    try:
        assert settle(host, body, POOL) >= 3  # plugged in: the whole pool works
        probe.signals = Signals(on_battery=True)
        assert settle(host, body, 1) == 1
        assert host.decision.why == "on battery: one worker"
        assert host.background()["throttled"] is True
        probe.signals = Signals(on_battery=False)
        assert settle(host, body, POOL) >= 3
        assert host.decision.why == ""
    finally:
        host.stop()
    lib.close()


def burners(n: int) -> list[int]:
    """`n` CPU-bound processes that are not ours: the shell that starts them exits, so
    they leave this process's tree (which the probe counts as Shoebox's own use)."""
    pids = []
    for _ in range(n):
        out = subprocess.run(
            ["sh", "-c", f"'{sys.executable}' -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        pids.append(int(out.stdout.strip()))
    return pids


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_other_programs_keeping_the_cpu_busy_cut_the_workers_until_they_stop(
    tmp_path: Path,
) -> None:
    body = Concurrency()
    lib = busy_library(tmp_path, body, "balanced")
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings, probe=SystemProbe())
    load = burners(os.cpu_count() or 1)  # real load: every core busy in other processes
    host.start()
    try:
        wait_for(lambda: host.decision.workers < POOL, 30, "the host to back off")
        cut = host.decision.workers
        assert "other programs are using" in host.decision.why
        assert settle(host, body, cut, starts=20) <= cut
        kill_all(load)
        assert settle(host, body, POOL) >= 3  # recovered, one worker a check
    finally:
        kill_all(load)
        host.stop()
    lib.close()


def test_only_when_idle_waits_while_the_user_works_but_not_the_interactive_lane(
    tmp_path: Path,
) -> None:
    body = Concurrency()
    lib = busy_library(tmp_path, body, "idle", n=600)
    lib.settings.background.idle_after_s = 60
    probe = FakeProbe(Signals(user_idle_s=600))
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings, probe=probe)
    host.start()
    try:
        wait_for(lambda: body.started >= 20, 20, "work while the computer is idle")
        probe.signals = Signals(user_idle_s=3)  # the user is back
        wait_for(lambda: host.decision.workers == 0, 10, "work to wait")
        wait_for(lambda: host.gate.running == 0, 10, "running jobs to finish")
        assert "waiting until the computer is idle" in host.decision.why
        held = body.started
        # The item the user opens runs now: the interactive lane is never throttled.
        last = int(lib.catalog.read("SELECT max(item_id) FROM jobs WHERE state = 'queued'")[0][0])
        assert lib.prioritize([last]) == 1
        wait_for(
            lambda: (
                lib.catalog.read("SELECT state FROM jobs WHERE item_id = ?", (last,))[0][0]
                == "done"
            ),
            20,
            "the interactive job",
        )
        assert body.started == held + 1
        probe.signals = Signals(user_idle_s=600)
        wait_for(lambda: body.started >= held + 20, 20, "work to resume when idle")
    finally:
        host.stop()
    lib.close()


def test_a_stage_rate_limit_from_settings_toml_holds_in_the_host(tmp_path: Path) -> None:
    body = Concurrency(seconds=0.0)
    lib = busy_library(tmp_path, body, "full", n=45)
    lib.settings.background.stage_limits = "noop=20"
    save_settings(lib.root, lib.settings)
    lib.close()
    # A new process's view: the limit comes from the file, and a restart starts with one
    # token, not a burst.
    lib = Library(tmp_path / "lib", registry=StageRegistry([Recorder("noop", body=body)]))
    assert lib.settings.background.stage_limits == "noop=20"
    fast_settings(lib, pool=POOL, import_=POOL)
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        host.wait_idle(timeout=30)
    finally:
        host.stop()
    times = sorted(body.start_times)
    assert len(times) == 45
    span = times[-1] - times[0]
    rate = (len(times) - 1) / span
    assert rate <= 20 * 1.1, rate  # never faster than the limit (beyond 10%)
    assert rate >= 20 / 3, rate  # and not starved
    assert host.limits.waited_s > 1.5
    # The status bar names the limit while it holds jobs back, and not long after.
    assert host.background()["rate_limited"] == ["noop: at most 20 a second"]
    assert host.limits.slowing(within_s=-1.0) == []
    lib.close()


class ReadsOriginal(Recorder):
    reads_original = True


def test_a_folder_limit_holds_for_the_importer_and_the_host_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.importing.importer as importer
    from tests.engine.helpers import jpeg

    share = tmp_path / "nas"
    for i in range(30):
        jpeg(share / f"{i}.jpg", i)
    body = Concurrency(seconds=0.0)
    lib = library_with(tmp_path / "lib", ReadsOriginal("read", body=body))
    fast_settings(lib, pool=POOL, import_=POOL)
    lib.settings.background.mode = "full"
    lib.settings.background.folder_limits = f"{share}=20"
    hashed: list[float] = []
    real_hash = importer.hash_file

    def hash_file(path: str) -> tuple[str, bytes, int]:
        hashed.append(time.monotonic())
        return real_hash(path)

    monkeypatch.setattr(importer, "hash_file", hash_file)
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        summary = lib.import_paths([share])  # the host enriches while it catalogues
        host.wait_idle(timeout=60)
    finally:
        host.stop()
    assert summary.items_new == 30 and len(body.start_times) == 30
    reads = sorted(hashed + body.start_times)
    # Both read the share at once: the stage's first job ran before the last hash.
    assert min(body.start_times) < max(hashed)
    rate = (len(reads) - 1) / (reads[-1] - reads[0])
    assert rate <= 20 * 1.1, rate  # the two processes' reads together, not 20 each
    assert rate >= 20 / 2, rate
    lib.close()


def test_metrics_count_each_stage_and_serve_prometheus_on_loopback(tmp_path: Path) -> None:
    body = Concurrency(seconds=0.02)
    lib = busy_library(tmp_path, body, "full", n=50)
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        host.wait_idle(timeout=30)
    finally:
        host.stop()
    data = summary(lib.catalog.conn, 3600)
    stage = data["stages"]["noop"]
    assert stage["done"] == 50 and stage["failed"] == 0
    assert 0.02 <= stage["p50_s"] <= stage["p95_s"] < 1.0
    assert stage["items_per_s"] == pytest.approx(50 / 3600, abs=1e-4)
    assert sum(p["done"] for p in data["throughput"]) == 50
    assert len(data["throughput"]) == 60
    assert 0 < data["hosts"]["local"]["utilisation"] <= 1
    text = prometheus(data)
    assert 'shoebox_jobs_total{stage="noop",outcome="done"} 50' in text
    server = serve_prometheus(0, lambda: text)
    try:
        port = server.server_address[1]
        assert server.server_address[0] == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert reply.read().decode() == text
    finally:
        server.shutdown()
    lib.close()


def test_a_worker_without_a_catalog_reports_the_same_figures() -> None:
    memory = MemoryMetrics()
    for _ in range(10):
        memory.recorder.duration("embed", 0.5)
        memory.recorder.outcome("embed", True)
    memory.recorder.outcome("embed", False)
    memory.recorder.capacity(10.0)
    data = memory.summary()
    assert data["stages"]["embed"]["done"] == 10 and data["stages"]["embed"]["failed"] == 1
    assert data["stages"]["embed"]["p50_s"] == 0.5
    assert data["hosts"]["local"]["utilisation"] == 0.5
    assert data["lanes"] == {}


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    return env


def test_the_background_host_runs_below_the_app_and_says_so_in_status(tmp_path: Path) -> None:
    """What the app starts (`shoebox work --parent-pid`) is nicer and idle-class for I/O;
    `status --json` and `metrics --json` carry its background mode."""
    root = tmp_path / "lib"
    Library(root).close()
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "--library", str(root), "work",
         "--parent-pid", str(os.getpid())],
        cwd=REPO, env=cli_env(),
    )  # fmt: skip
    try:
        lib = Library(root)
        try:
            wait_for(lambda: host_background(lib.catalog.conn) is not None, 30, "a heartbeat")
            background = host_background(lib.catalog.conn)
        finally:
            lib.close()
        assert background is not None
        assert background["mode"] == "full"  # tests/conftest.py: SHOEBOX_BACKGROUND
        assert background["priority"]["nice"] == max(10, mine)
        if sys.platform.startswith("linux"):
            assert background["priority"]["io"] == "idle"
            assert io_priority_class(proc.pid) == 3
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == max(10, mine)
        assert mine < 10, "the test process itself must not have been lowered"
        out = subprocess.run(
            [sys.executable, "-m", "engine.cli", "--library", str(root), "metrics", "--json"],
            cwd=REPO, env=cli_env(), capture_output=True, text=True, check=True,
        )  # fmt: skip
        data: dict[str, Any] = json.loads(out.stdout)
        assert data["background"]["of"] >= 1 and data["window_s"] == 3600
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
