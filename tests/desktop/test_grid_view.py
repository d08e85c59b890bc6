"""The grid view at 100,000 items: arithmetic layout, O(visible cells) paint and fetch."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from desktop.itemmodels.grid import PAGE_ROWS, GridModel
from desktop.qt import QItemSelectionModel, QPalette, QPoint, Qt
from desktop.views.grid import CELL, GridView
from engine.library import Library
from tests.desktop.bulk import fill

N = 100_000


@pytest.fixture(scope="module")
def big_library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    lib = Library(tmp_path_factory.mktemp("bigview") / "library")
    fill(lib, N)
    yield lib
    lib.close()


@pytest.fixture
def view(qtbot: Any, big_library: Library) -> GridView:
    model = GridModel()
    grid = GridView()
    qtbot.addWidget(grid)
    grid.resize(1200, 800)
    grid.setModel(model)
    model.set_library(big_library)
    grid.show()
    qtbot.waitExposed(grid)
    grid.grab()
    return grid


def model_of(view: GridView) -> GridModel:
    model = view.model()
    assert isinstance(model, GridModel)
    return model


def test_first_screen_of_100k_items_is_fast(qtbot: Any, big_library: Library) -> None:
    model = GridModel()
    grid = GridView()
    qtbot.addWidget(grid)
    grid.resize(1200, 800)
    grid.setModel(model)
    started = time.perf_counter()
    model.set_library(big_library)
    grid.show()
    qtbot.waitExposed(grid)
    qtbot.wait(1)  # posted layouts and paints run
    grid.grab()
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"first screen took {elapsed:.3f} s"
    assert model.pages_fetched == 1
    # The whole range is known at once: no layout pass over the rows.
    columns = grid.columns()
    assert columns == grid.viewport().width() // CELL.width()
    lines = -(-N // columns)
    assert grid.verticalScrollBar().maximum() == lines * CELL.height() - grid.viewport().height()


def test_index_at_and_visual_rect_agree(view: GridView) -> None:
    model = model_of(view)
    bar = view.verticalScrollBar()
    for value in (0, bar.maximum() // 3, bar.maximum()):
        bar.setValue(value)
        first = view.indexAt(QPoint(5, 5)).row()
        for row in range(max(0, first - 3), min(N, first + 40)):
            index = model.index(row, 0)
            rect = view.visualRect(index)
            assert rect.size() == view.gridSize()
            if view.viewport().rect().contains(rect.center()):
                assert view.indexAt(rect.center()) == index
    for row in (0, 1, 7, 12_345, N - 1):
        index = model.index(row, 0)
        view.scrollTo(index)
        rect = view.visualRect(index)
        assert view.viewport().rect().contains(rect)
        assert view.indexAt(rect.center()) == index
        assert view.indexAt(rect.topLeft()) == index
        assert view.indexAt(rect.bottomRight()) == index
    # Past the last cell: nothing.
    view.scrollToBottom()
    last = view.visualRect(model.index(N - 1, 0))
    if (N % view.columns()) != 0:
        assert not view.indexAt(last.center() + QPoint(last.width(), 0)).isValid()


def test_keyboard_navigation(qtbot: Any, view: GridView) -> None:
    model = model_of(view)
    columns = view.columns()
    page = view.viewport().height() // CELL.height()
    view.setFocus()
    view.setCurrentIndex(model.index(0, 0))

    def press(key: Qt.Key, row: int) -> None:
        qtbot.keyClick(view, key)
        assert view.currentIndex().row() == row
        assert view.viewport().rect().intersects(view.visualRect(view.currentIndex()))

    press(Qt.Key.Key_Right, 1)
    press(Qt.Key.Key_Down, 1 + columns)
    press(Qt.Key.Key_Left, columns)
    press(Qt.Key.Key_Up, 0)
    press(Qt.Key.Key_Up, 0)  # the top line: stays
    press(Qt.Key.Key_PageDown, page * columns)
    press(Qt.Key.Key_PageDown, 2 * page * columns)
    press(Qt.Key.Key_PageUp, page * columns)
    press(Qt.Key.Key_End, N - 1)
    press(Qt.Key.Key_Down, N - 1)
    press(Qt.Key.Key_Right, N - 1)
    press(Qt.Key.Key_Home, 0)
    # Shift+arrows extend the selection in reading order.
    qtbot.keyClick(view, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(view, Qt.Key.Key_Down, Qt.KeyboardModifier.ShiftModifier)
    rows = sorted(i.row() for i in view.selectionModel().selectedIndexes())
    assert rows == list(range(0, columns + 2))
    # Enter opens the current item.
    opened: list[int] = []
    view.openRequested.connect(lambda index: opened.append(index.row()))
    qtbot.keyClick(view, Qt.Key.Key_Return)
    assert opened == [columns + 1]


def test_scrolling_to_the_bottom_fetches_only_what_it_shows(qtbot: Any, view: GridView) -> None:
    model = model_of(view)
    assert model.pages_fetched == 1
    view.scrollToBottom()
    view.grab()
    assert view.indexAt(view.viewport().rect().center()).row() > N - 100
    assert model.pages_fetched == 2
    assert model.cached_rows() == PAGE_ROWS + N % PAGE_ROWS
    # Scrolling through the middle reads the pages shown, not the ones skipped.
    bar = view.verticalScrollBar()
    bar.setValue(bar.maximum() // 2)
    view.grab()
    assert model.pages_fetched in (3, 4)


def test_click_and_shift_click_select_a_range(qtbot: Any, view: GridView) -> None:
    model = model_of(view)
    columns = view.columns()
    start, end = 2, 2 * columns + 1

    def centre(row: int) -> QPoint:
        return view.visualRect(model.index(row, 0)).center()

    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=centre(start))
    assert [i.row() for i in view.selectionModel().selectedIndexes()] == [start]
    assert view.currentIndex().row() == start
    qtbot.mouseClick(
        view.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.ShiftModifier,
        pos=centre(end),
    )
    rows = sorted(i.row() for i in view.selectionModel().selectedIndexes())
    assert rows == list(range(start, end + 1))
    # Ctrl+click adds one more; a plain click starts over.
    qtbot.mouseClick(
        view.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.ControlModifier,
        pos=centre(end + 3),
    )
    assert len(view.selectionModel().selectedIndexes()) == end - start + 2
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=centre(1))
    assert [i.row() for i in view.selectionModel().selectedIndexes()] == [1]
    # Select all is one range, and repainting it costs the visible cells only.
    view.selectAll()
    assert view.selectionModel().isSelected(model.index(N - 1, 0))
    assert len(view.selectionModel().selection()) == 1
    drawn = view.cells_drawn
    view.grab()
    assert view.cells_drawn - drawn <= view.columns() * (view.viewport().height() // 216 + 2)


def test_double_click_opens(qtbot: Any, view: GridView) -> None:
    model = model_of(view)
    opened: list[int] = []
    view.openRequested.connect(lambda index: opened.append(index.row()))
    pos = view.visualRect(model.index(3, 0)).center()
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)  # a press first,
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)  # as a mouse does
    assert opened == [3]


def test_paint_touches_only_visible_rows(qtbot: Any, view: GridView) -> None:
    model = model_of(view)
    columns = view.columns()
    visible_lines = view.viewport().height() // CELL.height() + 2
    most = columns * visible_lines
    touched: list[int] = []
    real_row_data = model.row_data

    def row_data(row: int) -> Any:
        touched.append(row)
        return real_row_data(row)

    model.row_data = row_data  # type: ignore[method-assign]
    bar = view.verticalScrollBar()
    bar.setValue(bar.maximum() // 2)
    rendered = view.cell_painter.rendered
    view.grab()
    first = view.indexAt(QPoint(5, 5)).row()
    assert touched and len(set(touched)) <= most
    assert min(touched) >= first and max(touched) < first + most
    assert view.cell_painter.rendered - rendered <= most
    # Painting the same screen again is blits only: nothing is rendered anew.
    touched.clear()
    rendered = view.cell_painter.rendered
    view.grab()
    assert view.cell_painter.rendered == rendered
    assert len(set(touched)) <= most
    # A changed row is painted again; its neighbours are not.
    row = first + 1
    model.dataChanged.emit(model.index(row, 0), model.index(row, 0))  # nothing new in it
    view.grab()
    assert view.cell_painter.rendered == rendered
    item_id = model.item_id(row)
    model._rows[item_id] = replace(model._rows[item_id], state="failed", error="Broken.")
    model.dataChanged.emit(model.index(row, 0), model.index(row, 0))
    view.grab()
    assert view.cell_painter.rendered == rendered + 1
    # Rows far away changing cost nothing.
    model.dataChanged.emit(model.index(0, 0), model.index(50, 0))
    view.grab()
    assert view.cell_painter.rendered == rendered + 1
    assert view.cached_cells() <= max(3 * most, 1000)


def test_palette_change_repaints_cells(qtbot: Any, view: GridView) -> None:
    rendered = view.cell_painter.rendered
    view.grab()
    assert view.cell_painter.rendered == rendered
    dark = QPalette(view.palette())
    dark.setColor(QPalette.ColorRole.Base, Qt.GlobalColor.black)
    dark.setColor(QPalette.ColorRole.Window, Qt.GlobalColor.black)
    dark.setColor(QPalette.ColorRole.Text, Qt.GlobalColor.white)
    view.setPalette(dark)
    image = view.grab().toImage()
    assert view.cell_painter.rendered > rendered
    # The cell background follows the palette.
    assert image.pixelColor(3, 3).lightness() < 40


def test_resize_keeps_cells_filling_the_width(qtbot: Any, view: GridView) -> None:
    model = model_of(view)
    view.scrollTo(model.index(5000, 0), GridView.ScrollHint.PositionAtTop)
    top_row = view.indexAt(QPoint(5, 5)).row()
    view.resize(700, 800)
    qtbot.wait(1)
    columns = view.columns()
    assert columns == view.viewport().width() // CELL.width()
    assert view.gridSize().width() * columns <= view.viewport().width()
    # The row that was at the top is still in view.
    rect = view.visualRect(model.index(top_row, 0))
    assert view.viewport().rect().intersects(rect)


def test_selection_flags_survive(qtbot: Any, view: GridView) -> None:
    model = model_of(view)
    sm = view.selectionModel()
    sm.select(model.index(4, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect)
    region = view.visualRegionForSelection(sm.selection())
    assert region.boundingRect() == view.visualRect(model.index(4, 0))


def test_decoded_thumbnails_are_delivered_in_budgeted_batches(
    qtbot: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import desktop.thumbs as thumbs_module
    from desktop.qt import QSize
    from desktop.thumbs import ThumbnailCache
    from tests.engine.helpers import jpeg

    for i in range(40):
        jpeg(tmp_path / "thumbs" / f"{i}.jpg", i)
    # No time at all per turn: each event-loop turn delivers one, so painting runs
    # between deliveries instead of after a burst of them.
    monkeypatch.setattr(thumbs_module, "DELIVERY_BUDGET_S", 0.0)
    cache = ThumbnailCache(tmp_path, QSize(64, 64), threads=1)
    wakes: list[int] = []
    delivered: list[int] = []
    cache._decoded.connect(lambda: wakes.append(len(delivered)))
    cache.loaded.connect(delivered.append)
    for i in range(40):
        assert cache.pixmap(i, f"thumbs/{i}.jpg") is None
    # The GUI thread busy (a long paint) while the decoder finishes all 40 of them.
    deadline = time.monotonic() + 10
    while len(cache._ready) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(cache._ready) == 40 and delivered == []
    qtbot.waitUntil(lambda: len(delivered) == 40, timeout=10_000)
    assert sorted(delivered) == list(range(40))
    assert all(cache.pixmap(i, f"thumbs/{i}.jpg") is not None for i in range(40))
    assert len(wakes) == 1  # one queued wake-up for the batch, not one per image
    cache.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness: Linux")
def test_a_decoder_thread_runs_below_the_gui_thread() -> None:
    import os
    import threading

    from desktop.thumbs import DECODER_NICENESS, _yield_to_the_gui_thread

    seen: list[int] = []

    def decoder() -> None:
        _yield_to_the_gui_thread()
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    worker = threading.Thread(target=decoder)
    worker.start()
    worker.join()
    assert seen == [max(DECODER_NICENESS, mine)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
