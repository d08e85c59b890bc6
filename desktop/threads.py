"""Run a function off the GUI thread; its result or error comes back on the GUI thread.

Like Picard's `util/thread.py`: a pool, and a relay object living on the GUI
thread whose signal carries the outcome back (a queued connection). Nothing in
the worker touches a widget.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from desktop.qt import QObject, QThreadPool, Signal, Slot

log = logging.getLogger("shoebox.desktop")

T = TypeVar("T")

_pool: QThreadPool | None = None


def task_pool() -> QThreadPool:
    """The pool for background actions (imports, queries); thumbnails have their own."""
    global _pool
    if _pool is None:
        _pool = QThreadPool()
        _pool.setMaxThreadCount(4)
        _pool.setExpiryTimeout(30_000)
    return _pool


class _Relay(QObject):
    """Lives on the GUI thread; its bound slot receives the outcome there (queued)."""

    finished = Signal(object, object)  # (result, exception or None)

    def __init__(
        self,
        on_done: Callable[[Any], None] | None,
        on_error: Callable[[BaseException], None] | None,
    ) -> None:
        super().__init__()
        self._on_done = on_done
        self._on_error = on_error
        self.finished.connect(self.deliver)

    @Slot(object, object)
    def deliver(self, result: Any, error: BaseException | None) -> None:
        _live.discard(self)
        self.deleteLater()
        if error is not None:
            if self._on_error is not None:
                self._on_error(error)
            else:
                log.error("background task failed", exc_info=error)
        elif self._on_done is not None:
            self._on_done(result)


_live: set[_Relay] = set()


def run_in_thread(
    fn: Callable[[], T],
    on_done: Callable[[T], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    *,
    pool: QThreadPool | None = None,
) -> None:
    """Run `fn()` in `pool`; call `on_done(result)` or `on_error(exc)` on the GUI thread."""
    relay = _Relay(on_done, on_error)
    _live.add(relay)

    def work() -> None:
        try:
            result = fn()
        except BaseException as exc:  # delivered to the GUI thread, never lost
            relay.finished.emit(None, exc)
        else:
            relay.finished.emit(result, None)

    (pool or task_pool()).start(work)


def wait_for_pool(timeout_ms: int = 30_000) -> bool:
    """Block until the background actions finished (at shutdown and in tests)."""
    return _pool.waitForDone(timeout_ms) if _pool is not None else True
