"""Thumbnails loaded off the GUI thread and kept in an LRU cache.

Workers decode JPEG files into `QImage` (safe off the GUI thread; `QPixmap` is
not), scaled to the cell; the GUI thread turns them into pixmaps once. Requests
are served newest first, so the rows on screen now win over rows scrolled past,
and the backlog is bounded.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path

from desktop.qt import (
    QImage,
    QImageReader,
    QObject,
    QPainter,
    QPainterPath,
    QPixmap,
    QRectF,
    QSize,
    Qt,
    QThreadPool,
    QTimer,
    Signal,
    Slot,
)

MAX_BACKLOG = 400
CORNER_RADIUS = 4.0
# Decoded thumbnails become pixmaps on the GUI thread at most this long per event-loop
# turn, the rest after the next paint: a fast scroll finishes ~100 decodes while one
# frame paints, and delivering them all at once took 25–48 ms (bench/ui_latency.py).
DELIVERY_BUDGET_S = 0.004


def rounded(image: QImage, radius: float) -> QImage:
    """The image with transparent rounded corners (done once, in the worker, so painting
    a cell is a plain blit)."""
    out = QImage(image.size(), QImage.Format.Format_ARGB32_Premultiplied)
    out.fill(Qt.GlobalColor.transparent)
    painter = QPainter(out)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    path = QPainterPath()
    path.addRoundedRect(QRectF(out.rect()), radius, radius)
    painter.setClipPath(path)
    painter.drawImage(0, 0, image)
    painter.end()
    return out


DECODER_NICENESS = 5  # above the GUI thread's, below the worker host's (10)


def _yield_to_the_gui_thread() -> None:
    """Lower this decoder thread's CPU priority (Linux niceness is per thread): on two
    cores it kept one busy during a fast scroll, competing with the GUI thread."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            tid = threading.get_native_id()
            if os.getpriority(os.PRIO_PROCESS, tid) < DECODER_NICENESS:
                os.setpriority(os.PRIO_PROCESS, tid, DECODER_NICENESS)


class ThumbnailCache(QObject):
    """`pixmap(item_id, relpath)` returns a cached pixmap or None and schedules a load;
    `loaded(item_id)` fires on the GUI thread when it is ready."""

    loaded = Signal(int)
    _decoded = Signal()  # worker -> GUI thread (queued): results wait in `_ready`

    def __init__(
        self,
        library_dir: Path,
        size: QSize,
        parent: QObject | None = None,
        *,
        capacity: int = 1000,  # ~100 KB each: about 100 MB at most
        threads: int | None = None,
    ) -> None:
        super().__init__(parent)
        self.library_dir = library_dir
        self.size = size
        self.capacity = capacity
        self._cache: OrderedDict[tuple[int, str], QPixmap] = OrderedDict()
        self._failed: set[tuple[int, str]] = set()
        self._lock = threading.Lock()
        self._backlog: OrderedDict[tuple[int, str], None] = OrderedDict()  # guarded by _lock
        self._in_flight: set[tuple[int, str]] = set()  # GUI thread only
        self._active = 0  # guarded by _lock
        self._pool = QThreadPool(self)
        # Leave a core to the GUI thread: decoding on every core made scrolling stutter.
        threads = threads or max(1, min(2, (os.cpu_count() or 2) - 1))
        self._pool.setMaxThreadCount(threads)
        self._threads = threads
        self._closed = False
        # Decoded, not yet delivered (guarded by _lock); one queued wake-up per batch.
        self._ready: deque[tuple[tuple[int, str], QImage | None]] = deque()
        self._wake_posted = False  # guarded by _lock
        self._decoded.connect(self._deliver_ready)
        self.loads = 0  # decoded images (for tests and benchmarks)

    def pixmap(self, item_id: int, relpath: str) -> QPixmap | None:
        key = (item_id, relpath)
        pix = self._cache.get(key)
        if pix is not None:
            self._cache.move_to_end(key)
            return pix
        if key not in self._in_flight and key not in self._failed and not self._closed:
            self._request(key)
        return None

    def _request(self, key: tuple[int, str]) -> None:
        self._in_flight.add(key)
        start_worker = False
        with self._lock:
            self._backlog[key] = None
            self._backlog.move_to_end(key)
            while len(self._backlog) > MAX_BACKLOG:  # scrolled far past: forget the oldest
                dropped, _ = self._backlog.popitem(last=False)
                self._in_flight.discard(dropped)
            if self._active < self._threads:
                self._active += 1
                start_worker = True
        if start_worker:
            self._pool.start(self._work)

    def _work(self) -> None:
        _yield_to_the_gui_thread()
        while True:
            with self._lock:
                if not self._backlog or self._closed:
                    self._active -= 1
                    return
                key, _ = self._backlog.popitem(last=True)  # newest first
            image = self._decode(key[1])
            with self._lock:
                self._ready.append((key, image))
                wake = not self._wake_posted
                self._wake_posted = True
            if wake:
                self._decoded.emit()

    def _decode(self, relpath: str) -> QImage | None:
        reader = QImageReader(str(self.library_dir / relpath))
        reader.setAutoTransform(True)
        src = reader.size()
        if src.isValid():
            reader.setScaledSize(src.scaled(self.size, Qt.AspectRatioMode.KeepAspectRatio))
        image = reader.read()
        return None if image.isNull() else rounded(image, CORNER_RADIUS)

    @Slot()
    def _deliver_ready(self) -> None:
        """Deliver decoded thumbnails for DELIVERY_BUDGET_S, then yield to painting."""
        deadline = time.perf_counter() + DELIVERY_BUDGET_S
        while True:
            with self._lock:
                if not self._ready:
                    self._wake_posted = False
                    return
                key, image = self._ready.popleft()
            self._on_decoded(key, image)
            if time.perf_counter() >= deadline:
                QTimer.singleShot(0, self, self._deliver_ready)  # wake stays posted
                return

    def _on_decoded(self, key: tuple[int, str], image: QImage | None) -> None:
        item_id = key[0]
        self._in_flight.discard(key)
        if image is None:
            self._failed.add(key)
            return
        self.loads += 1
        self._cache[key] = QPixmap.fromImage(image)
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        self.loaded.emit(item_id)

    def clear(self) -> None:
        self._cache.clear()
        self._failed.clear()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            self._backlog.clear()
        self._pool.waitForDone(5000)
