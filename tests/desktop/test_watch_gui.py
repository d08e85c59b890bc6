"""Watched folders from the app: watch one, and the worker host's watcher keeps the grid
in step by itself: a new file appears and is processed, a deleted one is marked missing
(and kept in the catalog), and a folder no longer watched is left alone."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from desktop.itemmodels.grid import RowRole
from desktop.mainwindow import MainWindow
from desktop.operations import watch as watch_ops
from desktop.qt import QFileDialog, QImage, QMenu, Qt
from desktop.views.grid import badge_for
from desktop.views.watched_panel import ENTRY_ROLE, UNAVAILABLE, WatchedPanel
from engine.browse import GridRow
from engine.watch import DEBOUNCE_S, REFRESH_INTERVAL_S, list_watches


def rows(window: MainWindow) -> list[GridRow]:
    model = window.grid_model
    out = [model.index(r, 0).data(RowRole) for r in range(model.rowCount())]
    assert all(isinstance(r, GridRow) for r in out)
    return out


def row_named(window: MainWindow, name: str) -> GridRow | None:
    window.poll()
    return next((r for r in rows(window) if r.name == name), None)


def panel_of(window: MainWindow) -> WatchedPanel:
    assert window.watched_panel is not None
    return window.watched_panel


def panel_entries(window: MainWindow) -> list[watch_ops.WatchEntry]:
    view = panel_of(window).view
    return [view.item(r).data(ENTRY_ROLE) for r in range(view.count())]


def new_jpeg(tmp_path: Path, name: str, seed: int) -> Path:
    """A JPEG made with Pillow, with content no other test file has, outside any watch."""
    from tests.corpus import write_jpeg

    return write_jpeg(tmp_path / "incoming" / name, (800, 600), seed=seed)


def test_watched_folder_follows_new_and_deleted_files(
    qtbot: Any,
    make_window: Callable[..., MainWindow],
    photos: Callable[..., Path],
    tmp_path: Path,
) -> None:
    folder = photos(3, folder="camera")
    window = make_window()
    lib = window.library
    assert lib is not None and window.host is not None and window.host.running

    # Watch it: one row in the catalog at once, its files imported in the background.
    started = window.watch_folder(str(folder))
    assert started is not None and not started.already_watched
    assert [w.path for w in list_watches(lib)] == [str(folder)]
    assert started.import_op is not None
    assert [(e.name, e.path, e.available) for e in panel_entries(window)] == [
        ("camera", str(folder), True)
    ]
    assert panel_of(window).view.item(0).toolTip() == str(folder)
    assert panel_of(window).view.isVisible() and not panel_of(window).empty.isVisible()
    op = started.import_op
    qtbot.waitUntil(lambda: op.finished, timeout=10_000)
    assert op.error is None and op.summary is not None
    assert op.summary.items_new == 3

    def all_done(n: int) -> bool:
        window.poll()
        found = rows(window)
        return len(found) == n and all(badge_for(r)[0] == "done" for r in found)

    qtbot.waitUntil(lambda: all_done(3), timeout=60_000)

    # Watching it again changes nothing and imports nothing.
    again = window.watch_folder(str(folder))
    assert again is not None and again.already_watched and again.import_op is None
    assert len(list_watches(lib)) == 1

    # A new file copied in: in the grid and processed, with no user action.
    source = new_jpeg(tmp_path, "arrived.jpg", seed=987_654)
    copied_at = time.monotonic()
    shutil.copy2(source, folder / "arrived.jpg")
    qtbot.waitUntil(lambda: row_named(window, "arrived.jpg") is not None, timeout=20_000)
    appeared_s = time.monotonic() - copied_at

    def arrived_done() -> bool:
        row = row_named(window, "arrived.jpg")
        return row is not None and badge_for(row)[0] == "done" and row.thumb is not None

    qtbot.waitUntil(arrived_done, timeout=20_000)
    done_s = time.monotonic() - copied_at
    print(f"new file: in the grid after {appeared_s:.2f} s, done after {done_s:.2f} s")
    assert appeared_s < 20 and done_s < 20
    assert window.grid_model.rowCount() == 4
    arrived = row_named(window, "arrived.jpg")
    assert arrived is not None and not arrived.missing
    assert (arrived.width, arrived.height) == (800, 600)
    status = lib.status()
    assert status["items"] == 4
    assert status["lanes"]["import"]["done"] == 8  # metadata + thumbnail per item

    # Deleted there: marked missing in the grid, still in the catalog.
    (folder / "arrived.jpg").unlink()

    def marked_missing() -> bool:
        row = row_named(window, "arrived.jpg")
        return row is not None and row.missing

    qtbot.waitUntil(marked_missing, timeout=20_000)
    gone = row_named(window, "arrived.jpg")
    assert gone is not None and gone.id == arrived.id
    assert badge_for(gone) == ("missing", "Missing")
    assert window.grid_model.rowCount() == 4  # nothing left the grid
    others = [r for r in rows(window) if r.id != arrived.id]
    assert len(others) == 3 and not any(r.missing for r in others)
    [item] = lib.items([arrived.id])
    assert item["paths"] == []
    assert item["missing_paths"] == [str(folder / "arrived.jpg")]
    assert len(lib.items()) == 4
    # The grid's "Missing" filter finds exactly it.
    window.state_box.setCurrentIndex(window.state_box.findData("missing"))
    qtbot.waitUntil(lambda: [r.id for r in rows(window)] == [arrived.id], timeout=2000)
    assert window.grab().toImage().width() > 0  # paints the missing badge
    window.state_box.setCurrentIndex(window.state_box.findData("all"))
    qtbot.waitUntil(lambda: window.grid_model.rowCount() == 4, timeout=2000)

    # Stop watching from the panel: the folder is then left alone, its items kept.
    panel = panel_of(window)
    assert panel.select_path(str(folder))
    assert panel.remove_button.isEnabled()
    qtbot.mouseClick(panel.remove_button, Qt.MouseButton.LeftButton)
    assert list_watches(lib) == []
    assert panel_entries(window) == [] and panel.empty.isVisible()
    # The host's watcher re-reads the list every REFRESH_INTERVAL_S (a file arriving
    # before then is still imported); after that, the folder is left alone.
    qtbot.wait(int((REFRESH_INTERVAL_S + 1.0) * 1000))
    shutil.copy2(new_jpeg(tmp_path, "late.jpg", seed=123_456), folder / "late.jpg")
    qtbot.wait(int((REFRESH_INTERVAL_S + DEBOUNCE_S + 1.0) * 1000))
    window.poll()
    assert row_named(window, "late.jpg") is None
    assert len(lib.items()) == 4


def test_watch_folder_menu_action_and_refusals(
    qtbot: Any,
    make_window: Callable[..., MainWindow],
    photos: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = photos(2, folder="scans")
    window = make_window(start_host=False)
    lib = window.library
    assert lib is not None

    file_menu = next(
        a.menu() for a in window.menuBar().actions() if a.text() == "&File" and a.menu()
    )
    assert isinstance(file_menu, QMenu)
    assert window.watch_action in file_menu.actions()
    assert window.watch_action.text() == "&Watch Folder…"

    # File ▸ Watch Folder… with the picker answering: watched, and imported.
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    window.watch_action.trigger()
    assert [w.path for w in list_watches(lib)] == [str(folder)]
    qtbot.waitUntil(lambda: window.grid_model.rowCount() == 2, timeout=5000)
    assert sorted(r.name for r in rows(window)) == ["photo-000.jpg", "photo-001.jpg"]
    assert {r.state for r in rows(window)} == {"queued"}  # no host: nothing processed

    # The "+" in the panel asks the window for the picker too (cancelled: nothing).
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: "")
    panel_of(window).add_button.click()
    assert len(list_watches(lib)) == 1

    # Refused: a folder inside the library, and one that is not there.
    notices = len(window.notices)
    assert window.watch_folder(str(lib.root / "thumbs")) is None
    assert window.watch_folder(str(folder / "nope")) is None
    assert len(window.notices) == notices + 2
    assert "inside the Shoebox library" in window.notices[-2]
    assert "There is no folder" in window.notices[-1]
    assert len(list_watches(lib)) == 1


def test_unavailable_folder_is_shown_muted(
    qtbot: Any,
    make_window: Callable[..., MainWindow],
    photos: Callable[..., Path],
    tmp_path: Path,
) -> None:
    folder = photos(1, folder="usbstick")
    window = make_window(start_host=False)
    lib = window.library
    assert lib is not None
    started = watch_ops.watch_folder(lib, str(folder))
    op = started.import_op
    assert op is not None
    qtbot.waitUntil(lambda: op.finished, timeout=5000)
    assert op.summary is not None and op.summary.items_new == 1
    panel = panel_of(window)
    panel.reload()
    assert [e.available for e in panel_entries(window)] == [True]

    folder.rename(tmp_path / "unplugged")  # as if the drive was pulled out
    qtbot.waitUntil(
        lambda: [e.available for e in panel_entries(window)] == [False], timeout=5000
    )  # the poll tick re-checks within a couple of seconds
    item = panel.view.item(0)
    assert item.data(Qt.ItemDataRole.AccessibleTextRole) == f"usbstick {UNAVAILABLE}"
    assert item.toolTip().startswith(str(folder) + "\nNot available")
    image: QImage = panel.grab().toImage()
    assert image.width() > 0

    # Stop watching it while it is away.
    assert panel.select_path(str(folder))
    assert panel.stop_watching(str(folder))
    assert list_watches(lib) == [] and panel.view.count() == 0
    assert panel.empty.isVisible()
    assert len(lib.items()) == 1  # its items stay
