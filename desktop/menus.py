"""The main window's menus, actions and shortcuts, built from one table.

A new command is one `ActionSpec` row in `MENUS` (its text, keys and what it runs:
a function of `desktop.actions`, or a window method). `build_actions` makes each
`QAction`, binds its keys, adds it to the window (so the key works wherever the
focus is) and sets it as `window.<name>`; a `dock=` row is the show/hide toggle of
that dock instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from desktop import actions
from desktop.qt import QAction, QDockWidget, QKeySequence

if TYPE_CHECKING:
    from desktop.mainwindow import MainWindow

Key = QKeySequence.StandardKey


@dataclass(frozen=True)
class ActionSpec:
    """One command. A standard key uses the platform's binding, plus `fallback` where
    the platform has none of it; `dock` names a `QDockWidget` attribute of the window
    whose toggle this is (and `run` is then unused)."""

    name: str  # the window attribute: window.<name>
    text: str
    run: Callable[[MainWindow], object] | None = None
    shortcut: QKeySequence.StandardKey | str | None = None
    fallback: str = ""
    tip: str = ""
    role: QAction.MenuRole | None = None
    checkable: bool = False
    dock: str = ""


SEPARATOR = None
Menu = tuple[str, tuple[ActionSpec | None, ...]]  # title ("": no menu, keys only), entries

MENUS: tuple[Menu, ...] = (
    (
        "&File",
        (
            ActionSpec(
                "new_action",
                "&New Library…",
                actions.choose_new_library,
                "Ctrl+Shift+N",
                tip="Create a new, empty library in a folder",
            ),
            ActionSpec(
                "open_action",
                "&Open Library…",
                actions.choose_open_library,
                Key.Open,
                "Ctrl+O",
                tip="Open another library",
            ),
            SEPARATOR,
            ActionSpec(
                "import_action",
                "&Import Folder…",
                actions.choose_import_folder,
                "Ctrl+I",
                tip="Catalogue a folder of photos and documents",
            ),
            ActionSpec(
                "import_files_action", "Import &Files…", actions.choose_import_files, "Ctrl+Shift+I"
            ),
            ActionSpec(
                "watch_action",
                "&Watch Folder…",
                actions.choose_watch_folder,
                tip="Keep a folder in step: what arrives there is imported by itself",
            ),
            SEPARATOR,
            ActionSpec(
                "settings_action", "&Settings…", actions.show_settings, Key.Preferences, "Ctrl+,"
            ),
            SEPARATOR,
            ActionSpec(
                "quit_action",
                "&Quit",
                lambda w: w.close(),
                Key.Quit,
                "Ctrl+Q",
                role=QAction.MenuRole.QuitRole,
            ),
        ),
    ),
    (
        "&View",
        (
            ActionSpec("jobs_action", "&Jobs", shortcut="Ctrl+J", dock="jobs_dock"),
            ActionSpec(
                "detail_action", "&Details", actions.toggle_detail, "Ctrl+D", checkable=True
            ),
            ActionSpec(
                "objects_action",
                "Show &Objects",
                lambda w: actions.set_show_objects(w, w.objects_action.isChecked()),
                "O",
                tip="Draw the detected objects over the picture in the detail pane",
                checkable=True,
            ),
            SEPARATOR,
            ActionSpec(
                "find_action", "&Find…", lambda w: w.toolbar.focus_search(), Key.Find, "Ctrl+F"
            ),
            ActionSpec("refresh_action", "&Refresh", lambda w: w.refresh(), Key.Refresh, "F5"),
            SEPARATOR,
            ActionSpec(
                "review_action",
                "Re&view Suggestions…",
                actions.show_review,
                "Ctrl+Shift+L",
                tip="Answer what Shoebox is not sure of about your labels, by key",
            ),
        ),
    ),
    (
        "&Item",
        (
            ActionSpec(
                "show_folder_action", "Show in &Folder", actions.show_in_folder, "Ctrl+Shift+F"
            ),
            ActionSpec(
                "more_like_this_action",
                "&More Like This",
                actions.more_like_this,
                "Ctrl+M",
                tip="Show the items that look like this one, most alike first",
            ),
            ActionSpec(
                "retry_action", "&Retry Failed Steps", actions.retry_selected, "Ctrl+Shift+R"
            ),
            SEPARATOR,
            ActionSpec(
                "undo_label_action",
                "&Undo Label Change",
                actions.undo_label_change,
                Key.Undo,
                "Ctrl+Z",
                tip="Take back the last label decision: an answer, a page, a removed label",
            ),
            ActionSpec(
                "new_label_action",
                "New &Label from Selection…",
                actions.new_label_from_selection,
                "Ctrl+L",
                tip="Name what the selected items have in common; Shoebox learns it",
            ),
        ),
    ),
    (
        "&Help",
        (
            ActionSpec(
                "self_test_action",
                "Run &Self-Test…",
                actions.run_self_test,
                tip="Check that Shoebox works on this computer: sample photos and documents, "
                "read, indexed and searched in a temporary library",
            ),
            SEPARATOR,
            ActionSpec(
                "about_action",
                "&About Shoebox",
                actions.show_about,
                role=QAction.MenuRole.AboutRole,
            ),
        ),
    ),
    ("", (ActionSpec("escape_action", "Back", actions.escape, "Esc"),)),
)


def make_action(window: MainWindow, spec: ActionSpec) -> QAction:
    """The `QAction` of one row, added to the window and set as `window.<spec.name>`."""
    if spec.dock:
        dock = getattr(window, spec.dock)
        assert isinstance(dock, QDockWidget), spec.dock
        action = dock.toggleViewAction()
        action.setText(spec.text)
    else:
        run = spec.run
        assert run is not None, spec.name
        action = QAction(spec.text, window)
        action.triggered.connect(lambda _checked=False: run(window))
    if isinstance(spec.shortcut, QKeySequence.StandardKey):
        keys = QKeySequence.keyBindings(spec.shortcut)
        if spec.fallback and QKeySequence(spec.fallback) not in keys:
            keys.append(QKeySequence(spec.fallback))
        action.setShortcuts(keys)
    elif spec.shortcut:
        action.setShortcut(QKeySequence(spec.shortcut))
    if spec.tip:
        action.setStatusTip(spec.tip)
    if spec.role is not None:
        action.setMenuRole(spec.role)
    action.setCheckable(spec.checkable or action.isCheckable())
    window.addAction(action)
    setattr(window, spec.name, action)
    return action


def build_actions(window: MainWindow, menus: tuple[Menu, ...] = MENUS) -> dict[str, QAction]:
    """Every action of `menus`, in the window's menu bar; returned by name too."""
    made: dict[str, QAction] = {}
    bar = window.menuBar()
    for title, entries in menus:
        menu = bar.addMenu(title) if title else None
        for spec in entries:
            if spec is None:
                if menu is not None:
                    menu.addSeparator()
                continue
            made[spec.name] = action = make_action(window, spec)
            if menu is not None:
                menu.addAction(action)
    return made
