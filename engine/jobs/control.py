"""Control of one running job: progress within it, cooperative cancellation, deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from engine.errors import ShoeboxError


class JobInterrupted(ShoeboxError):
    """The job must stop now; `why` says what the host does with it."""

    def __init__(self, why: str, message: str) -> None:
        super().__init__(message)
        self.why = why  # stopping | cancelled | timeout


ProgressSink = Callable[[int, int | None, str], None]


class JobControl:
    """Shared by the host (which sets the flags) and the stage (which checks them)."""

    def __init__(
        self,
        *,
        timeout_s: float | None = None,
        host_stopping: threading.Event | None = None,
        on_progress: ProgressSink | None = None,
        progress_interval_s: float = 0.25,
    ) -> None:
        self.started = time.monotonic()
        self.timeout_s = timeout_s
        self.deadline = None if timeout_s is None else self.started + timeout_s
        self._host_stopping = host_stopping or threading.Event()
        self._cancelled = threading.Event()
        self._on_progress = on_progress
        self._interval = progress_interval_s
        self._last_report = 0.0
        self.last_progress: tuple[int, int | None, str] | None = None

    def cancel(self) -> None:
        self._cancelled.set()

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def interruption(self) -> JobInterrupted | None:
        if self._cancelled.is_set():
            return JobInterrupted("cancelled", "Cancelled.")
        if self.expired():
            return JobInterrupted("timeout", f"Timed out after {self.timeout_s:g} s.")
        if self._host_stopping.is_set():
            return JobInterrupted("stopping", "Shoebox is stopping; the job will run again.")
        return None

    def check(self) -> None:
        exc = self.interruption()
        if exc is not None:
            raise exc

    def should_stop(self) -> bool:
        return self.interruption() is not None

    def progress(self, done: int, total: int | None = None, note: str = "") -> None:
        self.last_progress = (done, total, note)
        now = time.monotonic()
        final = total is not None and done >= total
        if self._on_progress is not None and (final or now - self._last_report >= self._interval):
            self._last_report = now
            self._on_progress(done, total, note)
