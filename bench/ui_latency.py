"""GUI responsiveness with the real main window: during a big import, and on a huge library.

1. Lateness during import. The main window (as `shoebox` opens it: qasync event loop,
   the worker host as a child process with 2 import workers, the 250 ms poll, the jobs
   panel open) imports N 12-MP JPEGs (default 500). A GUI-thread timer set to fire
   every 10 ms records how late each tick is; the figures are its p99 and max.
2. A 100,000-item library (rows inserted with SQL, every item sharing one small
   thumbnail file): the time from showing the window to the first screen of thumbnails
   painted (`first_screen_s`; creating the window, which opens the library, is
   `window_create_s`), then a scroll from top to bottom, half a screen per frame,
   timing each frame (scroll, layout, paint, thumbnail deliveries, polls).

3. The same 100,000-item library scrolled down and up while the N photos are imported
   into it with `[background] mode = full` (every worker on), until the import ends.

Prints progress lines, then one JSON object as the last line: `lateness_p99_ms`,
`lateness_max_ms`, `first_screen_s`, `scroll_frame_p99_ms`,
`import_scroll_frame_p99_ms` (+ details). Targets: lateness p99 < 50 ms, max < 200 ms;
first screen < 1 s; frame p99 < 33 ms, also during the import.

    .venv/bin/python bench/ui_latency.py                 # the full run
    .venv/bin/python bench/ui_latency.py --count 40 --items 20000   # a quick one

Runs offscreen unless a display is set (`xvfb-run` for a real X server).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import OUT, REPO, cpu_count, emit, peak_rss_mb, percentile

if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")

import qasync

from desktop.app import make_app
from desktop.mainwindow import MainWindow
from desktop.qt import (
    QApplication,
    QEvent,
    QModelIndex,
    QObject,
    QPixmap,
    QPoint,
    QSettings,
    Qt,
    QTimer,
)
from engine.library import Library
from engine.store.db import next_seq, suspended_trigger

TICK_MS = 10


def host_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("SHOEBOX_FAULT_CRASH_PATH", None)
    return env


def window_state(workdir: Path, name: str) -> QSettings:
    """Window geometry/state in a scratch file, not the user's settings."""
    return QSettings(str(workdir / f"{name}.ini"), QSettings.Format.IniFormat)


# -- 1. lateness while importing ------------------------------------------------------------


def photo_folder(count: int) -> Path:
    """`count` 12-MP JPEGs under bench/out (made once, shared with import_cpu.py)."""
    try:
        sys.path.insert(0, str(REPO))
        from tests.corpus import write_large_jpegs

        files = write_large_jpegs(OUT / "jpeg12mp", count)
    except ImportError:  # pragma: no cover - the corpus module ships with the tests
        files = _pillow_jpegs(OUT / "jpeg12mp-pillow", count)
    sub = OUT / f"jpeg12mp-{count}"
    if not sub.exists() or len(list(sub.iterdir())) != count:
        shutil.rmtree(sub, ignore_errors=True)
        sub.mkdir(parents=True)
        for path in files[:count]:
            (sub / path.name).symlink_to(path.resolve())
    return sub


def _pillow_jpegs(root: Path, count: int) -> list[Path]:
    from PIL import Image, ImageDraw

    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        path = root / f"photo_{i:05d}.jpg"
        out.append(path)
        if path.is_file():
            continue
        img = Image.radial_gradient("L").resize((4000, 3000)).convert("RGB")
        ImageDraw.Draw(img).rectangle((i % 3000, 100, i % 3000 + 500, 900), fill=(i % 256, 90, 30))
        img.save(path, quality=90)
    return out


STALL_MS = 0  # --stall-ms


class StallWatch:
    """`--stall-ms`: a thread that prints where the GUI thread is once the beat it is
    given (a perf_counter reading the GUI thread updates) is that late. The stack is
    Python's: a stall inside Qt shows as `exec()`."""

    def __init__(self, last_beat: Callable[[], float]) -> None:
        self._last_beat = last_beat
        self._stopped = threading.Event()
        if STALL_MS > 0:
            threading.Thread(target=self._watch, daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def _watch(self) -> None:
        main = threading.main_thread().ident
        reported = 0.0
        while not self._stopped.wait(STALL_MS / 4000):
            last = self._last_beat()
            if last != reported and (time.perf_counter() - last) * 1000 > STALL_MS:
                reported = last
                frame = sys._current_frames().get(main or 0)
                stack = "".join(traceback.format_stack(frame)[-14:]) if frame else "?"
                print(f"-- GUI thread stalled > {STALL_MS} ms:\n{stack}", flush=True)


class Ticker(QObject):
    """A GUI-thread timer every TICK_MS; records how late each tick fired."""

    def __init__(self) -> None:
        super().__init__()
        self.lateness_ms: list[float] = []
        self._last = 0.0
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()
        self._stalls = StallWatch(lambda: self._last)

    def stop(self) -> None:
        self._timer.stop()
        self._stalls.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.lateness_ms.append(max(0.0, (now - self._last) * 1000 - TICK_MS))
        self._last = now


async def lateness_during_import(workdir: Path, folder: Path, jobs_panel: bool) -> dict[str, Any]:
    lib_dir = workdir / "import-library"
    with Library(lib_dir) as lib:
        lib.settings.workers.import_ = 2
        lib.save_settings()
    window = MainWindow(lib_dir, state=window_state(workdir, "import"), host_env=host_env())
    window.resize(1400, 900)
    window.show()
    if jobs_panel:
        window.jobs_dock.show()
    library = window.library
    assert library is not None and window.host is not None
    await asyncio.sleep(1.5)  # the child host starts (imports Huey, Pillow)
    ticker = Ticker()
    ticker.start()
    start = time.perf_counter()
    op = window.import_paths([str(folder)])
    assert op is not None
    first_item_s = None
    total = len(list(folder.iterdir()))
    while True:
        await asyncio.sleep(0.1)
        if first_item_s is None and window.grid_model.rowCount() > 0:
            first_item_s = time.perf_counter() - start
        if op.finished and not library.has_pending_work():
            break
        if time.perf_counter() - start > 3600:
            raise TimeoutError("the import did not finish within an hour")
    elapsed = time.perf_counter() - start
    ticker.stop()
    status = library.status()
    lanes = status["lanes"]["import"]
    host_restarts = window.host.restart_count
    window.close()
    window.close_library()
    window.deleteLater()
    lateness = ticker.lateness_ms
    print(
        f"import: {total} files in {elapsed:.1f}s; lateness p50 {percentile(lateness, 50):.1f} ms, "
        f"p99 {percentile(lateness, 99):.1f} ms, max {max(lateness):.1f} ms "
        f"over {len(lateness)} ticks",
        flush=True,
    )
    return {
        "import_files": total,
        "import_s": round(elapsed, 2),
        "import_jobs_done": lanes["done"],
        "import_jobs_failed": lanes["failed"] + lanes["dead"],
        "import_first_item_s": round(first_item_s or float("nan"), 3),
        "host_restarts": host_restarts,
        "ticks": len(lateness),
        "lateness_p50_ms": round(percentile(lateness, 50), 2),
        "lateness_p99_ms": round(percentile(lateness, 99), 2),
        "lateness_max_ms": round(max(lateness), 2),
    }


# -- 2. a huge library: first screen and scrolling ------------------------------------------


def build_big_library(lib_dir: Path, count: int) -> None:
    """`count` processed photos, rows inserted directly; all share one thumbnail file."""
    from PIL import Image, ImageDraw

    with Library(lib_dir) as lib:
        thumb_rel = "thumbs/00/shared-256.jpg"
        thumb = lib.root / thumb_rel
        thumb.parent.mkdir(parents=True, exist_ok=True)
        img = Image.linear_gradient("L").resize((256, 192)).convert("RGB")
        draw = ImageDraw.Draw(img)
        draw.ellipse((70, 40, 190, 160), fill=(230, 160, 60))
        draw.rectangle((0, 150, 256, 192), fill=(40, 110, 70))
        img.save(thumb, quality=85)
        now = time.time()
        with lib.catalog.write() as conn:
            seq = next_seq(conn)
            # Per-row triggers (missing flag) are the slow part of bulk inserts: the rows
            # are written consistent by hand instead.
            with suspended_trigger(conn, "paths_missing_insert"):
                conn.executemany(
                    """INSERT INTO items (id, hash, kind, format, size, width, height, taken_at,
                                          taken_at_source, added_at, session_id, seq)
                       VALUES (?, ?, 'photo', 'jpeg', 3000000, 4000, 3000, ?, 'exif-original',
                               ?, 1, ?)""",
                    (
                        (
                            i,
                            f"{i:064x}",
                            f"20{10 + i % 15:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}T"
                            f"{i % 24:02d}:{i % 60:02d}:00",
                            now,
                            seq,
                        )
                        for i in range(1, count + 1)
                    ),
                )
                conn.executemany(
                    """INSERT INTO paths (raw, display, item_id, size, mtime_ns, session_id,
                                          first_seen, last_seen)
                       VALUES (?, ?, ?, 3000000, 0, 1, ?, ?)""",
                    (
                        (
                            f"/photos/{i // 1000:03d}/IMG_{i:06d}.jpg".encode(),
                            f"/photos/{i // 1000:03d}/IMG_{i:06d}.jpg",
                            i,
                            now,
                            now,
                        )
                        for i in range(1, count + 1)
                    ),
                )
            conn.execute(
                """INSERT INTO sessions (id, roots, state, started_at, files_seen, items_new, seq)
                   VALUES (1, '["/photos"]', 'processing', ?, ?, ?, ?)""",
                (now - 3600, count, count, seq),
            )
            for stage in ("metadata", "thumbnail"):
                conn.executemany(
                    """INSERT INTO jobs (item_id, stage, version, lane, session_id, state,
                                         attempts, max_attempts, created_at, started_at,
                                         finished_at, seq)
                       VALUES (?, ?, '1', 'import', 1, 'done', 1, 3, ?, ?, ?, ?)""",
                    (
                        (i, stage, now - 3600, now - 3000, now - 3000, seq)
                        for i in range(1, count + 1)
                    ),
                )
            conn.executemany(
                """INSERT INTO thumbnails (item_id, size, path, width, height)
                   VALUES (?, 'thumb', ?, 256, 192)""",
                ((i, thumb_rel) for i in range(1, count + 1)),
            )


class PaintWatch(QObject):
    """Watches the grid's viewport: counts paints, notes when a paint shows every visible
    cell with its thumbnail."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__()
        self.window = window
        self.paints = 0
        self.first_screen: asyncio.Future[float] | None = None
        self.visible_cells = 0

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.paints += 1
            future = self.first_screen
            if future is not None and not future.done() and self.screen_ready():
                # This paint draws them; the zero timer fires once it has finished.
                QTimer.singleShot(
                    0, lambda: future.done() or future.set_result(time.perf_counter())
                )
        return False

    def visible_indexes(self) -> list[QModelIndex]:
        grid = self.window.grid
        model = grid.model()
        rect = grid.viewport().rect()
        first = grid.indexAt(QPoint(rect.left() + 20, rect.top() + 20))
        if not first.isValid():
            return []
        out = []
        for row in range(first.row(), model.rowCount()):
            index = model.index(row, 0)
            cell = grid.visualRect(index)
            if cell.top() > rect.bottom():
                break
            if cell.intersects(rect):
                out.append(index)
        return out

    def screen_ready(self) -> bool:
        indexes = self.visible_indexes()
        self.visible_cells = len(indexes)
        return bool(indexes) and all(
            isinstance(i.data(Qt.ItemDataRole.DecorationRole), QPixmap) for i in indexes
        )


def last_row_visible(window: MainWindow) -> bool:
    grid = window.grid
    rows = grid.model().rowCount()
    rect = grid.viewport().rect()
    last = grid.visualRect(grid.model().index(rows - 1, 0))
    return rows > 0 and last.intersects(rect)


async def settle(window: MainWindow, quiet_s: float = 0.5, timeout: float = 10.0) -> None:
    """Wait until the grid's scroll range has stayed the same for `quiet_s`."""
    bar = window.grid.verticalScrollBar()
    deadline = time.monotonic() + timeout
    last, since = bar.maximum(), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if bar.maximum() != last:
            last, since = bar.maximum(), time.monotonic()
        elif time.monotonic() - since >= quiet_s and last > 0:
            return


async def big_library(workdir: Path, count: int, step_px: int) -> dict[str, Any]:
    lib_dir = workdir / "big-library"
    t = time.perf_counter()
    build_big_library(lib_dir, count)
    print(f"library: {count:,} items written in {time.perf_counter() - t:.1f}s", flush=True)
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    app.processEvents()
    loop = asyncio.get_running_loop()

    state = window_state(workdir, "big")
    start = time.perf_counter()
    window = MainWindow(lib_dir, state=state, host_env=host_env())
    watch = PaintWatch(window)
    watch.first_screen = loop.create_future()
    window.grid.viewport().installEventFilter(watch)
    window.resize(1400, 900)
    shown = time.perf_counter()
    window.show()
    try:
        painted = await asyncio.wait_for(watch.first_screen, timeout=60)
    except TimeoutError:
        painted = float("nan")
    first_screen_s = painted - start
    print(
        f"first screen: {first_screen_s:.3f}s from creating the window "
        f"({painted - shown:.3f}s from show), {watch.visible_cells} cells",
        flush=True,
    )

    # Scroll from top to bottom: each zero-timer callback moves the view, and the event
    # loop lays out, paints and delivers thumbnails before the next one. A frame is the
    # time between two callbacks.
    grid = window.grid
    bar = grid.verticalScrollBar()
    # A real X server settles the window's geometry after showing it; the view lays out
    # again. Scroll only once the range is that of every row.
    await settle(window)
    step = step_px or max(1, grid.viewport().height() // 2)
    print(
        f"scroll range: {bar.maximum():,}px for {grid.model().rowCount():,} rows, "
        f"viewport {grid.viewport().width()}x{grid.viewport().height()}",
        flush=True,
    )
    frames_ms: list[float] = []
    # What each frame did besides painting: row pages fetched, thumbnails delivered, GCs.
    causes: list[tuple[int, int, int]] = []
    counters = [0, 0, 0]
    gcs = [0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info.get("generation") == 2:
            gcs[0] += 1

    gc.callbacks.append(on_gc)

    def snapshot() -> tuple[int, int, int]:
        pages = int(getattr(window.grid_model, "pages_fetched", 0))
        loads = window.thumbs.loads if window.thumbs is not None else 0
        return pages, loads, gcs[0]

    counters[:] = snapshot()
    done: asyncio.Future[None] = loop.create_future()
    paints_before = watch.paints
    last = [time.perf_counter()]
    timer = QTimer()
    timer.setInterval(0)

    def frame() -> None:
        now = time.perf_counter()
        current = snapshot()
        if bar.value() > 0 or frames_ms:
            frames_ms.append((now - last[0]) * 1000)
            causes.append(
                (current[0] - counters[0], current[1] - counters[1], current[2] - counters[2])
            )
        counters[:] = current
        last[0] = now
        if len(frames_ms) % 1000 == 999:
            print(f"  scrolled {bar.value():,} of {bar.maximum():,}px", flush=True)
        at_end[0] = at_end[0] + 1 if bar.value() >= bar.maximum() else 0
        if at_end[0] and (last_row_visible(window) or at_end[0] > 20):
            reached_last[0] = last_row_visible(window)
            timer.stop()
            if not done.done():
                done.set_result(None)
            return
        bar.setValue(min(bar.maximum(), bar.value() + step))

    at_end, reached_last = [0], [False]
    timer.timeout.connect(frame)
    scroll_start = time.perf_counter()
    timer.start()
    await done
    scroll_s = time.perf_counter() - scroll_start
    gc.callbacks.remove(on_gc)
    slow = [i for i, ms in enumerate(frames_ms) if ms > 33]
    plain = [ms for ms, c in zip(frames_ms, causes, strict=True) if c[0] == 0 and c[2] == 0]
    breakdown = {
        "scroll_frames_over_33ms": len(slow),
        "scroll_slow_frames_with_page_fetch": sum(1 for i in slow if causes[i][0]),
        "scroll_slow_frames_with_gc": sum(1 for i in slow if causes[i][2]),
        "scroll_frame_p99_ms_without_fetch_or_gc": round(percentile(plain, 99), 2),
        "scroll_thumbnails_per_frame_p50": percentile([float(c[1]) for c in causes], 50),
    }
    print(f"scroll frames: {breakdown}", flush=True)
    paints = watch.paints - paints_before
    thumbs_loaded = window.thumbs.loads if window.thumbs is not None else 0
    pages = getattr(window.grid_model, "pages_fetched", None)
    print(
        f"scroll: {len(frames_ms)} frames of {step}px in {scroll_s:.1f}s, {paints} paints; "
        f"frame p50 {percentile(frames_ms, 50):.1f} ms, p99 {percentile(frames_ms, 99):.1f} ms, "
        f"max {max(frames_ms):.1f} ms",
        flush=True,
    )
    window.close()
    window.close_library()
    window.deleteLater()
    return {
        "items": count,
        # As the target is stated: from showing the window. Creating it (opening the
        # library, reading the id list) comes before and is reported beside it.
        "first_screen_s": round(painted - shown, 3),
        "first_screen_from_create_s": round(first_screen_s, 3),
        "window_create_s": round(shown - start, 3),
        "first_screen_cells": watch.visible_cells,
        "scroll_step_px": step,
        "scroll_range_px": bar.maximum(),
        "scroll_reached_last_row": reached_last[0],
        "scroll_frames": len(frames_ms),
        "scroll_paints": paints,
        "scroll_s": round(scroll_s, 2),
        "scroll_frame_p50_ms": round(percentile(frames_ms, 50), 2),
        "scroll_frame_p99_ms": round(percentile(frames_ms, 99), 2),
        "scroll_frame_max_ms": round(max(frames_ms), 2),
        "scroll_thumbnail_loads": thumbs_loaded,
        "scroll_row_pages_fetched": pages,
        **breakdown,
    }


# -- 3. scrolling the huge library while an import runs at full speed ----------------------


async def scroll_during_import(workdir: Path, folder: Path, step_px: int) -> dict[str, Any]:
    """The big library again, `[background] mode = full`: the folder's photos are imported
    (the worker host as a child process, every worker on) while the grid scrolls down
    and up, half a screen a frame, until the import has finished."""
    lib_dir = workdir / "big-library"
    with Library(lib_dir) as lib:
        lib.settings.background.mode = "full"
        lib.save_settings()
    window = MainWindow(lib_dir, state=window_state(workdir, "big-import"), host_env=host_env())
    window.resize(1400, 900)
    window.show()
    library = window.library
    assert library is not None
    await settle(window)
    await asyncio.sleep(1.5)  # the child host starts
    grid = window.grid
    bar = grid.verticalScrollBar()
    step = step_px or max(1, grid.viewport().height() // 2)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    frames_ms: list[float] = []
    direction = [1]
    last = [time.perf_counter()]
    op = window.import_paths([str(folder)])
    assert op is not None
    start = time.perf_counter()
    checked = [start]

    cataloguing_ms: list[float] = []  # frames while the files are catalogued (in-process)

    def frame() -> None:
        now = time.perf_counter()
        frames_ms.append((now - last[0]) * 1000)
        if not op.finished:
            cataloguing_ms.append(frames_ms[-1])
        last[0] = now
        if now - checked[0] > 0.5:  # not every frame: the check reads the ledger
            checked[0] = now
            # This session's work only: the big library's re-index jobs for stages added
            # since it was written wait for sources that are not there.
            if op.finished and not library.has_pending_work(op.session_id):
                timer.stop()
                if not done.done():
                    done.set_result(None)
                return
        value = bar.value() + direction[0] * step
        if value >= bar.maximum() or value <= 0:
            direction[0] = -direction[0]
        bar.setValue(max(0, min(bar.maximum(), value)))

    timer = QTimer()
    timer.setInterval(0)
    timer.timeout.connect(frame)
    stalls = StallWatch(lambda: last[0])
    timer.start()
    await asyncio.wait_for(done, timeout=3600)
    stalls.stop()
    elapsed = time.perf_counter() - start
    lanes = library.status()["lanes"]["import"]
    window.close()
    window.close_library()
    window.deleteLater()
    print(
        f"scroll during import: {len(frames_ms)} frames in {elapsed:.1f}s; frame p50 "
        f"{percentile(frames_ms, 50):.1f} ms, p99 {percentile(frames_ms, 99):.1f} ms, "
        f"max {max(frames_ms):.1f} ms",
        flush=True,
    )
    return {
        "import_scroll_files": len(list(folder.iterdir())),
        "import_scroll_s": round(elapsed, 2),
        "import_scroll_jobs_done": lanes["done"],
        "import_scroll_frames": len(frames_ms),
        "import_scroll_frame_p50_ms": round(percentile(frames_ms, 50), 2),
        "import_scroll_frame_p99_ms": round(percentile(frames_ms, 99), 2),
        "import_scroll_frame_max_ms": round(max(frames_ms), 2),
        "import_scroll_cataloguing_frames": len(cataloguing_ms),
        "import_scroll_cataloguing_p99_ms": round(percentile(cataloguing_ms or [0.0], 99), 2),
        "import_scroll_after_cataloguing_p99_ms": round(
            percentile(frames_ms[len(cataloguing_ms) :] or [0.0], 99), 2
        ),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "benchmark": "ui_latency",
        "cpus": cpu_count(),
        "platform": QApplication.platformName(),
        "tick_ms": TICK_MS,
    }
    with tempfile.TemporaryDirectory(prefix="shoebox-ui-") as tmp:
        workdir = Path(tmp)
        phases = {int(p) for p in args.phases.split(",") if p.strip()}
        if args.count > 0 and 1 in phases:
            folder = photo_folder(args.count)
            result.update(await lateness_during_import(workdir, folder, not args.no_jobs_panel))
        if args.items > 0 and phases & {2, 3}:
            result.update(await big_library(workdir, args.items, args.scroll_step))
            if args.count > 0 and 3 in phases:
                folder = photo_folder(args.count)
                result.update(await scroll_during_import(workdir, folder, args.scroll_step))
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=500, help="12-MP JPEGs to import (0: skip)")
    parser.add_argument("--items", type=int, default=100_000, help="items in the big library")
    parser.add_argument("--scroll-step", type=int, default=0, help="pixels per frame (0: half)")
    parser.add_argument(
        "--no-jobs-panel", action="store_true", help="keep the jobs panel closed while importing"
    )
    parser.add_argument("--phases", default="1,2,3", help="which of the three to run")
    parser.add_argument(
        "--stall-ms", type=int, default=0, help="print the GUI thread's stack when it stalls"
    )
    args = parser.parse_args()
    global STALL_MS
    STALL_MS = args.stall_ms
    app = make_app(["shoebox-bench"])
    app.setQuitOnLastWindowClosed(False)
    with asyncio.Runner(loop_factory=qasync.QEventLoop) as runner:
        result = runner.run(run(args))
    emit(result)


if __name__ == "__main__":
    main()
