"""Watched folders: start and stop watching; list them for the sidebar.

The watching itself happens in the worker host (`shoebox work` runs a
`FolderWatcher`, which re-reads the list every couple of seconds); the app only
edits the list. Adding a folder writes one row on the GUI thread, then catalogues
what is already there through the ordinary background import, so its progress
shows in the imports panel like any other import.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from desktop.operations.imports import ImportOp, start_import
from engine.library import Library
from engine.watch import (
    WatchedFolder,
    add_watch,
    import_roots,
    list_watches,
    normalize,
    remove_watch,
)

# What `add_watch` refuses, with a message a person can read.
WATCH_ERRORS: tuple[type[Exception], ...] = (FileNotFoundError, NotADirectoryError, ValueError)


@dataclass(frozen=True)
class WatchEntry:
    """One watched folder as the sidebar shows it."""

    path: str
    display: str
    name: str
    available: bool


@dataclass
class WatchStarted:
    folder: WatchedFolder
    already_watched: bool
    import_op: ImportOp | None  # None when nothing needed importing


def watched_folders(library: Library) -> list[WatchEntry]:
    """The watched folders, by name; `available` is false where the folder is not there
    (an unplugged drive: the host's watcher catches up when it comes back)."""
    out = []
    for w in list_watches(library):
        name = os.path.basename(w.display.rstrip("/")) or w.display
        out.append(WatchEntry(w.path, w.display, name, w.exists))
    return sorted(out, key=lambda e: (e.name.casefold(), e.display))


def watch_folder(
    library: Library,
    path: str,
    on_import_finished: Callable[[ImportOp], None] | None = None,
) -> WatchStarted:
    """Watch `path` and, if it was not watched yet, import what it holds in the background.

    Raises one of `WATCH_ERRORS` (no such folder, not a folder, inside the library).
    """
    folder_path = normalize(path)
    already = any(w.path == folder_path for w in list_watches(library))
    folder = add_watch(library, folder_path, import_now=False)
    if already:
        return WatchStarted(folder, True, None)
    # The library's own folder is left out where it lies inside the watched one.
    root = os.fspath(library.root)
    excluded = {os.path.abspath(root), os.path.realpath(root)}
    roots = import_roots(folder.path, excluded, skip_hidden=library.settings.skip_hidden)
    op = start_import(library, roots, on_import_finished) if roots else None
    return WatchStarted(folder, False, op)


def unwatch_folder(library: Library, path: str) -> bool:
    """Stop watching `path`; its items stay in the library. False if it was not watched."""
    return remove_watch(library, path)
