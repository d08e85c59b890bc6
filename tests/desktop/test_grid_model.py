"""The grid model at 100,000 items: one id query, pages fetched only for what is shown."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from desktop.itemmodels.grid import (
    PAGE_ROWS,
    GridModel,
    ItemIdRole,
    RowRole,
    _insertion_runs,
    _runs,
    tooltip,
)
from desktop.qt import QPushButton, QSize, Qt
from desktop.views.detail import DetailPane
from desktop.views.grid import BADGE_COLOURS, GridView, badge_for
from desktop.views.jobs_panel import JobsPanel
from engine.browse import BrowseQuery, GridRow
from engine.library import Library
from engine.store.db import next_seq
from tests.desktop.bulk import fill

N = 100_000


@pytest.fixture(scope="module")
def big_library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    lib = Library(tmp_path_factory.mktemp("big") / "library")
    fill(lib, N)
    yield lib
    lib.close()


def test_100k_items_load_fast_and_fetch_one_page(qtbot: Any, big_library: Library) -> None:
    model = GridModel()
    started = time.perf_counter()
    model.set_library(big_library)
    first = model.index(0, 0).data(RowRole)
    elapsed = time.perf_counter() - started
    assert model.rowCount() == N
    assert isinstance(first, GridRow) and first.name == "img-000001.jpg"
    assert elapsed < 0.5, f"first page took {elapsed:.3f} s"
    assert model.pages_fetched == 1
    assert model.cached_rows() == PAGE_ROWS
    # A row far down costs one more page, not 100,000 rows.
    last = model.index(N - 1, 0).data(RowRole)
    assert last.id == N and model.pages_fetched == 2
    assert model.cached_rows() == PAGE_ROWS + N % PAGE_ROWS


def test_changes_refresh_only_loaded_rows(qtbot: Any, big_library: Library) -> None:
    model = GridModel()
    model.set_library(big_library)
    model.index(0, 0).data(RowRole)  # page 0 loaded
    before = model.index(2, 0).data(RowRole)
    assert before.state == "queued"  # item 3: STATES[3]
    with big_library.catalog.write() as conn:
        seq = next_seq(conn)
        conn.execute("UPDATE jobs SET state = 'done', seq = ? WHERE item_id = 3", (seq,))
    changed: list[tuple[int, int]] = []
    model.dataChanged.connect(lambda a, b, *_: changed.append((a.row(), b.row())))
    pages = model.pages_fetched
    model.apply_changes([3, 50_000])  # 50,000 is not loaded: nothing to do for it
    assert changed == [(2, 2)]
    assert model.pages_fetched == pages  # nothing read until the view asks
    assert model.index(2, 0).data(RowRole).state == "done"
    assert model.pages_fetched == pages + 1
    with big_library.catalog.write() as conn:
        seq = next_seq(conn)
        conn.execute("UPDATE jobs SET state = 'queued', seq = ? WHERE item_id = 3", (seq,))


def test_appending_to_100k_rows_is_one_cheap_insert(qtbot: Any, big_library: Library) -> None:
    model = GridModel()
    model.set_library(big_library)
    inserted: list[tuple[int, int]] = []
    model.rowsInserted.connect(lambda _p, a, b: inserted.append((a, b)))
    grown = [*model.ids(), *range(N + 1, N + 65)]
    started = time.perf_counter()
    model._apply_ids(grown, model._generation)
    elapsed = time.perf_counter() - started
    assert inserted == [(N, N + 63)]
    assert model.row_of(N + 64) == N + 63
    assert elapsed < 0.02, f"{elapsed * 1000:.1f} ms on the GUI thread"


def test_state_filter_and_sort_at_scale(qtbot: Any, big_library: Library) -> None:
    model = GridModel()
    model.set_library(big_library)
    started = time.perf_counter()
    model.set_query(BrowseQuery(state="failed"))
    qtbot.waitUntil(lambda: model.rowCount() < N, timeout=5000)
    assert time.perf_counter() - started < 2.0
    expected = big_library.catalog.read(
        "SELECT count(DISTINCT item_id) FROM jobs WHERE state = 'failed'"
    )[0][0]
    assert model.rowCount() == expected
    assert all(
        model.index(r, 0).data(RowRole).state == "failed" for r in range(0, model.rowCount(), 997)
    )
    model.set_query(BrowseQuery(sort="taken"))
    qtbot.waitUntil(lambda: model.rowCount() == N, timeout=5000)
    top = model.index(0, 0).data(RowRole)
    assert top.taken_at == "2024-01-01T00:00:00"  # newest first


def test_new_items_are_inserted_and_selection_survives_reorder(qtbot: Any, tmp_path: Path) -> None:
    lib = Library(tmp_path / "lib")
    fill(lib, 10)
    model = GridModel()
    model.set_library(lib)
    inserted: list[tuple[int, int]] = []
    model.rowsInserted.connect(lambda _p, a, b: inserted.append((a, b)))
    resets: list[bool] = []
    model.modelReset.connect(lambda: resets.append(True))
    with lib.catalog.write() as conn:
        seq = next_seq(conn)
        for i in (11, 12):
            conn.execute(
                """INSERT INTO items (id, hash, kind, format, size, added_at, seq)
                   VALUES (?, ?, 'photo', 'jpeg', 1, 0, ?)""",
                (i, f"h{i}", seq),
            )
    model.apply_changes(lib.changes_since(0).item_ids)
    qtbot.waitUntil(lambda: model.rowCount() == 12, timeout=2000)
    assert inserted == [(10, 11)] and not resets

    # Re-sorted by date: same rows, new order; a persistent index follows its item.
    model.set_query(BrowseQuery(sort="taken"))
    qtbot.waitUntil(lambda: model.ids()[0] != 1, timeout=2000)
    assert sorted(model.ids()) == list(range(1, 13))
    lib.close()


def test_diff_helpers() -> None:
    assert _runs([1, 2, 3, 7, 9, 10]) == [(1, 3), (7, 1), (9, 2)]
    assert _insertion_runs([1, 2, 3], [0, 1, 2, 5, 6, 3, 4]) == [(0, 1), (3, 2), (6, 1)]
    assert _insertion_runs([1, 2, 3], [3, 2, 1]) is None
    assert _insertion_runs([], [1]) == [(0, 1)]


def test_roles(qtbot: Any, tmp_path: Path) -> None:
    lib = Library(tmp_path / "lib")
    fill(lib, 6)
    model = GridModel()
    model.set_library(lib)
    index = model.index(4, 0)  # item 5: failed
    assert index.data(ItemIdRole) == 5
    assert index.data(Qt.ItemDataRole.DisplayRole) == "img-000005.jpg"
    assert "The file is damaged." in index.data(Qt.ItemDataRole.ToolTipRole)
    assert index.data(Qt.ItemDataRole.DecorationRole) is None  # no thumbnail yet
    assert GridView().gridSize().height() == QSize(184, 216).height()
    lib.close()


SKIP_REASON = "Skipped: needs thumbnail, which failed (The file is damaged.)"


def _set_jobs(lib: Library, item_id: int, states: dict[str, tuple[str, str | None]]) -> None:
    with lib.catalog.write() as conn:
        seq = next_seq(conn)
        for stage, (state, error) in states.items():
            conn.execute(
                "UPDATE jobs SET state = ?, error = ?, seq = ? WHERE item_id = ? AND stage = ?",
                (state, error, seq, item_id, stage),
            )


def test_skipped_jobs_show_a_skipped_badge(qtbot: Any, tmp_path: Path) -> None:
    lib = Library(tmp_path / "lib")
    fill(lib, 6, stages=("metadata", "thumbnail", "ocr"))
    done = ("done", None)
    # Item 1: its thumbnail failed, so its text step was skipped: the failure shows.
    _set_jobs(lib, 1, {"metadata": done, "thumbnail": ("failed", "The file is damaged."),
                       "ocr": ("skipped", SKIP_REASON)})  # fmt: skip
    # Item 2: nothing left to run, one step skipped: not "done".
    _set_jobs(lib, 2, {"metadata": done, "thumbnail": done, "ocr": ("skipped", SKIP_REASON)})
    model = GridModel()
    grid = GridView()
    qtbot.addWidget(grid)
    grid.resize(800, 600)
    grid.setModel(model)
    model.set_library(lib)
    failed, skipped = model.index(0, 0).data(RowRole), model.index(1, 0).data(RowRole)
    assert badge_for(failed) == ("failed", "Failed")
    assert badge_for(skipped) == ("skipped", "Skipped")
    assert "Skipped (ocr)" in model.index(1, 0).data(Qt.ItemDataRole.ToolTipRole)
    # A row the ledger reports as skipped outright, with its reason; and a state this
    # version has never heard of: neither breaks the badge or the tooltip.
    outright = replace(skipped, state="skipped", stage="ocr", error=SKIP_REASON)
    assert badge_for(outright) == ("skipped", "Skipped")
    unknown = replace(skipped, state="paused", stages={})
    assert badge_for(unknown) == ("other", "Paused")
    assert SKIP_REASON in tooltip(outright) and "Paused" in tooltip(unknown)
    grid.show()
    qtbot.waitExposed(grid)
    grid.grab()  # paints the cells
    painted = {key[1:3] for key in grid.cell_painter._sprites if key[0] == "badge"}
    assert ("skipped", "Skipped") in painted and ("failed", "Failed") in painted
    assert BADGE_COLOURS["skipped"] != BADGE_COLOURS["failed"]

    # The detail pane names the skipped step and its reason, and offers a retry.
    pane = DetailPane()
    qtbot.addWidget(pane)
    pane.show_item(lib, 2)
    texts = [w.text() for w in pane.findChildren(type(pane.title))]
    assert any(t.endswith("Skipped") for t in texts) and SKIP_REASON in texts
    assert "Retry failed steps" in [b.text() for b in pane.findChildren(QPushButton)]

    # The jobs panel lists skipped jobs with the failed ones.
    panel = JobsPanel(lib, confirm=lambda *_: True)
    qtbot.addWidget(panel)
    panel.show()
    panel.refresh(None)
    problems = panel.problem_model
    skipped_rows = [r for r, p in enumerate(problems.rows) if p.state == "skipped"]
    assert len(skipped_rows) == 2 and len(problems.rows) == 2 + 1 + 3  # `fill` fails item 5
    state_col = [c.title for c in problems.columns].index("State")
    assert problems.index(skipped_rows[0], state_col).data() == "Skipped"
    model.set_library(None)
    lib.close()
