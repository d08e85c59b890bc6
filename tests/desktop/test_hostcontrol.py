"""HostControl: restart after a crash at once, back off when crashes repeat, stop for good."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from desktop import hostcontrol
from desktop.hostcontrol import HostControl, backoff_s
from engine.jobs.supervisor import EXIT_LOCKED
from tests.conftest import REPO, cli_env


class FakeHost:
    """Stands in for HostProcess: every child 'exits' with `code` once polled."""

    pids = itertools.count(1000)
    code: int | None = 1

    def __init__(self, library_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.pid: int | None = None

    def start(self) -> None:
        self.pid = next(self.pids)

    def poll(self) -> int | None:
        return FakeHost.code

    def stop(self, timeout: float = 30.0) -> int | None:
        return FakeHost.code


@pytest.fixture
def control(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> HostControl:
    monkeypatch.setattr(hostcontrol, "HostProcess", FakeHost)
    FakeHost.code = 1
    return HostControl(tmp_path, poll_ms=10_000)  # the test calls check() itself


def test_backoff_schedule() -> None:
    assert [backoff_s(n) for n in range(1, 9)] == [0, 1, 2, 4, 8, 16, 30, 30]


def test_first_crash_restarts_at_once_then_backs_off(qtbot: Any, control: HostControl) -> None:
    codes: list[int] = []
    control.restarted.connect(codes.append)
    control.start()
    first = control.pid
    control.check()
    assert control.restart_count == 1 and codes == [1]
    assert control.pid is not None and control.pid != first
    control.check()  # a second crash within the minute: wait 1 s before the next start
    assert control.restart_count == 2 and control.host is None and codes == [1]
    qtbot.waitUntil(lambda: control.host is not None, timeout=3000)
    assert codes == [1, 1]
    control.stop()
    assert control.host is None


def test_stop_cancels_a_pending_restart(qtbot: Any, control: HostControl) -> None:
    control.start()
    control.check()
    control.check()
    assert control.host is None
    control.stop()
    qtbot.wait(1300)
    assert control.host is None  # the delayed start did not happen after stop()


def test_locked_out_host_is_not_a_crash(qtbot: Any, control: HostControl) -> None:
    FakeHost.code = EXIT_LOCKED
    locked: list[bool] = []
    control.locked.connect(lambda: locked.append(True))
    control.start()
    control.check()
    assert control.is_locked_out and locked == [True]
    assert control.restart_count == 0 and control.host is None
    FakeHost.code = None  # the other host went away: the retry takes over
    control._later.start(0)
    qtbot.waitUntil(lambda: control.host is not None, timeout=2000)
    control.check()
    assert not control.is_locked_out
    control.stop()


APP = """
import sys, time
from pathlib import Path
from desktop.qt import QCoreApplication
from desktop.hostcontrol import HostControl
app = QCoreApplication([])
control = HostControl(Path(sys.argv[1]))
control.start()
print(control.pid, flush=True)
time.sleep(120)
"""


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_host_ends_when_the_app_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed app leaves no orphan worker host holding the library's lock."""
    from engine.library import Library

    Library(tmp_path / "library").close()
    app = subprocess.Popen(
        [sys.executable, "-c", APP, str(tmp_path / "library")],
        cwd=REPO,
        env=cli_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert app.stdout is not None
    host_pid = int(app.stdout.readline())
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "library" / "host.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not gone(host_pid)
        assert "engine.cli" in " ".join(psutil.Process(host_pid).cmdline())
        os.kill(app.pid, signal.SIGKILL)
        app.wait()
        deadline = time.monotonic() + 15
        while not gone(host_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert gone(host_pid)
    finally:
        if not gone(host_pid):
            os.kill(host_pid, signal.SIGKILL)
        if app.poll() is None:
            app.kill()
