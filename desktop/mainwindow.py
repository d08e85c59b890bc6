"""The main window: library grid, sidebar (imports, watched folders), detail pane, jobs dock.

The window is a thin front end. Actions call `desktop.operations`; progress is
pulled from the ledger a few times a second (`Library.changes_since`) and only
what changed is refreshed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from desktop.dialogs.settings import SettingsDialog
from desktop.hostcontrol import HostControl
from desktop.itemmodels.grid import GridModel, ItemIdRole
from desktop.operations import imports as import_ops
from desktop.operations import library as library_ops
from desktop.operations import watch as watch_ops
from desktop.qt import (
    QAction,
    QCloseEvent,
    QComboBox,
    QDockWidget,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDragMoveEvent,
    QDropEvent,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QItemSelection,
    QKeySequence,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QMimeData,
    QModelIndex,
    QScrollArea,
    QSettings,
    QSizePolicy,
    QSplitter,
    Qt,
    QTimer,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
    Signal,
)
from desktop.threads import run_in_thread, wait_for_pool
from desktop.thumbs import ThumbnailCache
from desktop.views.detail import DetailPane, open_containing_folder
from desktop.views.grid import THUMB_BOX, GridView
from desktop.views.imports_panel import ImportsPanel, StatusSummary
from desktop.views.jobs_panel import JobsPanel
from desktop.views.notice import NOTICE_MS, Notice
from desktop.views.sidebar import Sidebar
from desktop.views.watched_panel import WatchedPanel
from engine import browse
from engine.browse import BrowseQuery
from engine.library import Changes, Library

log = logging.getLogger("shoebox.desktop")

POLL_MS = 250
PANEL_IDLE_S = 1.0
HOST_DIED = "The background worker stopped unexpectedly and was restarted."


class Panel(Protocol):
    def refresh(self, changes: Changes | None) -> None: ...


def local_paths(mime: QMimeData) -> list[str]:
    """The local files and folders a drag carries."""
    if not mime.hasUrls():
        return []
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile() and url.toLocalFile()]


class MainWindow(QMainWindow):
    """One library at a time. `library_opened` fires after a library is shown."""

    library_opened = Signal(str)

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
        self.imports: list[import_ops.ImportOp] = []
        self.panels: list[Panel] = []
        self.status_summary: StatusSummary | None = None
        self.notices: list[str] = []  # every notice shown (for tests and logs)
        self._status_text = ""
        self._status_running = False
        self._status_again = False
        self._seq = 0
        self._panels_at = 0.0
        self._restore_id: int | None = None

        self.setWindowTitle("Shoebox")
        self.setAcceptDrops(True)
        self.resize(1280, 820)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks)

        self.grid_model = GridModel(self)
        self.grid = GridView()
        self.grid.setModel(self.grid_model)
        self.grid.setAccessibleName("Library")
        self.grid.openRequested.connect(self.open_detail)
        self.grid.selectionModel().selectionChanged.connect(self._selection_changed)
        self.grid_model.aboutToReset.connect(self._remember_current)
        self.grid_model.reset.connect(self._restore_current)
        self.grid_model.reloaded.connect(self._update_empty_message)

        self.notice = Notice()
        centre = QWidget()
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        centre_layout.setSpacing(0)
        notice_row = QHBoxLayout()
        notice_row.setContentsMargins(10, 8, 10, 0)
        notice_row.addWidget(self.notice)
        centre_layout.addLayout(notice_row)
        centre_layout.addWidget(self.grid, 1)

        self.detail = DetailPane()
        self.detail.closeRequested.connect(self.close_detail)
        self.detail.retryRequested.connect(self.retry_items)
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

        self.jobs_dock = QDockWidget("Jobs", self)
        self.jobs_dock.setObjectName("jobsDock")
        self.jobs_dock.setAllowedAreas(
            Qt.DockWidgetArea.BottomDockWidgetArea | Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.jobs_dock)
        self.jobs_dock.hide()
        self.jobs_dock.visibilityChanged.connect(self._jobs_dock_shown)
        self._jobs_sized = False
        self.jobs_panel: JobsPanel | None = None

        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(200)
        self._search_timer.timeout.connect(self._apply_query)
        self._build_toolbar()
        self._build_menus()
        self.summary_label = QLabel()
        self.worker_label = QLabel()
        self.worker_label.setEnabled(False)
        self.statusBar().addWidget(self.summary_label, 1)
        self.statusBar().addPermanentWidget(self.worker_label)

        self.poll_timer = QTimer(self)
        self.poll_timer.setInterval(POLL_MS)
        self.poll_timer.timeout.connect(self.poll)

        self._restore_window_state()
        if library_dir is not None:
            self.open_library(library_dir)

    @property
    def imports_panel(self) -> ImportsPanel | None:
        return self.sidebar.imports_panel

    @property
    def watched_panel(self) -> WatchedPanel | None:
        return self.sidebar.watched_panel

    # -- building ----------------------------------------------------------------

    def _build_toolbar(self) -> None:
        bar = QToolBar("Main")
        bar.setObjectName("mainToolBar")
        bar.setMovable(False)
        bar.setFloatable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(bar)
        self.import_button = QToolButton()
        self.import_button.setText("Import Folder…")
        self.import_button.setToolTip("Import a folder (Ctrl+I), or drop one on the window")
        self.import_button.clicked.connect(self.choose_import_folder)
        bar.addWidget(self.import_button)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        bar.addWidget(spacer)

        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter by name  (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(220)
        self.search.setAccessibleName("Filter by name")
        self.search.textChanged.connect(lambda _t: self._search_timer.start())
        self.search.returnPressed.connect(self._focus_grid)
        bar.addWidget(self.search)

        def combo(options: dict[str, str], name: str) -> QComboBox:
            box = QComboBox()
            box.setAccessibleName(name)
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            for key, text in options.items():
                box.addItem(text, key)
            box.currentIndexChanged.connect(lambda _i: self._apply_query())
            return box

        self.kind_box = combo(browse.KINDS, "Kind")
        self.state_box = combo(browse.STATE_FILTERS, "State")
        self.sort_box = combo({k: f"Sort: {v}" for k, v in browse.SORTS.items()}, "Sort")
        self.sort_box.blockSignals(True)
        self.sort_box.setCurrentIndex(self.sort_box.findData("added"))
        self.sort_box.blockSignals(False)
        for box in (self.kind_box, self.state_box, self.sort_box):
            bar.addSeparator()
            bar.addWidget(box)

    def _action(
        self,
        text: str,
        slot: object,
        shortcut: QKeySequence.StandardKey | str | None = None,
        *,
        fallback: str = "",
        tip: str = "",
    ) -> QAction:
        """A window-wide action; a standard key uses the platform's binding, else `fallback`."""
        action = QAction(text, self)
        if isinstance(shortcut, QKeySequence.StandardKey):
            keys = QKeySequence.keyBindings(shortcut)
            if fallback and QKeySequence(fallback) not in keys:
                keys.append(QKeySequence(fallback))
            action.setShortcuts(keys)
        elif shortcut:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_menus(self) -> None:
        menu = self.menuBar()
        file = menu.addMenu("&File")
        self.new_action = self._action(
            "&New Library…",
            self.choose_new_library,
            "Ctrl+Shift+N",
            tip="Create a new, empty library in a folder",
        )
        self.open_action = self._action(
            "&Open Library…",
            self.choose_open_library,
            QKeySequence.StandardKey.Open,
            fallback="Ctrl+O",
            tip="Open another library",
        )
        self.import_action = self._action(
            "&Import Folder…",
            self.choose_import_folder,
            "Ctrl+I",
            tip="Catalogue a folder of photos and documents",
        )
        self.import_files_action = self._action(
            "Import &Files…", self.choose_import_files, "Ctrl+Shift+I"
        )
        self.watch_action = self._action(
            "&Watch Folder…",
            self.choose_watch_folder,
            tip="Keep a folder in step: what arrives there is imported by itself",
        )
        self.settings_action = self._action(
            "&Settings…",
            self.show_settings,
            QKeySequence.StandardKey.Preferences,
            fallback="Ctrl+,",
        )
        self.quit_action = self._action(
            "&Quit", self.close, QKeySequence.StandardKey.Quit, fallback="Ctrl+Q"
        )
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        for action in (self.new_action, self.open_action):
            file.addAction(action)
        file.addSeparator()
        file.addAction(self.import_action)
        file.addAction(self.import_files_action)
        file.addAction(self.watch_action)
        file.addSeparator()
        file.addAction(self.settings_action)
        file.addSeparator()
        file.addAction(self.quit_action)

        view = menu.addMenu("&View")
        self.jobs_action = self.jobs_dock.toggleViewAction()
        self.jobs_action.setText("&Jobs")
        self.jobs_action.setShortcut(QKeySequence("Ctrl+J"))
        self.addAction(self.jobs_action)
        view.addAction(self.jobs_action)
        self.detail_action = self._action("&Details", self.toggle_detail, "Ctrl+D")
        self.detail_action.setCheckable(True)
        view.addAction(self.detail_action)
        view.addSeparator()
        self.find_action = self._action(
            "&Find…", self.focus_search, QKeySequence.StandardKey.Find, fallback="Ctrl+F"
        )
        view.addAction(self.find_action)
        self.refresh_action = self._action(
            "&Refresh", self.refresh, QKeySequence.StandardKey.Refresh, fallback="F5"
        )
        view.addAction(self.refresh_action)

        item = menu.addMenu("&Item")
        self.show_folder_action = self._action(
            "Show in &Folder", self.show_in_folder, "Ctrl+Shift+F"
        )
        self.retry_action = self._action("&Retry Failed Steps", self.retry_selected, "Ctrl+Shift+R")
        item.addAction(self.show_folder_action)
        item.addAction(self.retry_action)
        self.escape_action = self._action("Close Details", self.close_detail, "Esc")

        help_menu = menu.addMenu("&Help")
        about = self._action("&About Shoebox", self.show_about)
        about.setMenuRole(QAction.MenuRole.AboutRole)
        help_menu.addAction(about)

    def _jobs_dock_shown(self, visible: bool) -> None:
        """The first time the jobs panel opens, give it a third of the height, not more."""
        if visible and not self._jobs_sized and not self.jobs_dock.isFloating():
            self._jobs_sized = True
            self.resizeDocks(
                [self.jobs_dock], [max(260, self.height() // 3)], Qt.Orientation.Vertical
            )

    # -- library -----------------------------------------------------------------

    def open_library(self, folder: Path) -> bool:
        """Show the library in `folder` (created when new); False if it cannot be opened."""
        self.close_library()
        try:
            library = library_ops.open_library(Path(folder))
        except Exception as exc:  # e.g. written by a newer Shoebox, or not writable
            log.exception("cannot open library %s", folder)
            self.setWindowTitle("Shoebox")
            self.sidebar.show_no_library()
            self.grid.set_empty_message("No library open", "Choose File ▸ Open Library… (Ctrl+O).")
            QMessageBox.critical(self, "Open Library", f"Cannot open the library {folder}:\n{exc}")
            return False
        self.library = library
        self._seq = library.seq()  # before the ids are read: nothing falls in between
        self.thumbs = ThumbnailCache(library.root, THUMB_BOX, self)
        self.grid_model.set_library(library, self.thumbs)
        self.setWindowTitle(f"{library.root.name} — Shoebox")
        self._install_panels(library)
        self.host = HostControl(library.root, self, env=self.host_env)
        self.host.restarted.connect(self._host_restarted)
        self.host.locked.connect(self._host_locked)
        self.host.started.connect(lambda _pid: self._update_worker_label())
        if self.start_host:
            self.host.start()
        self._update_worker_label()
        self.state.setValue("library/last", str(library.root))
        self.poll_timer.start()
        self._update_status()
        self._update_empty_message()
        self.library_opened.emit(str(library.root))
        return True

    def close_library(self) -> None:
        library = self.library
        if library is None:
            return
        self.poll_timer.stop()
        for op in self.imports:
            op.cancel.set()
        wait_for_pool()
        if self.host is not None:
            self.host.stop()
            self.host.deleteLater()
            self.host = None
        self.detail.clear()
        self.close_detail()
        self.grid_model.set_library(None)
        if self.thumbs is not None:
            self.thumbs.close()
            self.thumbs.deleteLater()
            self.thumbs = None
        self._remove_panels()
        self.library = None
        library.close()

    def _install_panels(self, library: Library) -> None:
        imports, watched = self.sidebar.show_library(library)
        watched.addRequested.connect(self.choose_watch_folder)
        jobs = JobsPanel(library)
        # In a scroll area: the dock can then be as short as the user likes.
        holder = QScrollArea()
        holder.setWidgetResizable(True)
        holder.setFrameShape(QFrame.Shape.NoFrame)
        holder.setWidget(jobs)
        self.jobs_dock.setWidget(holder)
        self.jobs_panel = jobs
        self.panels = [imports, watched, jobs]
        self.status_summary = StatusSummary(library)

    def _remove_panels(self) -> None:
        holder = self.jobs_dock.widget()
        self.sidebar.clear()
        if holder is not None:
            holder.hide()
            holder.setParent(None)
            holder.deleteLater()
        self.jobs_panel = None
        self.panels = []
        self.status_summary = None

    # -- polling -----------------------------------------------------------------

    def poll(self) -> Changes | None:
        """One tick: what changed since the last one, refreshed where it shows."""
        library = self.library
        if library is None:
            return None
        changes = library.changes_since(self._seq)
        moved = bool(changes.seq != self._seq or changes.item_ids or changes.session_ids)
        self._seq = changes.seq
        if changes.item_ids:
            self.grid_model.apply_changes(changes.item_ids)
            self.detail.refresh(changes.item_ids)
        now = time.monotonic()
        if moved or now - self._panels_at >= PANEL_IDLE_S:
            self._panels_at = now
            for panel in self.panels:
                panel.refresh(changes if moved else None)
            self._update_status()
        return changes

    def refresh(self) -> None:
        """F5: re-read everything."""
        self.grid_model.reload()
        if self.thumbs is not None:
            self.thumbs.clear()
        self.grid.viewport().update()
        self.detail.reload()
        for panel in self.panels:
            panel.refresh(None)
        self._update_status()

    def _update_status(self) -> None:
        """Refresh the status bar: the queue summary is computed off the GUI thread
        (it reads the ledger), at most one at a time; the count shown is local."""
        self._update_worker_label()
        library = self.library
        if library is None:
            self.summary_label.setText("")
            self._status_text = ""
            return
        self._show_status()
        if self._status_running:
            self._status_again = True
            return
        self._status_running = True
        summary = self.status_summary

        def compute() -> str:
            if summary is not None:
                return summary.text()
            c = browse.counts(library.catalog.conn)
            text = f"{c['items']:,} items"
            busy = c.get("queued", 0) + c.get("running", 0)
            if busy:
                text += f" · {busy:,} jobs to do"
            failed = c.get("failed", 0) + c.get("dead", 0)
            return text + (f" · {failed:,} failed" if failed else "")

        def done(text: str) -> None:
            self._status_running = False
            if library is self.library:
                self._status_text = text
                self._show_status()
            if self._status_again:
                self._status_again = False
                self._update_status()

        def failed(exc: BaseException) -> None:
            self._status_running = False
            log.error("status summary failed", exc_info=exc)

        run_in_thread(compute, done, failed)

    def _show_status(self) -> None:
        text = self._status_text
        query = self.grid_model.query
        if query != BrowseQuery(sort=query.sort):
            shown = f"{self.grid_model.rowCount():,} shown"
            text = f"{shown} · {text}" if text else shown
        self.summary_label.setText(text)

    def _update_worker_label(self) -> None:
        host = self.host
        if host is None:
            self.worker_label.setText("")
        elif host.is_locked_out:
            self.worker_label.setText("Worker: another Shoebox is processing this library")
        elif host.running:
            self.worker_label.setText("Worker running")
        else:
            self.worker_label.setText("Worker stopped")

    def _host_restarted(self, code: int) -> None:
        self.show_notice(HOST_DIED)
        log.warning("worker host exited with status %s and was restarted", code)
        self._update_worker_label()

    def _host_locked(self) -> None:
        self.show_notice(
            "Another Shoebox process is working on this library; "
            "its progress shows here and this window takes over when it ends."
        )
        self._update_worker_label()

    def show_notice(self, text: str) -> None:
        self.notices.append(text)
        self.notice.show_message(text)
        self.statusBar().showMessage(text, NOTICE_MS)

    # -- import ------------------------------------------------------------------

    def import_paths(self, paths: Sequence[str]) -> import_ops.ImportOp | None:
        library = self.library
        wanted = import_ops.existing_paths(list(paths))
        if library is None or not wanted:
            return None
        op = import_ops.start_import(library, wanted, self._import_finished)
        self.imports.append(op)
        names = ", ".join(os.path.basename(p.rstrip(os.sep)) or p for p in wanted[:3])
        self.statusBar().showMessage(f"Importing {names}…", 4000)
        self.poll()
        return op

    def _import_finished(self, op: import_ops.ImportOp) -> None:
        if op in self.imports:
            self.imports.remove(op)
        if op.error is not None:
            self.show_notice(f"The import stopped: {op.error}")
        elif op.summary is not None:
            s = op.summary
            parts = [f"{s.files_seen:,} files", f"{s.items_new:,} new"]
            if s.duplicates:
                parts.append(f"{s.duplicates:,} duplicates")
            if s.skipped:
                parts.append(f"{s.skipped:,} skipped")
            if s.unreadable:
                parts.append(f"{s.unreadable:,} unreadable")
            self.statusBar().showMessage("Catalogued: " + ", ".join(parts), 8000)
        self.poll()

    def choose_import_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Import Folder", str(self.state.value("import/last", os.path.expanduser("~")))
        )
        if folder:
            self.state.setValue("import/last", folder)
            self.import_paths([folder])

    def choose_import_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Import Files", str(self.state.value("import/last", os.path.expanduser("~")))
        )
        if files:
            self.state.setValue("import/last", os.path.dirname(files[0]))
            self.import_paths(files)

    # -- watched folders -----------------------------------------------------------

    def watch_folder(self, path: str) -> watch_ops.WatchStarted | None:
        """Watch `path`; what it holds now is imported in the background (imports panel)."""
        library = self.library
        if library is None:
            return None
        try:
            started = watch_ops.watch_folder(library, path, self._import_finished)
        except watch_ops.WATCH_ERRORS as exc:
            self.show_notice(f"Cannot watch that folder: {exc}")
            return None
        if started.import_op is not None:
            self.imports.append(started.import_op)
        if self.watched_panel is not None:
            self.watched_panel.reload()
            self.watched_panel.select_path(started.folder.path)
        if started.already_watched:
            self.statusBar().showMessage(f"{started.folder.display} is already watched.", 4000)
        else:
            self.statusBar().showMessage(
                f"Watching {started.folder.display}: new files are imported as they arrive.",
                6000,
            )
        self.poll()
        return started

    def choose_watch_folder(self) -> None:
        if self.library is None:
            return
        folder = QFileDialog.getExistingDirectory(
            self, "Watch Folder", str(self.state.value("watch/last", os.path.expanduser("~")))
        )
        if folder:
            self.state.setValue("watch/last", folder)
            self.watch_folder(folder)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self.library is not None and local_paths(event.mimeData()):
            event.acceptProposedAction()
            self.grid.set_drop_highlight(True)
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if self.library is not None and local_paths(event.mimeData()):
            event.acceptProposedAction()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self.grid.set_drop_highlight(False)
        super().dragLeaveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        self.grid.set_drop_highlight(False)
        paths = local_paths(event.mimeData())
        if not paths or self.library is None:
            event.ignore()
            return
        event.acceptProposedAction()
        self.import_paths(paths)

    # -- library dialogs ---------------------------------------------------------

    def choose_open_library(self) -> None:
        start = str(self.library.root.parent) if self.library else os.path.expanduser("~")
        folder = QFileDialog.getExistingDirectory(self, "Open Library", start)
        if not folder:
            return
        path = Path(folder)
        if not library_ops.is_library(path):
            answer = QMessageBox.question(
                self,
                "Open Library",
                f"“{path.name}” is not a Shoebox library yet. Create a new library there?",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.open_library(path)

    def choose_new_library(self) -> None:
        start = str(self.library.root.parent) if self.library else os.path.expanduser("~")
        folder = QFileDialog.getExistingDirectory(
            self, "New Library: choose an empty folder", start
        )
        if not folder:
            return
        path = Path(folder)
        if not library_ops.is_library(path) and any(path.iterdir()):
            path = path / "Shoebox Library"  # never mix the catalog with the user's own files
        self.open_library(path)

    def show_settings(self) -> None:
        library = self.library
        if library is None:
            return
        dialog = SettingsDialog(library, self)
        if dialog.exec() != SettingsDialog.DialogCode.Accepted:
            return
        self.apply_settings(dialog)

    def apply_settings(self, dialog: SettingsDialog) -> None:
        library = self.library
        if library is None:
            return
        library_ops.apply_settings(
            library, workers=dialog.worker_settings(), device=dialog.device_choice()
        )
        if self.host is not None and self.start_host:
            self.host.restart()
        self._update_worker_label()
        self.statusBar().showMessage("Settings saved; the background worker restarted.", 5000)

    def show_about(self) -> None:
        from engine import __version__

        QMessageBox.about(
            self,
            "About Shoebox",
            f"<b>Shoebox {__version__}</b><p>A local-first organizer for your photos and "
            "scanned documents. Nothing leaves this computer, and your original files are "
            "never changed.</p>",
        )

    # -- grid, filter, detail ----------------------------------------------------

    def current_query(self) -> BrowseQuery:
        return BrowseQuery(
            sort=self.sort_box.currentData() or "added",
            kind=self.kind_box.currentData() or "",
            state=self.state_box.currentData() or "all",
            text=self.search.text(),
        )

    def _apply_query(self) -> None:
        self._search_timer.stop()
        self.grid_model.set_query(self.current_query())
        self._show_status()

    def _update_empty_message(self) -> None:
        query = self.grid_model.query
        if query == BrowseQuery(sort=query.sort):
            self.grid.set_empty_message(
                "Drop a folder here",
                "Photos and scanned documents appear at once and are processed in the "
                "background.\nOr choose File ▸ Import Folder… (Ctrl+I).",
            )
        else:
            self.grid.set_empty_message(
                "Nothing matches", "Try another filter or clear the search."
            )
        self._show_status()

    def focus_search(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def _focus_grid(self) -> None:
        self.grid.setFocus()
        if not self.grid.currentIndex().isValid() and self.grid_model.rowCount():
            self.grid.setCurrentIndex(self.grid_model.index(0, 0))

    def selected_ids(self) -> list[int]:
        return [int(i.data(ItemIdRole)) for i in self.grid.selectionModel().selectedIndexes()]

    def current_id(self) -> int | None:
        index = self.grid.currentIndex()
        return int(index.data(ItemIdRole)) if index.isValid() else None

    def _remember_current(self) -> None:
        self._restore_id = self.current_id()

    def _restore_current(self) -> None:
        if self._restore_id is None:
            return
        row = self.grid_model.row_of(self._restore_id)
        self._restore_id = None
        if row is not None:
            index = self.grid_model.index(row, 0)
            self.grid.setCurrentIndex(index)
            self.grid.scrollTo(index)

    def _selection_changed(self, selected: QItemSelection, deselected: QItemSelection) -> None:
        item_id = self.current_id()
        if self.detail.isVisible() and self.library is not None and item_id is not None:
            self.detail.show_item(self.library, item_id)

    def open_detail(self, index: QModelIndex | None = None) -> None:
        if self.library is None:
            return
        index = index if index is not None and index.isValid() else self.grid.currentIndex()
        if not index.isValid():
            return
        item_id = int(index.data(ItemIdRole))
        library_ops.look_at(self.library, item_id)
        self.detail.show()
        self.detail_action.setChecked(True)
        self.detail.show_item(self.library, item_id)

    def close_detail(self) -> None:
        if self.detail.isVisible():
            self.detail.hide()
            self.grid.setFocus()
        self.detail_action.setChecked(False)

    def toggle_detail(self) -> None:
        if self.detail.isVisible():
            self.close_detail()
        else:
            self.open_detail()
            if not self.detail.isVisible():
                self.detail_action.setChecked(False)

    def show_in_folder(self) -> None:
        if self.library is None or self.current_id() is None:
            return
        detail = browse.item_detail(self.library.catalog.conn, int(self.current_id() or 0))
        if detail is not None and detail.paths:
            open_containing_folder(detail.paths[0])

    def retry_selected(self) -> None:
        ids = self.selected_ids()
        if ids:
            self.retry_items(*ids)

    def retry_items(self, *item_ids: int) -> None:
        if self.library is None:
            return
        count = library_ops.retry_items(self.library, item_ids)
        self.statusBar().showMessage(f"{count} step(s) queued again.", 4000)
        self.poll()

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
