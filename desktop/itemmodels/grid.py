"""The library grid's model: only item ids, plus a small cache of row data.

The id list comes from one query (`engine.browse.item_ids`, run off the GUI
thread); row data is fetched in pages when the view first asks for a row, so
only what is on screen is ever read. Progress updates drop the changed rows from
the cache and emit `dataChanged`: the view repaints the visible ones, which
fetches them again (one query per page), and rows off screen cost nothing.

`set_id_filter(ids)` shows only those items, in that order (the items like one,
search results), until `set_id_filter(None)`; the query's filters do not apply
meanwhile. Search results pass their `reasons` (item id -> why it matched), which
the tooltips show.
"""

from __future__ import annotations

import html
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from desktop.qt import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPixmap,
    Qt,
    QTimer,
    Signal,
)
from desktop.threads import run_in_thread
from desktop.thumbs import ThumbnailCache
from engine import browse
from engine.browse import BrowseQuery, GridRow
from engine.enrichment_view import existing_ids
from engine.errors import is_offline_reason
from engine.library import Library
from engine.search_view import why_html

log = logging.getLogger("shoebox.desktop")

ItemIdRole = Qt.ItemDataRole.UserRole + 1
RowRole = Qt.ItemDataRole.UserRole + 2

PAGE_ROWS = 128
MAX_RUNS = 200  # more separate insert/remove runs than this: reset instead
PROGRESS_RELOAD_S = 2.0  # sorted by date or filtered by state: re-read at most this often
BIG_MODEL_ROWS = 20_000  # from here on, new rows are batched every PROGRESS_RELOAD_S


class GridModel(QAbstractListModel):
    """Rows are item ids in display order; `RowRole` gives a `GridRow` (fetched lazily)."""

    reloaded = Signal()  # an id list was applied (tests and the empty-state view)
    aboutToReset = Signal()  # the view saves what it shows; `reset` restores it
    reset = Signal()

    def __init__(self, parent: QObject | None = None, *, cache_rows: int = 5000) -> None:
        super().__init__(parent)
        self.library: Library | None = None
        self.query = BrowseQuery()
        self.thumbs: ThumbnailCache | None = None
        self.id_filter: list[int] | None = None
        self.reasons: dict[int, str] = {}  # why each search result matched
        self._reset_next = False  # the next id list replaces the rows (no diff)
        self._ids: list[int] = []
        self._row_of: dict[int, int] = {}
        self._rows: OrderedDict[int, GridRow] = OrderedDict()
        self._cache_rows = cache_rows
        self._generation = 0
        self._reload_running = False
        self._reload_again = False
        self._progress_reload_at = 0.0
        self._progress_timer = QTimer(self)
        self._progress_timer.setSingleShot(True)
        self._progress_timer.timeout.connect(self._progress_reload)
        self.pages_fetched = 0  # for tests: how many page queries ran
        self.last_reload_s = 0.0

    # -- setup -------------------------------------------------------------------

    def set_library(self, library: Library | None, thumbs: ThumbnailCache | None = None) -> None:
        if self.thumbs is not None:
            self.thumbs.loaded.disconnect(self._on_thumb_loaded)
        self._progress_timer.stop()
        self.beginResetModel()
        self.library = library
        self.thumbs = thumbs
        self.id_filter = None
        self.reasons = {}
        self._ids = []
        self._row_of = {}
        self._rows.clear()
        self._generation += 1
        self.endResetModel()
        if thumbs is not None:
            thumbs.loaded.connect(self._on_thumb_loaded)
        if library is not None:
            self.reload(sync=True)

    def set_query(self, query: BrowseQuery) -> None:
        if query == self.query:
            return
        self.query = query
        self._generation += 1
        self.reload()

    def set_id_filter(
        self, ids: Sequence[int] | None, reasons: Mapping[int, str] | None = None
    ) -> None:
        """Show only `ids`, in this order (applied at once), each with its reason if
        given; None: the query's list again (read off the GUI thread). Either way the
        rows are replaced, not diffed."""
        self.id_filter = list(dict.fromkeys(ids)) if ids is not None else None
        self.reasons = dict(reasons or {}) if ids is not None else {}
        self._generation += 1
        self._reset_next = True
        if self.id_filter is not None:
            self._apply_ids(self.id_filter, self._generation)
        else:
            self.reload()

    # -- id list -----------------------------------------------------------------

    def _progress_reload(self) -> None:
        self._progress_reload_at = time.monotonic()
        self.reload()

    def reload(self, *, sync: bool = False) -> None:
        """Re-read the id list (off the GUI thread unless `sync`); applied as a diff."""
        library = self.library
        if library is None:
            return
        if sync:
            self._apply_ids(self._read_ids(library, self.query, self.id_filter), self._generation)
            return
        if self._reload_running:
            self._reload_again = True
            return
        self._reload_running = True
        generation, query, id_filter = self._generation, self.query, self.id_filter

        def fetch() -> tuple[list[int], float]:
            t0 = time.perf_counter()
            ids = self._read_ids(library, query, id_filter)
            return ids, time.perf_counter() - t0

        def done(result: tuple[list[int], float]) -> None:
            self._reload_running = False
            self.last_reload_s = result[1]
            if library is self.library:
                self._apply_ids(result[0], generation)
            if self._reload_again or generation != self._generation:
                self._reload_again = False
                self.reload()

        def failed(exc: BaseException) -> None:
            self._reload_running = False
            log.error("reading the item list failed", exc_info=exc)

        run_in_thread(fetch, done, failed)

    @staticmethod
    def _read_ids(library: Library, query: BrowseQuery, id_filter: list[int] | None) -> list[int]:
        conn = library.catalog.conn  # this thread's connection
        if id_filter is None:
            return browse.item_ids(conn, query)
        present = existing_ids(conn, id_filter)
        return [i for i in id_filter if i in present]

    def _apply_ids(self, new: list[int], generation: int) -> None:
        if generation != self._generation:
            return  # the query changed meanwhile; a newer reload follows
        if self._reset_next:
            self._reset_next = False
            self._reset_to(new)
            return
        old = self._ids
        if new == old:
            self.reloaded.emit()
            return
        if not old or not new:
            self._reset_to(new)
            return
        if len(new) > len(old) and new[: len(old)] == old:
            # The common case while importing: new items at the end. No diff, no rebuild.
            start = len(old)
            self.beginInsertRows(QModelIndex(), start, len(new) - 1)
            self._ids.extend(new[start:])
            self.endInsertRows()
            self._row_of.update((item_id, start + i) for i, item_id in enumerate(new[start:]))
            self.reloaded.emit()
            return
        new_set = set(new)
        removed = [row for row, item_id in enumerate(old) if item_id not in new_set]
        remove_runs = _runs(removed)
        kept = [item_id for item_id in old if item_id in new_set]
        insert_runs = _insertion_runs(kept, new)
        if len(remove_runs) + len(insert_runs or ()) > MAX_RUNS:
            self._reset_to(new)
            return
        for start, count in reversed(remove_runs):
            self.beginRemoveRows(QModelIndex(), start, start + count - 1)
            del self._ids[start : start + count]
            self.endRemoveRows()
        if insert_runs is not None:
            for start, count in insert_runs:
                self.beginInsertRows(QModelIndex(), start, start + count - 1)
                self._ids[start:start] = new[start : start + count]
                self.endInsertRows()
        else:  # same items, new order (e.g. dates became known): keep the selection
            self.layoutAboutToBeChanged.emit()
            new_row = {item_id: row for row, item_id in enumerate(new)}
            persistent = self.persistentIndexList()
            targets = [
                self.index(new_row[self._ids[p.row()]], 0) if p.isValid() else QModelIndex()
                for p in persistent
            ]
            self._ids = list(new)
            self.changePersistentIndexList(persistent, targets)
            self.layoutChanged.emit()
        self._row_of = {item_id: row for row, item_id in enumerate(self._ids)}
        self.reloaded.emit()

    def _reset_to(self, new: list[int]) -> None:
        self.aboutToReset.emit()
        self.beginResetModel()
        self._ids = list(new)
        self._row_of = {item_id: row for row, item_id in enumerate(self._ids)}
        self.endResetModel()
        self.reset.emit()
        self.reloaded.emit()

    # -- progress ----------------------------------------------------------------

    def apply_changes(self, item_ids: Sequence[int]) -> None:
        """Items changed in the ledger: refresh the loaded ones, pick up new ones."""
        if not item_ids:
            return
        stale_rows: list[int] = []
        unknown = False
        for item_id in item_ids:
            row = self._row_of.get(item_id)
            if row is None:
                unknown = True
                continue
            if self._rows.pop(item_id, None) is not None:
                stale_rows.append(row)
        for start, count in _runs(sorted(stale_rows)):
            self.dataChanged.emit(self.index(start, 0), self.index(start + count - 1, 0))
        if self.id_filter is not None:
            return  # a fixed list: new items do not join it
        if unknown and len(self._ids) < BIG_MODEL_ROWS:
            self.reload()  # new items show within a poll tick
        elif unknown or self.query.depends_on_progress:
            # Order or membership may have changed (or, in a huge library, rows arrive:
            # each insert costs the view a relayout): re-read, at most every few seconds.
            self._reload_soon()

    def apply_overflow(self) -> None:
        """Too many items changed to list (a re-index chunk): forget every loaded row so
        the visible ones are fetched again, and re-read the ids soon."""
        self._rows.clear()
        if self._ids:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._ids) - 1, 0))
        self._reload_soon()

    def _reload_soon(self) -> None:
        wait_ms = int((PROGRESS_RELOAD_S - (time.monotonic() - self._progress_reload_at)) * 1000)
        if wait_ms <= 0:
            self._progress_reload_at = time.monotonic()
            self.reload()
        elif not self._progress_timer.isActive():
            self._progress_timer.start(wait_ms)

    # -- Qt model API ------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._ids)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._ids):
            return None
        item_id = self._ids[index.row()]
        if role == ItemIdRole:
            return item_id
        row = self.row_data(index.row())
        if row is None:
            return None
        if role == RowRole:
            return row
        if role == Qt.ItemDataRole.DisplayRole:
            return row.name
        if role == Qt.ItemDataRole.ToolTipRole:
            why = self.reasons.get(item_id)
            return tooltip(row) if why is None else search_tooltip(row, why)
        if role == Qt.ItemDataRole.DecorationRole:
            return self.thumbnail(row)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{row.name}, {state_text(row)}"
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    # -- rows --------------------------------------------------------------------

    def item_id(self, row: int) -> int:
        return self._ids[row]

    def row_of(self, item_id: int) -> int | None:
        return self._row_of.get(item_id)

    def ids(self) -> list[int]:
        return list(self._ids)

    def cached_rows(self) -> int:
        return len(self._rows)

    def row_data(self, row: int) -> GridRow | None:
        item_id = self._ids[row]
        data = self._rows.get(item_id)
        if data is not None:
            self._rows.move_to_end(item_id)
            return data
        self._fetch_page(row)
        return self._rows.get(item_id)

    def _fetch_page(self, row: int) -> None:
        if self.library is None:
            return
        start = row - row % PAGE_ROWS
        wanted = [i for i in self._ids[start : start + PAGE_ROWS] if i not in self._rows]
        if not wanted:
            return
        fetched = browse.grid_rows(self.library.catalog.conn, wanted)
        self.pages_fetched += 1
        self._rows.update(fetched)
        while len(self._rows) > self._cache_rows:
            self._rows.popitem(last=False)

    def thumbnail(self, row: GridRow) -> QPixmap | None:
        if self.thumbs is None or row.thumb is None:
            return None
        return self.thumbs.pixmap(row.id, row.thumb)

    def _on_thumb_loaded(self, item_id: int) -> None:
        row = self._row_of.get(item_id)
        if row is not None:
            index = self.index(row, 0)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


def stage_title(stage: str | None) -> str:
    return (stage or "").replace("_", " ").capitalize()


def state_text(row: GridRow) -> str:
    state: str = row.state  # the ledger may know states this version does not
    if row.missing:
        return "Missing: no file is left at its paths"
    if state == "working":
        return f"Working: {stage_title(row.stage).lower()}"
    if state == "failed":
        return f"Failed ({stage_title(row.stage).lower()}): {row.error or 'no reason recorded'}"
    waiting = [s for s, st in row.stages.items() if st == "waiting"]
    if waiting and state not in ("queued", "working") and is_offline_reason(row.error):
        return f"Waiting: {row.error}"
    if waiting and state not in ("queued", "working"):
        stages = ", ".join(stage_title(s).lower() for s in waiting)
        return (
            f"Waiting for a model ({stages}): its weights are not on this computer yet. "
            "It runs by itself once they are; the Jobs panel (Ctrl+J) says what to do."
        )
    skipped = [s for s, st in row.stages.items() if st == "skipped"]
    if state == "skipped" or (state == "done" and skipped):
        stage = stage_title(row.stage or (skipped[0] if skipped else "")).lower()
        reason = row.error or "a step it needs failed"
        return f"Skipped ({stage}): {reason}" if stage else f"Skipped: {reason}"
    known = {"queued": "Queued", "done": "Done", "cancelled": "Cancelled"}
    return known.get(state) or stage_title(state) or "Unknown"


def tooltip(row: GridRow) -> str:
    lines = [row.name, state_text(row)]
    if row.taken_at:
        when = row.taken_at.replace("T", " ")
        lines.append(f"File date (a guess) {when}" if row.taken_guess else f"Taken {when}")
    return "\n".join(lines)


def search_tooltip(row: GridRow, why: str) -> str:
    """The tooltip of a search result: why it matched (its words bold), then the rest."""
    lines = [html.escape(line) for line in tooltip(row).split("\n")]
    lines.insert(1, f"Matched: {why_html(why)}")
    return "<qt>" + "<br>".join(lines) + "</qt>"


def _runs(rows: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted row numbers -> (start, count) runs of consecutive rows."""
    runs: list[tuple[int, int]] = []
    for row in rows:
        if runs and runs[-1][0] + runs[-1][1] == row:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((row, 1))
    return runs


def _insertion_runs(old: Sequence[int], new: Sequence[int]) -> list[tuple[int, int]] | None:
    """If `new` is `old` with items inserted (same relative order), the (position in
    `new`, count) runs to insert, in order; else None."""
    runs: list[tuple[int, int]] = []
    i = j = 0
    n_old, n_new = len(old), len(new)
    while j < n_new:
        if i < n_old and old[i] == new[j]:
            i += 1
            j += 1
            continue
        start = j
        while j < n_new and (i >= n_old or new[j] != old[i]):
            j += 1
        runs.append((start, j - start))
        if len(runs) > MAX_RUNS:
            return runs
    return runs if i == n_old else None
