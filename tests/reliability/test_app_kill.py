"""SIGKILL of the whole app mid-work: the real app (offscreen) with its worker host.

Two ways the app dies: alone (the window process is killed; its host, in a session
of its own, notices it is orphaned and stops gracefully, handing its jobs back), or
with its host (both killed, as by the OOM killer or a power cut). Either way no
host is left holding the library, the next start recovers, and nothing is lost or
done twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.reliability.harness import Harness, seeds

N_FILES = 40


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] not in ("Z", "X")
    except OSError:
        return False


def _host_pid(h: Harness) -> int | None:
    rows = h.read("SELECT pid FROM hosts WHERE stopped_at IS NULL ORDER BY started_at DESC")
    for (pid,) in rows:
        if pid and _alive(int(pid)):
            return int(pid)
    return None


def _run(tmp_path: Path, seed: int, *, with_host: bool) -> None:
    h = Harness(tmp_path, seed)
    distinct = h.build_source(N_FILES)
    h.import_source()
    env = h.env(
        QT_QPA_PLATFORM="offscreen", SHOEBOX_FAULT_SLOW_PATH="p00", SHOEBOX_FAULT_SLOW_S="0.3"
    )
    env["HOME"] = str(tmp_path / "home")  # the app's own settings, not the user's
    app = subprocess.Popen(
        [sys.executable, "-m", "desktop.launcher", "--library", str(h.library)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    h.runs += 1
    want = h.rng.randint(3, 20)  # the kill moment: after this many jobs are done
    deadline = time.monotonic() + 90
    host = None
    try:
        while time.monotonic() < deadline:
            assert app.poll() is None, f"the app exited: {app.stderr.read()[-2000:]}"  # type: ignore[union-attr]
            try:
                done = h.count("state = 'done'")
                host = host or _host_pid(h)
            except Exception:  # the catalog is being created or migrated
                done = 0
            if done >= want and host is not None:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"no {want} jobs done in 90 s {h.tag}")
        assert host is not None
        app.kill()
        if with_host:
            os.kill(host, signal.SIGKILL)
        h.kills += 1
        app.wait(10)
    finally:
        if app.poll() is None:
            app.kill()
    # No host outlives the app: orphaned, it stops by itself within seconds.
    until = time.monotonic() + 30
    while _alive(host) and time.monotonic() < until:
        time.sleep(0.1)
    assert not _alive(host), f"the worker host {host} outlived the app {h.tag}"
    snaps = [h.snapshot()]
    stats = h.work_clean()
    if with_host:
        assert any(stats["recovered"].values()), f"nothing to recover after both died {h.tag}"
    h.next_start_clean()
    check = h.check(distinct, snaps)
    h.record("sigkill_app_and_host" if with_host else "sigkill_app", check, faults=1, at=want)
    h.assert_ok(check)


@pytest.mark.parametrize("with_host", [False, True], ids=["app", "app+host"])
def test_sigkill_of_the_app_mid_work(tmp_path: Path, with_host: bool) -> None:
    _run(tmp_path, seeds((51,))[0], with_host=with_host)


@pytest.mark.reliability
@pytest.mark.parametrize("with_host", [False, True], ids=["app", "app+host"])
@pytest.mark.parametrize("seed", seeds(range(300, 305)))
def test_sigkill_of_the_app_mid_work_full(tmp_path: Path, seed: int, with_host: bool) -> None:
    _run(tmp_path, seed, with_host=with_host)
