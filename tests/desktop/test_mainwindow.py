"""The main window end to end: drop a folder, watch the badges, survive a dead worker."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from desktop.itemmodels.grid import RowRole
from desktop.mainwindow import HOST_DIED, MainWindow
from desktop.qt import (
    QApplication,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
    QMimeData,
    QPointF,
    QPushButton,
    Qt,
    QUrl,
)
from desktop.views.grid import badge_for
from engine.browse import GridRow


def rows(window: MainWindow) -> list[GridRow]:
    model = window.grid_model
    out = [model.index(r, 0).data(RowRole) for r in range(model.rowCount())]
    assert all(isinstance(r, GridRow) for r in out)
    return out


def all_done(window: MainWindow, n: int) -> bool:
    window.poll()
    found = rows(window)
    return len(found) == n and all(badge_for(r)[0] == "done" for r in found)


def drop(window: MainWindow, *paths: Path) -> None:
    """Drag the paths over the grid and drop them, as the platform would."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = window.grid.mapTo(window, window.grid.rect().center())
    enter = QDragEnterEvent(
        pos,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    assert window.grid.drop_highlight
    event = QDropEvent(
        QPointF(pos),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, event)
    assert event.isAccepted()
    assert not window.grid.drop_highlight


def test_empty_library_shows_welcome(make_window: Callable[..., MainWindow]) -> None:
    window = make_window(start_host=False)
    assert window.grid_model.rowCount() == 0
    assert window.grid.empty_title == "Drop a folder here"
    assert window.library is not None and (window.library.root / "catalog.db").exists()
    assert not window.grab().isNull()  # paints the welcome
    window.grid.set_drop_highlight(True)
    assert not window.grab().isNull()  # and the drop target
    window.grid.set_drop_highlight(False)


def test_dropped_folder_appears_within_a_second_and_is_processed(
    qtbot: Any, make_window: Callable[..., MainWindow], photos: Callable[..., Path]
) -> None:
    folder = photos(24)
    window = make_window()
    assert window.host is not None and window.host.running
    started = time.monotonic()
    drop(window, folder)
    qtbot.waitUntil(lambda: window.grid_model.rowCount() == 24, timeout=1000)
    appeared = time.monotonic() - started
    assert appeared < 1.0
    names = sorted(r.name for r in rows(window))
    assert names == [f"photo-{i:03d}.jpg" for i in range(24)]

    qtbot.waitUntil(lambda: all_done(window, 24), timeout=60_000)
    # Every cell has its thumbnail file and shows the "done" mark.
    assert all(r.thumb is not None for r in rows(window))
    assert window.library is not None
    status = window.library.status()
    assert status["items"] == 24
    assert status["lanes"]["import"]["done"] == 48  # metadata + thumbnail per item
    qtbot.waitUntil(lambda: window.thumbs is not None and window.thumbs.loads > 0, timeout=5000)


def test_killed_worker_host_is_restarted_and_work_finishes(
    qtbot: Any, make_window: Callable[..., MainWindow], photos: Callable[..., Path]
) -> None:
    folder = photos(30, size=(2400, 1800))
    window = make_window()
    host = window.host
    assert host is not None
    first_pid = host.pid
    assert first_pid is not None
    window.import_paths([str(folder)])
    qtbot.waitUntil(lambda: window.grid_model.rowCount() == 30, timeout=2000)
    # Kill it while it works (some jobs running), like a native crash would.
    assert window.library is not None
    lib = window.library
    qtbot.waitUntil(lambda: lib.status()["lanes"]["import"]["running"] > 0, timeout=20_000)
    os.kill(first_pid, signal.SIGKILL)

    qtbot.waitUntil(lambda: host.restart_count == 1, timeout=5000)
    assert host.pid is not None and host.pid != first_pid
    assert host.last_exit_code == -signal.SIGKILL
    assert window.notice.isVisible()
    assert window.notice.text() == HOST_DIED
    assert HOST_DIED in window.notices

    qtbot.waitUntil(lambda: all_done(window, 30), timeout=120_000)
    assert host.restart_count == 1
    status = lib.status()
    assert status["lanes"]["import"]["done"] == 60
    assert status["lanes"]["import"]["dead"] == 0


def test_failed_item_shows_failed_badge_and_reason_in_detail(
    qtbot: Any, make_window: Callable[..., MainWindow], photos: Callable[..., Path]
) -> None:
    folder = photos(3)
    (folder / "broken.jpg").write_bytes(bytes(range(256)) * 8)  # named as a photo, is not one
    window = make_window()
    window.import_paths([str(folder)])

    def settled() -> bool:
        window.poll()
        found = rows(window)
        return len(found) == 4 and all(r.state in ("done", "failed") for r in found)

    qtbot.waitUntil(settled, timeout=60_000)
    broken = next(r for r in rows(window) if r.name == "broken.jpg")
    assert broken.state == "failed" and badge_for(broken) == ("failed", "Failed")
    assert broken.error

    window.grid.setFocus()
    row = window.grid_model.row_of(broken.id)
    assert row is not None
    window.grid.setCurrentIndex(window.grid_model.index(row, 0))
    qtbot.keyClick(window.grid, Qt.Key.Key_Return)
    assert window.detail.isVisible()
    assert window.detail.detail is not None and window.detail.detail.id == broken.id
    texts = [w.text() for w in window.detail.findChildren(type(window.library_label))]
    assert any(broken.error in t for t in texts)
    assert any(str(folder / "broken.jpg") in t for t in texts)
    opened: list[str] = []
    window.detail.open_folder = opened.append
    buttons = {b.text(): b for b in window.detail.findChildren(QPushButton)}
    qtbot.mouseClick(buttons["Open folder"], Qt.MouseButton.LeftButton)
    assert opened == [str(folder / "broken.jpg")]
    assert "Retry failed steps" in buttons
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert not window.detail.isVisible()


def test_filters_sort_and_search(
    qtbot: Any, make_window: Callable[..., MainWindow], photos: Callable[..., Path]
) -> None:
    folder = photos(6)
    window = make_window(start_host=False)  # nothing processed: every item stays queued
    window.import_paths([str(folder)])
    qtbot.waitUntil(lambda: window.grid_model.rowCount() == 6, timeout=2000)
    assert {r.state for r in rows(window)} == {"queued"}

    window.state_box.setCurrentIndex(window.state_box.findData("done"))
    qtbot.waitUntil(lambda: window.grid_model.rowCount() == 0, timeout=2000)
    assert window.grid.empty_title == "Nothing matches"
    window.state_box.setCurrentIndex(window.state_box.findData("queued"))
    qtbot.waitUntil(lambda: window.grid_model.rowCount() == 6, timeout=2000)

    window.sort_box.setCurrentIndex(window.sort_box.findData("name"))
    qtbot.waitUntil(
        lambda: [r.name for r in rows(window)] == [f"photo-{i:03d}.jpg" for i in range(6)],
        timeout=2000,
    )
    qtbot.keySequence(window, QKeySequence.StandardKey.Find)
    assert window.search.hasFocus()
    qtbot.keyClicks(window.search, "photo-004")
    qtbot.waitUntil(lambda: window.grid_model.rowCount() == 1, timeout=2000)
    assert rows(window)[0].name == "photo-004.jpg"


def test_window_geometry_and_splitter_persist(
    make_window: Callable[..., MainWindow], tmp_path: Path
) -> None:
    window = make_window(start_host=False)
    window.resize(760, 560)  # within the offscreen screen (800 × 600)
    window.splitter.setSizes([300, 700, 0])
    sizes = window.splitter.sizes()
    window.close()
    again = make_window(start_host=False, size=None)
    assert again.splitter.sizes()[0] == sizes[0]
    assert (again.size().width(), again.size().height()) == (760, 560)


def test_settings_dialog_saves_and_restarts_host(
    qtbot: Any, make_window: Callable[..., MainWindow]
) -> None:
    from desktop.dialogs.settings import SettingsDialog
    from engine.config import load_settings

    window = make_window()
    assert window.host is not None and window.library is not None
    first_pid = window.host.pid
    dialog = SettingsDialog(window.library, window)
    dialog.workers["import"].setValue(3)
    dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
    window.apply_settings(dialog)
    saved = load_settings(window.library.root)
    assert saved.workers.import_ == 3 and saved.device == "cpu"
    assert window.host.running and window.host.pid != first_pid
    assert window.host.restart_count == 0  # a requested restart is not a crash


@pytest.mark.parametrize("key", ["Ctrl+J"])
def test_jobs_panel_toggles_with_shortcut(
    qtbot: Any, make_window: Callable[..., MainWindow], key: str
) -> None:
    window = make_window(start_host=False)
    assert window.jobs_panel is not None
    assert not window.jobs_dock.isVisible()
    window.jobs_action.trigger()
    assert window.jobs_dock.isVisible()
    assert window.jobs_action.shortcut() == QKeySequence(key)


def test_standard_shortcuts(qtbot: Any, make_window: Callable[..., MainWindow]) -> None:
    window = make_window(start_host=False)
    expected = {
        window.open_action: "Ctrl+O",
        window.import_action: "Ctrl+I",
        window.quit_action: "Ctrl+Q",
        window.find_action: "Ctrl+F",
        window.refresh_action: "F5",
        window.jobs_action: "Ctrl+J",
        window.new_action: "Ctrl+Shift+N",
    }
    for action, key in expected.items():
        assert QKeySequence(key) in action.shortcuts(), action.text()
    every = [s.toString() for a in window.actions() for s in a.shortcuts()]
    assert len(every) == len(set(every)), "a shortcut is bound twice"


def test_host_waits_politely_when_another_host_holds_the_library(
    qtbot: Any, make_window: Callable[..., MainWindow], tmp_path: Path
) -> None:
    from engine.jobs.supervisor import HostProcess
    from engine.library import Library
    from tests.conftest import cli_env

    library_dir = tmp_path / "library"
    Library(library_dir).close()
    other = HostProcess(library_dir, env=cli_env())
    other.start()
    try:
        time.sleep(1.5)  # let it take the library's host lock
        window = make_window(library_dir)
        host = window.host
        assert host is not None
        qtbot.waitUntil(lambda: host.is_locked_out, timeout=10_000)
        assert host.restart_count == 0  # not a crash: no "stopped unexpectedly" notice
        assert HOST_DIED not in window.notices
        assert "Another Shoebox" in window.notice.text()
    finally:
        other.stop()
    qtbot.waitUntil(lambda: host.running, timeout=15_000)  # takes over once it is free
    qtbot.waitUntil(lambda: not host.is_locked_out, timeout=5000)


def test_the_query_model_loads_once_the_user_pauses_not_while_they_scroll(
    qtbot: Any, make_window: Callable[..., MainWindow], monkeypatch: pytest.MonkeyPatch
) -> None:
    from desktop.operations import search as search_ops
    from desktop.qt import QPoint, QWheelEvent

    loads: list[float] = []
    monkeypatch.setattr(search_ops, "warm_up", lambda library: loads.append(time.monotonic()))
    monkeypatch.setattr(search_ops, "WARM_UP_DELAY_MS", 10)
    monkeypatch.setattr(search_ops, "WARM_UP_RETRY_MS", 50)
    monkeypatch.setattr(search_ops, "WARM_UP_QUIET_S", 2.0)
    window = make_window(start_host=False)
    grid = window.grid.viewport() if hasattr(window.grid, "viewport") else window.grid
    last_scroll = 0.0
    for _ in range(40):  # two seconds of scrolling, a wheel event every 50 ms
        wheel = QWheelEvent(
            QPointF(50, 50),
            QPointF(grid.mapToGlobal(QPoint(50, 50))),
            QPoint(0, 0),
            QPoint(0, -120),
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QApplication.sendEvent(grid, wheel)
        last_scroll = time.monotonic()
        qtbot.wait(50)
    assert loads == []  # not while the user scrolls
    qtbot.waitUntil(lambda: bool(loads), timeout=10_000)
    assert loads[0] - last_scroll >= 2.0 - 0.05  # once they paused
    assert len(loads) == 1


def test_once_the_query_model_is_loaded_what_is_alive_is_frozen_out_of_gc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc
    from concurrent.futures import Future

    from desktop.operations import search as search_ops
    from engine.library import Library

    loaded: Future[bool] = Future()
    with Library(tmp_path / "lib") as library:
        monkeypatch.setattr(library.searcher(), "warm_up", lambda: loaded)
        gc.unfreeze()
        search_ops.warm_up(library)
        assert gc.get_freeze_count() == 0  # not before the model is in
        loaded.set_result(True)
        try:
            assert gc.get_freeze_count() > 1000  # torch's and Qt's objects, among others
        finally:
            gc.unfreeze()


def test_the_timers_poll_refreshes_each_panel_in_a_turn_of_its_own(
    qtbot: Any, make_window: Callable[..., MainWindow]
) -> None:
    from desktop.qt import QTimer

    window = make_window(start_host=False)
    window.poll_timer.stop()
    turns = [0]
    ticker = QTimer(window)
    ticker.setInterval(0)
    ticker.timeout.connect(lambda: turns.__setitem__(0, turns[0] + 1))

    class Recorder:
        def __init__(self) -> None:
            self.turns: list[int] = []

        def refresh(self, changes: object) -> None:
            self.turns.append(turns[0])

    first, second = Recorder(), Recorder()
    window.panels = [first, second]  # type: ignore[list-item]
    window._panels_at = 0.0
    window.poll()  # called directly (tests, F5): everything at once
    assert len(first.turns) == len(second.turns) == 1
    window._panels_at = 0.0
    ticker.start()
    window.poll(spread=True)
    assert len(first.turns) == 1  # nothing yet: the grid first, the panels later
    qtbot.waitUntil(lambda: len(second.turns) == 2, timeout=5_000)
    ticker.stop()
    assert first.turns[1] < second.turns[1]  # a turn (a paint) between them
