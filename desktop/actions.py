"""The window's commands: each asks the user what it needs (a file dialog, a question),
calls `desktop.operations`, says in the status bar what happened, and returns.

They take the window as their first argument and touch only its public parts; the
menus that run them are the table in `desktop.menus`. No business logic lives here
either: what a command does to the library is an operation.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from desktop.dialogs.new_label import NewLabelDialog
from desktop.dialogs.settings import SettingsDialog
from desktop.itemmodels.grid import ItemIdRole
from desktop.operations import imports as import_ops
from desktop.operations import labels as label_ops
from desktop.operations import library as library_ops
from desktop.operations import search as search_ops
from desktop.operations import similar as similar_ops
from desktop.operations import watch as watch_ops
from desktop.qt import QFileDialog, QMenu, QMessageBox, QModelIndex, QPoint
from desktop.threads import run_in_thread
from desktop.views.detail import open_containing_folder
from engine import browse
from engine.errors import SettingsError
from engine.learning.names import LabelError
from engine.search_view import FilterChip, with_filter, without_filter

if TYPE_CHECKING:
    from desktop.mainwindow import MainWindow

log = logging.getLogger("shoebox.desktop")

# Orders what Esc closes: the detail pane, the similar view and the search results, the
# latest first.
_opened = itertools.count(1)


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
    before = {key: library.settings.get(key) for key in library_ops.MODEL_KEYS}
    try:
        library_ops.apply_settings(
            library,
            workers=dialog.worker_settings(),
            device=dialog.device_choice(),
            values=dialog.model_values(),
        )
    except SettingsError as exc:
        window.show_notice(f"Settings not saved: {'; '.join(exc.problems) or exc}")
        return
    if window.host is not None and window.start_host:
        window.host.restart()  # the new host loads the new models
    window.host_banner.refresh()
    window.detail.reload()  # e.g. the embedding model it prefers
    changed = [k for k in library_ops.MODEL_KEYS if library.settings.get(k) != before[k]]
    message = "Settings saved; the background worker restarted."
    if changed:
        message += " Items are re-processed with the new model settings in the background."
    window.statusBar().showMessage(message, 8000)


def show_about(window: MainWindow) -> None:
    from engine import __version__

    QMessageBox.about(
        window,
        "About Shoebox",
        f"<b>Shoebox {__version__}</b><p>A local-first organizer for your photos and "
        "scanned documents. Nothing leaves this computer, and your original files are "
        "never changed.</p>",
    )


def run_self_test(window: MainWindow) -> None:
    """Help ▸ Run Self-Test…: one report window at a time; the menu again raises it."""
    from desktop.dialogs.selftest import SelfTestWindow

    dialog = window.findChild(SelfTestWindow, "selfTestWindow")
    if not isinstance(dialog, SelfTestWindow):
        dialog = SelfTestWindow(window)
    fresh = not dialog.isVisible() and not dialog.running  # new, or closed since its run
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    if fresh:
        dialog.start()


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
    if not window.detail.isVisible():
        window.detail.opened_at = next(_opened)
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


def escape(window: MainWindow) -> None:
    """Esc: in the search box, clear the search; else close what was opened last: the
    detail pane, the similar items or the search results."""
    searching = window.search_state.active or window.search_bar.isVisible()
    if window.search.hasFocus() and (searching or window.search.text()):
        leave_search(window)
        return
    opened: list[tuple[int, Callable[[MainWindow], None]]] = []
    if window.detail.isVisible():
        opened.append((window.detail.opened_at, close_detail))
    if window.similar_bar.active:
        opened.append((window.similar_bar.opened_at, leave_similar))
    if searching:
        opened.append((window.search_state.opened_at, leave_search))
    if opened:
        max(opened, key=lambda o: o[0])[1](window)


def set_show_objects(window: MainWindow, on: bool) -> None:
    """Draw the detected objects over the detail pane's preview, or not (remembered)."""
    window.objects_action.setChecked(on)
    window.detail.set_show_objects(on)
    window.state.setValue("detail/show_objects", on)


# -- similar items -----------------------------------------------------------------------


def _name(window: MainWindow, item_id: int) -> str:
    row = window.grid_model.row_of(item_id)
    data = window.grid_model.row_data(row) if row is not None else None
    return data.name if data is not None else f"item {item_id}"


def more_like_this(window: MainWindow) -> None:
    """Ctrl+M: show the items that look like the current one, most alike first. The
    query runs off the GUI thread (its first call builds the vector index)."""
    library, item_id = window.library, window.current_id()
    if library is None or item_id is None:
        window.statusBar().showMessage("Select an item to see the items like it.", 4000)
        return
    name = _name(window, item_id)
    bar = window.similar_bar
    bar.request += 1
    request = bar.request
    if not similar_ops.has_embedding(library, item_id):
        window.statusBar().showMessage(
            similar_ops.no_embedding_message(library, item_id, name), 10_000
        )
        return
    similar_ops.prepare(library)
    window.statusBar().showMessage(f"Finding items like {name}…")

    def current() -> bool:
        return request == bar.request and window.library is library

    def done(ids: list[int]) -> None:
        if current():
            show_similar(window, item_id, name, ids)

    def failed(exc: BaseException) -> None:
        if not current():
            return
        if isinstance(exc, LookupError | ValueError):
            text = str(exc.args[0]) if exc.args else str(exc)
        else:
            log.error("finding items like %s failed", item_id, exc_info=exc)
            text = f"Cannot find items like {name}: {exc}"
        window.statusBar().showMessage(text, 10_000)

    run_in_thread(lambda: similar_ops.find_similar(library, item_id), done, failed)


def show_similar(window: MainWindow, item_id: int, name: str, ids: Sequence[int]) -> None:
    """The grid shows `ids` (in this order) under a "Similar to NAME ×" bar."""
    if not ids:
        window.statusBar().showMessage(f"No other item looks like {name} yet.", 6000)
        return
    window.statusBar().clearMessage()
    window.similar_bar.opened_at = next(_opened)
    window.similar_bar.show_for(item_id, name, len(ids))
    model = window.grid_model
    model.set_id_filter(ids)
    window.grid.setCurrentIndex(model.index(0, 0))
    window.grid.scrollToTop()
    window.grid.setFocus()


def leave_similar(window: MainWindow, *, reselect: bool = True) -> None:
    """Back to the whole library (the query's list), the item the view was about current."""
    bar = window.similar_bar
    item_id = bar.item_id
    bar.request += 1  # a query still running is not shown
    if not bar.active:
        return
    bar.clear()
    model = window.grid_model
    if reselect and item_id is not None:

        def select() -> None:
            model.reloaded.disconnect(select)
            row = model.row_of(item_id)
            if row is not None:
                window.grid.setCurrentIndex(model.index(row, 0))
                window.grid.scrollTo(model.index(row, 0))

        model.reloaded.connect(select)
    shown = window.search_state.shown  # back to the search results it was opened from
    model.set_id_filter(shown.ids if shown else None, shown.reasons if shown else None)
    window.grid.setFocus()


# -- search ------------------------------------------------------------------------------


def search(window: MainWindow, *, typing: bool = False) -> None:
    """Search for what the box says, in a worker (typing: the last word may be
    unfinished). A newer search drops the late results of an older one; an empty
    box is the whole library again."""
    library, box = window.library, window.search
    box.cancel_pending()
    text = box.text()
    if library is None:
        return
    if not text.strip():
        leave_search(window)
        return
    search_ops.prepare(library)
    query = window.toolbar.query()

    def done(outcome: search_ops.SearchOutcome) -> None:
        if window.library is library:
            show_search_results(window, outcome)

    def failed(exc: BaseException) -> None:
        log.error("searching for %r failed", text, exc_info=exc)
        if window.library is library:
            window.search_bar.show_summary(text, None, error=f"The search failed: {exc}")

    search_ops.start_search(
        library,
        window.search_state,
        text,
        done,
        failed,
        kind=query.kind,
        state_filter=query.state,
        typing=typing,
    )
    if not window.search_state.active:
        window.search_bar.show_summary(text.strip(), None)  # "Searching for …"


def show_search_results(window: MainWindow, outcome: search_ops.SearchOutcome) -> None:
    """The grid shows the hits, best first, each with its reason; a query that cannot
    be read keeps what is shown and says why."""
    state, bar, model = window.search_state, window.search_bar, window.grid_model
    text = outcome.request.text.strip()
    if outcome.error:
        bar.show_summary(text, None, error=outcome.error)
        return
    if state.shown is None:
        state.opened_at = next(_opened)
    state.shown = outcome
    if window.similar_bar.active:  # a new question: the similar items make way
        window.similar_bar.request += 1
        window.similar_bar.clear()
    bar.show_summary(text, len(outcome.hits))
    bar.show_notes(outcome.notes)
    window.detail.set_search(outcome.terms, {h.id: h for h in outcome.hits})
    model.set_id_filter(outcome.ids, outcome.reasons)
    if outcome.hits:
        window.grid.setCurrentIndex(model.index(0, 0))
        window.grid.scrollToTop()
    show_search_reason(window)


def show_search_reason(window: MainWindow) -> None:
    """Why the current item matched, in the search bar."""
    shown, item_id = window.search_state.shown, window.current_id()
    hit = shown.hit(item_id) if shown is not None and item_id is not None else None
    if hit is None:
        window.search_bar.show_reason("", None)
    else:
        window.search_bar.show_reason(_name(window, hit.id), hit.why)


def leave_search(window: MainWindow, *, reselect: bool = True) -> None:
    """Clear the search: the whole library again, the current item kept current."""
    state = window.search_state
    state.supersede()  # a search still running is not shown
    window.search.set_text_quietly("")
    window.search_bar.clear()
    if state.shown is None:
        return
    state.shown = None
    window.detail.set_search([], {})
    if window.similar_bar.active:
        window.similar_bar.request += 1
        window.similar_bar.clear()
    item_id = window.current_id() if reselect else None
    model = window.grid_model
    if item_id is not None:

        def select() -> None:
            model.reloaded.disconnect(select)
            row = model.row_of(item_id)
            if row is not None:
                window.grid.setCurrentIndex(model.index(row, 0))
                window.grid.scrollTo(model.index(row, 0))

        model.reloaded.connect(select)
    model.set_id_filter(None)


def search_text_changed(window: MainWindow, text: str) -> None:
    """The box's inline filters as chips, as they are typed."""
    window.search_bar.show_chips(search_ops.filter_chips(text))


def remove_search_filter(window: MainWindow, chip: FilterChip) -> None:
    """A chip's ×: the filter leaves the query, which runs again."""
    text = window.search.text()
    chips = search_ops.filter_chips(text)
    same = [c for c in chips if (c.key, c.value) == (chip.key, chip.value)]
    if same:
        window.search.set_text_quietly(without_filter(text, same[0]))
    search(window)


def add_search_filter(window: MainWindow, key: str, value: str) -> None:
    """The Filter menu: `key:value` joins the query (and it runs); with no value the
    box gets `key:` for the user to finish."""
    box = window.search
    box.set_text_quietly(with_filter(box.text(), key, value))
    box.setFocus()
    box.end(False)
    if value:
        search(window)


# -- the grid's context menu -------------------------------------------------------------


def grid_menu(window: MainWindow, index: QModelIndex) -> QMenu:
    """The context menu of the item at `index` (made current unless it is selected)."""
    grid = window.grid
    if not grid.selectionModel().isSelected(index):
        grid.setCurrentIndex(index)
    menu = QMenu(grid)
    menu.addAction("Show Details", lambda: open_detail(window, index))
    menu.addAction(window.more_like_this_action)
    menu.addSeparator()
    menu.addAction(window.new_label_action)
    names = label_ops.label_names(window.library) if window.library is not None else []
    if names:
        add = menu.addMenu("Add to Label")
        add.setObjectName("addToLabelMenu")
        for name in names:
            add.addAction(name, partial(add_selection_to_label, window, name))
    menu.addSeparator()
    menu.addAction(window.show_folder_action)
    menu.addAction(window.retry_action)
    if window.similar_bar.active:
        menu.addSeparator()
        menu.addAction("Back to the Whole Library", lambda: leave_similar(window))
    return menu


def show_grid_menu(window: MainWindow, pos: QPoint) -> None:
    index = window.grid.indexAt(pos)
    if index.isValid():
        grid_menu(window, index).exec(window.grid.viewport().mapToGlobal(pos))


# -- labels ------------------------------------------------------------------------------


def _selection(window: MainWindow) -> list[int]:
    ids = window.selected_ids()
    current = window.current_id()
    return ids or ([current] if current is not None else [])


def new_label_from_selection(window: MainWindow) -> NewLabelDialog | None:
    """Ctrl+L: ask for a name (a new label, or one of the library's to add to) and make
    the selected items its examples. The dialog is window-modal, not a nested loop."""
    library = window.library
    ids = _selection(window)
    if library is None:
        return None
    if not ids:
        window.statusBar().showMessage("Select the items that belong together first.", 5000)
        return None
    dialog = NewLabelDialog(len(ids), label_ops.label_names(library), window)
    dialog.accepted.connect(lambda: label_items(window, dialog.name(), ids))

    def finished(_result: int) -> None:
        if window.label_dialog is dialog:
            window.label_dialog = None
        dialog.deleteLater()

    dialog.finished.connect(finished)
    window.label_dialog = dialog
    dialog.open()
    return dialog


def add_selection_to_label(window: MainWindow, name: str) -> None:
    """The grid menu's Add to Label ▸ NAME."""
    ids = _selection(window)
    if ids:
        label_items(window, name, ids)


def label_items(window: MainWindow, name: str, ids: Sequence[int]) -> None:
    """The items are examples of `name` (made if new), off the GUI thread."""
    library = window.library
    if library is None or not name.strip():
        return

    def done(result: label_ops.Labelled) -> None:
        window.statusBar().showMessage(result.message(), 8000)
        window.poll()

    def failed(exc: BaseException) -> None:
        if not isinstance(exc, LabelError):
            log.error("labelling %d items as %r failed", len(ids), name, exc_info=exc)
        window.show_notice(f"Not labelled: {exc}")

    label_ops.run_label_op(lambda: label_ops.label_selection(library, name, ids), done, failed)


def remove_item_label(window: MainWindow, item_id: int, name: str) -> None:
    """The detail pane's × on a label: not NAME, for good (undo in the review window)."""
    library = window.library
    if library is None:
        return

    def done(changed: int) -> None:
        if changed:
            window.statusBar().showMessage(
                f"Removed {name}; it will not be applied to this item again "
                "(Undo in the review window: U).",
                8000,
            )
        window.poll()

    def failed(exc: BaseException) -> None:
        if not isinstance(exc, LabelError):
            log.error("removing %r from item %s failed", name, item_id, exc_info=exc)
        window.show_notice(f"The label was not removed: {exc}")

    label_ops.run_label_op(lambda: label_ops.remove_label(library, name, [item_id]), done, failed)


def undo_label_change(window: MainWindow) -> None:
    """Item ▸ Undo Label Change (Ctrl+Z): the newest label decision of any label."""
    library = window.library
    if library is None:
        return

    def done(undone: str | None) -> None:
        window.statusBar().showMessage(f"Undid: {undone}." if undone else "Nothing to undo.", 8000)
        window.poll()

    def failed(exc: BaseException) -> None:
        log.error("undoing a label change failed", exc_info=exc)
        window.show_notice(f"Not undone: {exc}")

    label_ops.run_label_op(lambda: label_ops.undo(library), done, failed)


def show_label(window: MainWindow, name: str) -> None:
    """A label in the sidebar: the grid shows its items (the search `label:NAME`)."""
    text = with_filter("", "label", name)
    window.search.set_text_quietly(text)
    search_text_changed(window, text)
    search(window)


def show_review(window: MainWindow, label: str = "") -> None:
    """View ▸ Review Suggestions (Ctrl+Shift+L): the review window, on `label`'s queue
    (every label's when "")."""
    from desktop.views.review_window import ReviewWindow

    library, thumbs = window.library, window.thumbs
    if library is None or thumbs is None:
        return
    review = window.review_window
    if review is None:
        review = ReviewWindow(library, thumbs, window)
        window.review_window = review

        def closed() -> None:
            if window.review_window is review:
                window.review_window = None
            review.deleteLater()

        review.closed.connect(closed)
    review.set_label(label or None)
    review.show()
    review.raise_()
    review.activateWindow()
    review.setFocus()
