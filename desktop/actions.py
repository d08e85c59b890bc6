"""The window's commands: each asks the user what it needs (a file dialog, a question),
calls `desktop.operations`, says in the status bar what happened, and returns.

They take the window as their first argument and touch only its public parts; the
menus that run them are the table in `desktop.menus`. No business logic lives here
either: what a command does to the library is an operation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from desktop.dialogs.settings import SettingsDialog
from desktop.itemmodels.grid import ItemIdRole
from desktop.operations import imports as import_ops
from desktop.operations import library as library_ops
from desktop.operations import watch as watch_ops
from desktop.qt import QFileDialog, QMessageBox, QModelIndex
from desktop.views.detail import open_containing_folder
from engine import browse

if TYPE_CHECKING:
    from desktop.mainwindow import MainWindow


def _last(window: MainWindow, key: str) -> str:
    return str(window.state.value(key, os.path.expanduser("~")))


# -- libraries ---------------------------------------------------------------------------


def _choose_library_folder(window: MainWindow, title: str) -> Path | None:
    start = str(window.library.root.parent) if window.library else os.path.expanduser("~")
    folder = QFileDialog.getExistingDirectory(window, title, start)
    return Path(folder) if folder else None


def choose_new_library(window: MainWindow) -> None:
    path = _choose_library_folder(window, "New Library: choose an empty folder")
    if path is None:
        return
    if not library_ops.is_library(path) and any(path.iterdir()):
        path = path / "Shoebox Library"  # never mix the catalog with the user's own files
    window.open_library(path)


def choose_open_library(window: MainWindow) -> None:
    path = _choose_library_folder(window, "Open Library")
    if path is None:
        return
    if not library_ops.is_library(path):
        answer = QMessageBox.question(
            window,
            "Open Library",
            f"“{path.name}” is not a Shoebox library yet. Create a new library there?",
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
    window.open_library(path)


def show_settings(window: MainWindow) -> None:
    if window.library is None:
        return
    dialog = SettingsDialog(window.library, window)
    if dialog.exec() == SettingsDialog.DialogCode.Accepted:
        apply_settings(window, dialog)


def apply_settings(window: MainWindow, dialog: SettingsDialog) -> None:
    library = window.library
    if library is None:
        return
    library_ops.apply_settings(
        library, workers=dialog.worker_settings(), device=dialog.device_choice()
    )
    if window.host is not None and window.start_host:
        window.host.restart()
    window.host_banner.refresh()
    window.statusBar().showMessage("Settings saved; the background worker restarted.", 5000)


def show_about(window: MainWindow) -> None:
    from engine import __version__

    QMessageBox.about(
        window,
        "About Shoebox",
        f"<b>Shoebox {__version__}</b><p>A local-first organizer for your photos and "
        "scanned documents. Nothing leaves this computer, and your original files are "
        "never changed.</p>",
    )


# -- imports and watched folders ---------------------------------------------------------


def import_paths(window: MainWindow, paths: Sequence[str]) -> import_ops.ImportOp | None:
    """Catalogue `paths` in the background; the window cancels it if the library closes."""
    library = window.library
    wanted = import_ops.existing_paths(list(paths))
    if library is None or not wanted:
        return None
    op = import_ops.start_import(library, wanted, lambda op: import_finished(window, op))
    window.imports.append(op)
    names = ", ".join(os.path.basename(p.rstrip(os.sep)) or p for p in wanted[:3])
    window.statusBar().showMessage(f"Importing {names}…", 4000)
    window.poll()
    return op


def import_finished(window: MainWindow, op: import_ops.ImportOp) -> None:
    if op in window.imports:
        window.imports.remove(op)
    if op.error is not None:
        window.show_notice(f"The import stopped: {op.error}")
    elif op.summary is not None:
        window.statusBar().showMessage(import_ops.describe(op.summary), 8000)
    window.poll()


def choose_import_folder(window: MainWindow) -> None:
    folder = QFileDialog.getExistingDirectory(window, "Import Folder", _last(window, "import/last"))
    if folder:
        window.state.setValue("import/last", folder)
        import_paths(window, [folder])


def choose_import_files(window: MainWindow) -> None:
    files, _ = QFileDialog.getOpenFileNames(window, "Import Files", _last(window, "import/last"))
    if files:
        window.state.setValue("import/last", os.path.dirname(files[0]))
        import_paths(window, files)


def watch_folder(window: MainWindow, path: str) -> watch_ops.WatchStarted | None:
    """Watch `path`; what it holds now is imported in the background (imports panel)."""
    library = window.library
    if library is None:
        return None
    try:
        started = watch_ops.watch_folder(library, path, lambda op: import_finished(window, op))
    except watch_ops.WATCH_ERRORS as exc:
        window.show_notice(f"Cannot watch that folder: {exc}")
        return None
    if started.import_op is not None:
        window.imports.append(started.import_op)
    panel = window.watched_panel
    if panel is not None:
        panel.reload()
        panel.select_path(started.folder.path)
    if started.already_watched:
        window.statusBar().showMessage(f"{started.folder.display} is already watched.", 4000)
    else:
        window.statusBar().showMessage(
            f"Watching {started.folder.display}: new files are imported as they arrive.", 6000
        )
    window.poll()
    return started


def choose_watch_folder(window: MainWindow) -> None:
    if window.library is None:
        return
    folder = QFileDialog.getExistingDirectory(window, "Watch Folder", _last(window, "watch/last"))
    if folder:
        window.state.setValue("watch/last", folder)
        watch_folder(window, folder)


# -- items -------------------------------------------------------------------------------


def show_in_folder(window: MainWindow) -> None:
    item_id = window.grid.current_item_id()
    if window.library is None or item_id is None:
        return
    detail = browse.item_detail(window.library.catalog.conn, item_id)
    if detail is not None and detail.paths:
        open_containing_folder(detail.paths[0])


def retry_items(window: MainWindow, *item_ids: int) -> None:
    if window.library is None:
        return
    count = library_ops.retry_items(window.library, item_ids)
    window.statusBar().showMessage(f"{count} step(s) queued again.", 4000)
    window.poll()


def retry_selected(window: MainWindow) -> None:
    ids = window.grid.selected_item_ids()
    if ids:
        retry_items(window, *ids)


def open_detail(window: MainWindow, index: QModelIndex | None = None) -> None:
    """Show the item at `index` (else the current one) in the detail pane; its waiting
    jobs move to the interactive lane."""
    library = window.library
    if library is None:
        return
    index = index if index is not None and index.isValid() else window.grid.currentIndex()
    if not index.isValid():
        return
    item_id = int(index.data(ItemIdRole))
    library_ops.look_at(library, item_id)
    window.detail.show()
    window.detail_action.setChecked(True)
    window.detail.show_item(library, item_id)


def close_detail(window: MainWindow) -> None:
    if window.detail.isVisible():
        window.detail.hide()
        window.grid.setFocus()
    window.detail_action.setChecked(False)


def toggle_detail(window: MainWindow) -> None:
    if window.detail.isVisible():
        close_detail(window)
    else:
        open_detail(window)
        if not window.detail.isVisible():
            window.detail_action.setChecked(False)
