"""Running the worker host as a child process, restarted when it dies.

A native crash in a decoder or model (segfault, OOM kill) takes down only the
child; the front end (CLI `import --wait`, the GUI) restarts it, and recovery
re-runs what it was doing, running suspects one at a time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

EXIT_DISK_FULL = 4  # `shoebox work --until-idle` paused: the library's disk is full
EXIT_LOCKED = 3  # `shoebox work` exit status: another host serves the library


def host_command(library_dir: Path, *args: str) -> list[str]:
    if getattr(sys, "frozen", False):  # PyInstaller bundle: the executable is Shoebox itself
        return [sys.executable, "--library", str(library_dir), "work", *args]
    return [sys.executable, "-m", "engine.cli", "--library", str(library_dir), "work", *args]


class HostProcess:
    """One child `shoebox work` process."""

    def __init__(self, library_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.library_dir = library_dir
        self.args = args
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        # --parent-pid: if we die (even SIGKILL), the host notices and stops gracefully
        # instead of running on and holding the library's lock.
        args = (*self.args, "--parent-pid", str(os.getpid()))
        self.proc = subprocess.Popen(
            host_command(self.library_dir, *args),
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the terminal goes to us; we stop it gracefully
        )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def poll(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def wait(self, timeout: float | None = None) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (graceful: running jobs finish), then SIGKILL after `timeout`."""
        if self.proc is None or self.proc.poll() is not None:
            return self.poll()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def run_until_done(
    library_dir: Path,
    session_id: int | None,
    pending: Callable[[], bool],
    *,
    on_restart: Callable[[int], None] | None = None,
    max_restarts: int = 100,
    env: dict[str, str] | None = None,
) -> int:
    """Run child hosts until no work is pending; returns how many times one crashed.

    Each crash counts an attempt for the jobs it interrupted, so a file that kills
    the host every time ends dead after its attempt limit: the loop is bounded.
    """
    args = ["--until-idle"] + (["--session", str(session_id)] if session_id is not None else [])
    crashes = 0
    while True:
        host = HostProcess(library_dir, *args, env=env)
        host.start()
        try:
            code = host.wait()
        except BaseException:
            host.stop()
            raise
        if code == 0:
            return crashes
        if code == EXIT_DISK_FULL:  # not a crash: nothing goes on until there is room
            from engine.diskspace import DiskFullError, full_message, library_full

            raise DiskFullError(library_full(library_dir) or full_message(library_dir, None))
        if code == EXIT_LOCKED:  # another host (the app) does the work: just wait for it
            while pending():
                time.sleep(0.2)
            return crashes
        crashes += 1
        if on_restart:
            on_restart(code)
        if crashes > max_restarts:
            raise RuntimeError(f"the worker host crashed {crashes} times; giving up")
        time.sleep(min(0.1 * crashes, 2.0))
