"""The main window: library grid, sidebar (labels, imports, watched folders), detail pane,
jobs dock; the review window (View ▸ Review Suggestions) is a window of its own.

The window is a thin front end: layout, wiring and the poll loop. Its menus and
shortcuts are the table in `desktop.menus`; the commands they run are in
`desktop.actions`, which call `desktop.operations`. Progress is pulled from the
ledger a few times a second (`Library.changes_since`) and only what changed is
refreshed.

A panel that follows the library is made in `_install_panels` (the poll then
refreshes it); one in a dock also gets a `PanelDock` in `__init__` and a `dock=` row
in `desktop.menus.MENUS` for its View-menu toggle.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from desktop import actions
from desktop.dialogs.new_label import NewLabelDialog
from desktop.dialogs.settings import SettingsDialog
from desktop.hostcontrol import HostControl
from desktop.itemmodels.grid import GridModel
from desktop.menus import build_actions
from desktop.operations import imports as import_ops
from desktop.operations import labels as label_ops
from desktop.operations import library as library_ops
from desktop.operations import search as search_ops
from desktop.operations import watch as watch_ops
from desktop.qt import (
    QAction,
    QCloseEvent,
    QCoreApplication,
    QEvent,
    QHBoxLayout,
    QMainWindow,
    QMessageBox,
    QModelIndex,
    QObject,
    QSettings,
    QSplitter,
    Qt,
    QTimer,
    QVBoxLayout,
    QWidget,
    Signal,
)
from desktop.threads import wait_for_pool
from desktop.thumbs import ThumbnailCache
from desktop.views.detail import DetailPane
from desktop.views.drop_target import DropTarget, local_paths
from desktop.views.grid import THUMB_BOX, GridView
from desktop.views.host_banner import HOST_DIED, HostBanner
from desktop.views.imports_panel import ImportsPanel, StatusSummary
from desktop.views.jobs_panel import JobsPanel
from desktop.views.labels_panel import LabelsPanel
from desktop.views.notice import NOTICE_MS, Notice
from desktop.views.panel_dock import PanelDock
from desktop.views.review_window import ReviewWindow
from desktop.views.search_chips import SearchBar
from desktop.views.sidebar import Sidebar
from desktop.views.similar_bar import SimilarBar
from desktop.views.summary_label import SummaryLabel
from desktop.views.toolbar import MainToolBar
from desktop.views.watched_panel import WatchedPanel
from engine.browse import BrowseQuery
from engine.errors import SettingsError
from engine.library import Changes, Library

__all__ = ["HOST_DIED", "POLL_MS", "MainWindow", "local_paths"]

log = logging.getLogger("shoebox.desktop")

POLL_MS = 250
PANEL_IDLE_S = 1.0
ACTIVITY_STAMP_S = 10.0


class Panel(Protocol):
    def refresh(self, changes: Changes | None) -> None: ...


class ActivityStamp(QObject):
    """Input anywhere in the app stamps the library's `activity` file (at most every
    `ACTIVITY_STAMP_S`): "Only when idle" waits while the user works in Shoebox, where
    the windowing system's own idle time cannot be read."""

    INPUT = frozenset(
        {
            QEvent.Type.KeyPress,
            QEvent.Type.MouseButtonPress,
            QEvent.Type.Wheel,
            QEvent.Type.TouchBegin,
        }
    )

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.at = 0.0
        self.last_input = time.monotonic()  # any input, unthrottled (the warm-up waits on it)
        app = QCoreApplication.instance()
        if app is not None:
            app.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in self.INPUT:
            now = time.monotonic()
            self.last_input = now
            library = self.window.library
            if library is not None and now - self.at >= ACTIVITY_STAMP_S:
                self.at = now
                library_ops.note_activity(library)
        return False


class MainWindow(QMainWindow):
    """One library at a time. `library_opened` fires after a library is shown."""

    library_opened = Signal(str)

    # Made by `build_actions` from `desktop.menus.MENUS` (those used in code).
    import_action: QAction
    watch_action: QAction
    detail_action: QAction
    jobs_action: QAction
    objects_action: QAction
    more_like_this_action: QAction
    show_folder_action: QAction
    retry_action: QAction
    new_label_action: QAction
    review_action: QAction

    def __init__(
        self,
        library_dir: Path | None = None,
        *,
        state: QSettings | None = None,
        host_env: dict[str, str] | None = None,
        start_host: bool = True,
    ) -> None:
        super().__init__()
        self.state = state if state is not None else QSettings()
        self.host_env = host_env
        self.start_host = start_host
        self.library: Library | None = None
        self.host: HostControl | None = None
        self.thumbs: ThumbnailCache | None = None
        self.imports: list[import_ops.ImportOp] = []  # running imports, cancelled on close
        self.panels: list[Panel] = []
        self.status_summary: StatusSummary | None = None
        self.notices: list[str] = []  # every notice shown (for tests and logs)
        self.review_window: ReviewWindow | None = None
        self.label_dialog: NewLabelDialog | None = None  # the last one asked (for tests)
        self._seq = 0
        self._labels_seq = 0
        self._panels_at = 0.0

        self.activity = ActivityStamp(self)
        self._warm_up_due = 0.0  # when the query model loads even if the user is busy

        self.setWindowTitle("Shoebox")
        self.resize(1280, 820)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks)

        self.grid_model = GridModel(self)
        self.grid = GridView()
        self.grid.setModel(self.grid_model)
        self.grid.setAccessibleName("Library")
        self.grid.openRequested.connect(self.open_detail)
        self.grid.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.grid.customContextMenuRequested.connect(lambda pos: actions.show_grid_menu(self, pos))
        self.grid.selectionModel().selectionChanged.connect(self._show_current)
        self.grid_model.reloaded.connect(self._update_empty_message)
        self.drop_target = DropTarget(
            self, lambda: self.library is not None, self.grid.set_drop_highlight
        )
        self.drop_target.dropped.connect(self.import_paths)

        self.notice = Notice()
        centre = QWidget()
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        centre_layout.setSpacing(0)
        notice_row = QHBoxLayout()
        notice_row.setContentsMargins(10, 8, 10, 0)
        notice_row.addWidget(self.notice)
        centre_layout.addLayout(notice_row)
        self.similar_bar = SimilarBar()  # "Similar to NAME ×" while the grid shows those
        self.similar_bar.closeRequested.connect(lambda: actions.leave_similar(self))
        similar_row = QHBoxLayout()
        similar_row.setContentsMargins(10, 8, 10, 0)
        similar_row.addWidget(self.similar_bar)
        centre_layout.addLayout(similar_row)
        self.search_state = search_ops.SearchState()
        self.search_bar = SearchBar()  # results' summary, filter chips, notes, the reason
        self.search_bar.closeRequested.connect(lambda: actions.leave_search(self))
        self.search_bar.chipRemoved.connect(lambda chip: actions.remove_search_filter(self, chip))
        search_row = QHBoxLayout()
        search_row.setContentsMargins(10, 8, 10, 0)
        search_row.addWidget(self.search_bar)
        centre_layout.addLayout(search_row)
        centre_layout.addWidget(self.grid, 1)

        self.detail = DetailPane()
        self.detail.closeRequested.connect(self.close_detail)
        self.detail.retryRequested.connect(lambda item_id: actions.retry_items(self, item_id))
        self.detail.showObjectsToggled.connect(lambda on: actions.set_show_objects(self, on))
        self.detail.labelRemoved.connect(
            lambda item_id, name: actions.remove_item_label(self, item_id, name)
        )
        self.detail.hide()

        self.sidebar = Sidebar()
        self.library_label = self.sidebar.library_label
        self.library_path = self.sidebar.library_path

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(centre)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        self.splitter.setSizes([260, 760, 360])
        self.setCentralWidget(self.splitter)

        self.jobs_dock = PanelDock("Jobs", "jobsDock", self)
        self.docks = [self.jobs_dock]
        self.jobs_panel: JobsPanel | None = None

        self.toolbar: MainToolBar = MainToolBar()
        self.addToolBar(self.toolbar)
        self.toolbar.queryChanged.connect(self._apply_query)
        self.toolbar.searchTyped.connect(lambda: actions.search(self, typing=True))
        self.toolbar.searchSubmitted.connect(self._search_now)
        self.toolbar.filterPicked.connect(lambda k, v: actions.add_search_filter(self, k, v))
        self.search = self.toolbar.search
        self.search.textChanged.connect(lambda text: actions.search_text_changed(self, text))
        self.kind_box = self.toolbar.kind_box
        self.state_box = self.toolbar.state_box
        self.sort_box = self.toolbar.sort_box
        self.actions_by_name = build_actions(self)
        self.toolbar.import_button.clicked.connect(self.import_action.trigger)
        actions.set_show_objects(self, bool(self.state.value("detail/show_objects", True, bool)))

        self.summary_label = SummaryLabel()
        self.host_banner = HostBanner()
        self.host_banner.notice.connect(self.show_notice)
        self.worker_label = self.host_banner
        self.statusBar().addWidget(self.summary_label, 1)
        self.statusBar().addPermanentWidget(self.host_banner)

        self.poll_timer = QTimer(self)
        self.poll_timer.setInterval(POLL_MS)
        self.poll_timer.timeout.connect(self._poll_tick)
        self._panel_work: list[Callable[[], None]] = []  # the tick's rest, a step a turn

        self._restore_window_state()
        if library_dir is not None:
            self.open_library(library_dir)

    @property
    def imports_panel(self) -> ImportsPanel | None:
        return self.sidebar.imports_panel

    @property
    def watched_panel(self) -> WatchedPanel | None:
        return self.sidebar.watched_panel

    @property
    def labels_panel(self) -> LabelsPanel | None:
        return self.sidebar.labels_panel

    # -- library -----------------------------------------------------------------

    def open_library(self, folder: Path) -> bool:
        """Show the library in `folder` (created when new); False if it cannot be opened."""
        self.close_library()
        try:
            library = library_ops.open_library(Path(folder))
        except SettingsError as exc:  # the user's settings.toml: say which key, no traceback
            log.warning("cannot open library %s: %s", folder, exc)
            self._show_no_library()
            from desktop.app import check_library_settings

            # Lets the user fix the file and try again, as at start-up.
            if check_library_settings(Path(folder)) is None:
                return False
            return self.open_library(folder)
        except Exception as exc:  # e.g. written by a newer Shoebox, or not writable
            log.exception("cannot open library %s", folder)
            self._show_no_library()
            QMessageBox.critical(self, "Open Library", f"Cannot open the library {folder}:\n{exc}")
            return False
        self.library = library
        self._seq = library.seq()  # before the ids are read: nothing falls in between
        self._labels_seq = label_ops.current_seq(library)
        self.thumbs = ThumbnailCache(library.root, THUMB_BOX, self)
        self.grid_model.set_library(library, self.thumbs)
        self.setWindowTitle(f"{library.root.name} — Shoebox")
        self._install_panels(library)
        self.host = HostControl(library.root, self, env=self.host_env)
        self.host_banner.set_host(self.host)
        if self.start_host:
            self.host.start()
        self.host_banner.refresh()
        self.state.setValue("library/last", str(library.root))
        self.poll_timer.start()
        self._update_status()
        self._update_empty_message()
        self.library_opened.emit(str(library.root))
        self._warm_up_due = time.monotonic() + search_ops.WARM_UP_LATEST_S
        QTimer.singleShot(search_ops.WARM_UP_DELAY_MS, lambda: self._warm_up(library))
        return True

    def _warm_up(self, library: Library) -> None:
        """Load the query model once the user pauses: importing torch in a thread still
        holds the GIL for stretches (up to ~150 ms here), which a scroll would feel."""
        if self.library is not library:  # closed or replaced meanwhile
            return
        now = time.monotonic()
        busy = now - self.activity.last_input < search_ops.WARM_UP_QUIET_S
        if busy and now < self._warm_up_due:
            QTimer.singleShot(search_ops.WARM_UP_RETRY_MS, lambda: self._warm_up(library))
            return
        search_ops.warm_up(library)

    def _show_no_library(self) -> None:
        self.setWindowTitle("Shoebox")
        self.sidebar.show_no_library()
        self.grid.set_empty_message("No library open", "Choose File ▸ Open Library… (Ctrl+O).")

    def close_library(self) -> None:
        library = self.library
        if library is None:
            return
        self.poll_timer.stop()
        for op in self.imports:
            op.cancel.set()
        if self.review_window is not None:
            self.review_window.close()
            self.review_window = None
        wait_for_pool()
        label_ops.wait_for_label_pool()
        if self.host is not None:
            self.host.stop()
            self.host.deleteLater()
            self.host = None
            self.host_banner.set_host(None)
        self.detail.clear()
        self.close_detail()
        actions.leave_similar(self, reselect=False)
        actions.leave_search(self, reselect=False)
        self.grid_model.set_library(None)
        if self.thumbs is not None:
            self.thumbs.close()
            self.thumbs.deleteLater()
            self.thumbs = None
        self._remove_panels()
        self.library = None
        library.close()

    def _install_panels(self, library: Library) -> None:
        """The panels of one library: the poll refreshes each of `self.panels`."""
        imports, watched = self.sidebar.show_library(library)
        watched.addRequested.connect(self.watch_action.trigger)
        labels = self.sidebar.labels_panel
        assert labels is not None
        labels.labelClicked.connect(lambda name: actions.show_label(self, name))
        labels.reviewRequested.connect(lambda name: actions.show_review(self, name))
        labels.newRequested.connect(self.new_label_action.trigger)
        self.jobs_panel = JobsPanel(library)
        self.jobs_dock.set_panel(self.jobs_panel)
        self.panels = [labels, imports, watched, self.jobs_panel]
        self.status_summary = StatusSummary(library)
        self.summary_label.set_library(library, self.status_summary)

    def _remove_panels(self) -> None:
        self.sidebar.clear()
        for dock in self.docks:
            dock.clear()
        self.jobs_panel = None
        self.panels = []
        self.status_summary = None
        self.summary_label.set_library(None, None)

    # -- polling -----------------------------------------------------------------

    def _poll_tick(self) -> None:
        """The timer's poll: the grid at once, then each panel and the status bar in an
        event-loop turn of its own, so that a scroll paints between them (a whole tick
        took 20–40 ms of one frame while an import ran)."""
        self.poll(spread=True)

    def _run_panel_work(self) -> None:
        if self._panel_work:
            self._panel_work.pop(0)()
        if self._panel_work:
            QTimer.singleShot(0, self, self._run_panel_work)

    def poll(self, *, spread: bool = False) -> Changes | None:
        """One tick: what changed since the last one, refreshed where it shows. With
        `spread`, the panels and the status bar follow in later event-loop turns."""
        library = self.library
        if library is None:
            return None
        changes = library.changes_since(self._seq)
        moved = bool(changes.seq != self._seq or changes.item_ids or changes.session_ids)
        self._seq = changes.seq
        if changes.overflow:  # a re-index chunk or a bulk retry: refresh what is shown
            self.grid_model.apply_overflow()
            if self.detail.item_id is not None:
                self.detail.refresh([self.detail.item_id])
        elif changes.item_ids:
            self.grid_model.apply_changes(changes.item_ids)
            self.detail.refresh(changes.item_ids)
        if moved:
            self._labels_changed(library)
        now = time.monotonic()
        if moved or now - self._panels_at >= PANEL_IDLE_S:
            self._panels_at = now
            given = changes if moved else None
            work: list[Callable[[], None]] = [
                functools.partial(self._refresh_panel, library, panel, given)
                for panel in self.panels
            ]
            work.append(functools.partial(self._refresh_status, library))
            if not spread:
                for step in work:
                    step()
            else:
                pending = bool(self._panel_work)
                self._panel_work = work  # a tick not finished yet is overtaken
                if not pending:
                    QTimer.singleShot(0, self, self._run_panel_work)
        return changes

    def _refresh_panel(self, library: Library, panel: Panel, changes: Changes | None) -> None:
        if self.library is library and panel in self.panels:  # not closed meanwhile
            panel.refresh(changes)

    def _refresh_status(self, library: Library) -> None:
        if self.library is library:
            self._update_status()

    def _labels_changed(self, library: Library) -> None:
        """A label changed (a decision, a training): what shows labels follows. The
        labels panel checks for itself; the detail pane and the review window here."""
        seq = label_ops.current_seq(library)
        if seq == self._labels_seq:
            return
        self._labels_seq = seq
        if self.detail.isVisible() and self.detail.item_id is not None:
            self.detail.reload()
        if self.review_window is not None:
            self.review_window.refresh()

    def refresh(self) -> None:
        """F5: re-read everything."""
        self.grid_model.reload()
        if self.thumbs is not None:
            self.thumbs.clear()
        self.grid.viewport().update()
        self.detail.reload()
        for panel in self.panels:
            panel.refresh(None)
        if self.review_window is not None:
            self.review_window.reload()
        self._update_status()

    def _update_status(self) -> None:
        background = library_ops.background(self.library) if self.library is not None else None
        self.host_banner.refresh(background)
        if self.jobs_panel is not None:
            self.jobs_panel.show_background(background)
        self._show_status()
        self.summary_label.recompute()  # off the GUI thread

    def is_filtered(self) -> bool:
        """The grid shows part of the library (a filter, or the items like one)."""
        query = self.grid_model.query
        return query != BrowseQuery(sort=query.sort) or self.grid_model.id_filter is not None

    def _show_status(self) -> None:
        self.summary_label.set_shown(self.grid_model.rowCount() if self.is_filtered() else None)

    def show_notice(self, text: str) -> None:
        self.notices.append(text)
        self.notice.show_message(text)
        self.statusBar().showMessage(text, NOTICE_MS)

    # -- commands that tools and tests call (`desktop.actions` does the work) ---------

    def import_paths(self, paths: Sequence[str]) -> import_ops.ImportOp | None:
        return actions.import_paths(self, paths)

    def watch_folder(self, path: str) -> watch_ops.WatchStarted | None:
        return actions.watch_folder(self, path)

    def apply_settings(self, dialog: SettingsDialog) -> None:
        actions.apply_settings(self, dialog)

    def open_detail(self, index: QModelIndex | None = None) -> None:
        actions.open_detail(self, index)

    def close_detail(self) -> None:
        actions.close_detail(self)

    # -- grid and filter ---------------------------------------------------------

    def current_query(self) -> BrowseQuery:
        return self.toolbar.query()

    def _apply_query(self) -> None:
        actions.leave_similar(self, reselect=False)  # a new filter is a new question
        self.grid_model.set_query(self.current_query())
        if self.search_state.active:
            actions.search(self)  # the kind and state boxes narrow the search too
        self._show_status()

    def _search_now(self) -> None:
        """Return in the search box: search at once, then on to the results."""
        actions.search(self)
        self._focus_grid()

    def _update_empty_message(self) -> None:
        shown = self.search_state.shown
        if shown is not None and not self.similar_bar.active:
            self.grid.set_empty_message(
                f"Nothing matches “{shown.request.text.strip()}”",
                "Try other words, or remove a filter.",
            )
        else:
            self.grid.show_empty_state(filtered=self.is_filtered())
        self._show_status()

    def _focus_grid(self) -> None:
        self.grid.setFocus()
        if not self.grid.currentIndex().isValid() and self.grid_model.rowCount():
            self.grid.setCurrentIndex(self.grid_model.index(0, 0))

    def selected_ids(self) -> list[int]:
        return self.grid.selected_item_ids()

    def current_id(self) -> int | None:
        return self.grid.current_item_id()

    def _show_current(self, *_selection: object) -> None:
        """The selection moved: the detail pane, if open, follows the current item."""
        item_id = self.current_id()
        if self.detail.isVisible() and self.library is not None and item_id is not None:
            self.detail.show_item(self.library, item_id)
        if self.search_state.active:
            actions.show_search_reason(self)

    # -- window state ------------------------------------------------------------

    def _restore_window_state(self) -> None:
        geometry = self.state.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        window_state = self.state.value("window/state")
        if window_state is not None:
            self.restoreState(window_state)
        splitter = self.state.value("window/splitter")
        if splitter is not None:
            self.splitter.restoreState(splitter)
        self.detail.hide()

    def save_window_state(self) -> None:
        self.state.setValue("window/geometry", self.saveGeometry())
        self.state.setValue("window/state", self.saveState())
        self.state.setValue("window/splitter", self.splitter.saveState())
        self.state.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_window_state()
        self.close_library()
        super().closeEvent(event)
