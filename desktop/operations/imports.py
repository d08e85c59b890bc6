"""Import files and folders: the session first (so it shows at once), the scan off-thread."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from desktop.threads import run_in_thread
from engine.importing.importer import ImportSummary
from engine.library import Library


@dataclass
class ImportOp:
    session_id: int
    paths: list[str]
    cancel: threading.Event = field(default_factory=threading.Event)
    summary: ImportSummary | None = None
    error: BaseException | None = None
    finished: bool = False


def existing_paths(paths: Sequence[str]) -> list[str]:
    return [p for p in paths if p and os.path.lexists(p)]


def start_import(
    library: Library,
    paths: Sequence[str],
    on_finished: Callable[[ImportOp], None] | None = None,
) -> ImportOp:
    """Create the import session now, catalogue the files in a worker thread.

    The importer commits every few dozen files, so items reach the grid (through the
    poll of `changes_since`) while the scan is still running.
    """
    wanted = [os.path.abspath(p) for p in paths]
    op = ImportOp(session_id=library.new_session(wanted), paths=wanted)

    def work() -> ImportSummary:
        return library.import_paths(wanted, session_id=op.session_id, cancel=op.cancel)

    def done(summary: ImportSummary) -> None:
        op.summary, op.finished = summary, True
        if on_finished is not None:
            on_finished(op)

    def failed(exc: BaseException) -> None:
        op.error, op.finished = exc, True
        if on_finished is not None:
            on_finished(op)

    run_in_thread(work, done, failed)
    return op


def describe(summary: ImportSummary) -> str:
    """What an import found, for the status bar: "Catalogued: 240 files, 238 new, …"."""
    parts = [f"{summary.files_seen:,} files", f"{summary.items_new:,} new"]
    if summary.duplicates:
        parts.append(f"{summary.duplicates:,} duplicates")
    if summary.skipped:
        parts.append(f"{summary.skipped:,} skipped")
    if summary.unreadable:
        parts.append(f"{summary.unreadable:,} unreadable")
    return "Catalogued: " + ", ".join(parts)
