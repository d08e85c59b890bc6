"""The worker host as a child process of the app, restarted when it dies.

A native crash in a decoder or a model takes down only the child. A timer polls
it; when it exits without being asked to, the app says so briefly and starts a
new one, whose recovery re-runs what the old one was doing.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from desktop.qt import QObject, QTimer, Signal
from engine.jobs.supervisor import EXIT_LOCKED, HostProcess

log = logging.getLogger("shoebox.desktop")

POLL_MS = 500
LOCKED_RETRY_S = 5.0
CRASH_WINDOW_S = 60.0
MAX_BACKOFF_S = 30.0


class HostControl(QObject):
    """Starts, watches and stops one `shoebox work` child for a library.

    Signals: `restarted(exit_code)` after an unexpected exit and restart;
    `locked()` when another host already serves the library (the app then just
    watches the ledger and tries again every few seconds).
    """

    restarted = Signal(int)
    locked = Signal()
    started = Signal(int)  # pid

    def __init__(
        self,
        library_dir: Path,
        parent: QObject | None = None,
        *,
        env: dict[str, str] | None = None,
        poll_ms: int = POLL_MS,
    ) -> None:
        super().__init__(parent)
        self.library_dir = library_dir
        self.env = env
        self.host: HostProcess | None = None
        self.restart_count = 0
        self.last_exit_code: int | None = None
        self._locked_since: float | None = None
        self._crashes: list[float] = []  # monotonic times of recent unexpected exits
        self._stopped = True
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self.check)
        self._later = QTimer(self)
        self._later.setSingleShot(True)
        self._later.timeout.connect(self._start_later)

    @property
    def pid(self) -> int | None:
        return self.host.pid if self.host is not None else None

    @property
    def running(self) -> bool:
        return self.host is not None and self.host.poll() is None

    @property
    def is_locked_out(self) -> bool:
        return self._locked_since is not None

    def start(self) -> None:
        self._stopped = False
        if self.running:
            return
        self.host = HostProcess(self.library_dir, env=self.env)
        self.host.start()
        log.info("worker host started, pid %s", self.host.pid)
        self._timer.start()
        if self.host.pid is not None:
            self.started.emit(self.host.pid)

    def stop(self, timeout: float = 30.0) -> int | None:
        """Graceful stop (SIGTERM: running jobs finish), then SIGKILL after `timeout`."""
        self._timer.stop()
        self._later.stop()
        self._stopped = True
        self._locked_since = None
        if self.host is None:
            return None
        code = self.host.stop(timeout)
        self.host = None
        return code

    def restart(self) -> None:
        """Stop and start again (after settings change)."""
        self.stop()
        self.start()

    def check(self) -> None:
        """Called by the timer: restart the child if it exited on its own."""
        if self.host is None:
            return
        code = self.host.poll()
        if code is None:
            if self._locked_since is not None:
                self._locked_since = None
            return
        self.last_exit_code = code
        if code == EXIT_LOCKED:
            # Another host (a CLI `import --wait`, another window) serves the library.
            now = time.monotonic()
            if self._locked_since is None:
                self._locked_since = now
                self.locked.emit()
            self.host = None
            self._timer.stop()
            self._later.start(int(LOCKED_RETRY_S * 1000))
            return
        log.warning("worker host exited unexpectedly with status %s; restarting", code)
        self.restart_count += 1
        now = time.monotonic()
        self._crashes = [t for t in self._crashes if now - t < CRASH_WINDOW_S] + [now]
        self.host = None
        delay = backoff_s(len(self._crashes))
        if delay <= 0:
            self._start_after_crash()
        else:  # crashing again and again (a broken install?): do not spin
            self._timer.stop()
            self._later.start(int(delay * 1000))

    def _start_after_crash(self) -> None:
        self.host = HostProcess(self.library_dir, env=self.env)
        self.host.start()
        self._timer.start()
        self.restarted.emit(self.last_exit_code if self.last_exit_code is not None else -1)

    def _start_later(self) -> None:
        """The delayed start: after a lock-out, or after repeated crashes."""
        if self.host is not None or self._stopped:
            return
        if self._locked_since is not None:
            self.start()
        else:
            self._start_after_crash()


def backoff_s(recent_crashes: int) -> float:
    """No wait after the first crash in a while; then 1, 2, 4 … up to 30 seconds."""
    if recent_crashes <= 1:
        return 0.0
    return float(min(2 ** (recent_crashes - 2), MAX_BACKOFF_S))
