"""The status bar's summary of the library: queue progress, and how many items a filter shows."""

from __future__ import annotations

import logging

from desktop.qt import QLabel, QWidget
from desktop.threads import run_in_thread
from desktop.views.imports_panel import StatusSummary
from engine import browse
from engine.library import Library

log = logging.getLogger("shoebox.desktop")


class SummaryLabel(QLabel):
    """The text is computed off the GUI thread (it reads the ledger), at most one
    computation at a time; "N shown" in front of it (`set_shown`) is local."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library: Library | None = None
        self.summary: StatusSummary | None = None
        self.shown: int | None = None  # rows a filter leaves; None when not filtered
        self._text = ""
        self._running = False
        self._again = False

    def set_library(self, library: Library | None, summary: StatusSummary | None) -> None:
        self.library, self.summary = library, summary
        if library is None:
            self._text = ""
        self._show()

    def set_shown(self, shown: int | None) -> None:
        self.shown = shown
        self._show()

    def _show(self) -> None:
        if self.library is None:
            self.setText("")
            return
        text = self._text
        if self.shown is not None:
            shown = f"{self.shown:,} shown"
            text = f"{shown} · {text}" if text else shown
        self.setText(text)

    def recompute(self) -> None:
        library = self.library
        if library is None:
            return
        if self._running:
            self._again = True
            return
        self._running = True
        summary = self.summary

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
            self._running = False
            if library is self.library:
                self._text = text
                self._show()
            if self._again:
                self._again = False
                self.recompute()

        def failed(exc: BaseException) -> None:
            self._running = False
            log.error("status summary failed", exc_info=exc)

        run_in_thread(compute, done, failed)
