"""The bar above the grid while it shows search results: the inline filters as chips
(× removes one), how many results and for what, what could not be searched (notes),
and why the current item matched.

It shows what it is given and says what the user asked for (`chipRemoved(chip)`,
`closeRequested`); the window changes the query (`desktop.actions`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from desktop.qt import (
    QColor,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPalette,
    QSizePolicy,
    Qt,
    QToolButton,
    QVBoxLayout,
    QWidget,
    Signal,
)
from desktop.views.flow_layout import FlowLayout
from desktop.views.grid import is_dark
from engine.search_view import FilterChip, why_html

CHIP_COLOUR = "#2563eb"


def _rgba(colour: QColor, alpha: int) -> str:
    return f"rgba({colour.red()}, {colour.green()}, {colour.blue()}, {alpha})"


class FilterChipView(QFrame):
    """One filter: its label and a ×."""

    removeRequested = Signal(object)  # the FilterChip

    def __init__(self, chip: FilterChip, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.chip = chip
        self.setObjectName("filterChip")
        colour = QColor(CHIP_COLOUR)
        self.setStyleSheet(
            f"QFrame#filterChip {{ background: {_rgba(colour, 34)};"
            f" border: 1px solid {_rgba(colour, 140)}; border-radius: 10px; }}"
        )
        row = QHBoxLayout(self)
        row.setContentsMargins(9, 1, 2, 1)
        row.setSpacing(2)
        self.label = QLabel(chip.label)
        self.label.setToolTip(f"Filter: {chip.key}:{chip.value}")
        row.addWidget(self.label)
        close = QToolButton()
        close.setObjectName("chipRemove")
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip(f"Remove this filter ({chip.key}:{chip.value})")
        close.setAccessibleName(f"Remove filter {chip.label}")
        close.clicked.connect(lambda: self.removeRequested.emit(self.chip))
        self.close_button = close
        row.addWidget(close)

    def text(self) -> str:
        return self.label.text()


class SearchBar(QFrame):
    """Shown while searching: `show_chips`, `show_summary`, `show_notes`, `show_reason`."""

    chipRemoved = Signal(object)  # a FilterChip
    closeRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("searchBar")
        self.chips: list[FilterChipView] = []
        outer = QVBoxLayout(self)
        outer.setContentsMargins(12, 4, 4, 6)
        outer.setSpacing(2)
        top = QHBoxLayout()
        top.setSpacing(8)
        self.summary = QLabel()
        self.summary.setObjectName("searchSummary")
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.chip_holder = QWidget()
        self.chip_flow = FlowLayout(self.chip_holder, spacing=5)
        close = QToolButton()
        close.setObjectName("searchClose")
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Clear the search and show the whole library (Esc)")
        close.setAccessibleName("Clear the search")
        close.clicked.connect(self.closeRequested)
        self.close_button = close
        top.addWidget(self.summary, 1)
        top.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        outer.addLayout(top)
        outer.addWidget(self.chip_holder)
        self.reason = QLabel()
        self.reason.setObjectName("searchReason")
        self.reason.setTextFormat(Qt.TextFormat.RichText)
        self.reason.setWordWrap(True)
        self.reason.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        outer.addWidget(self.reason)
        self.notes = QLabel()
        self.notes.setObjectName("searchNotes")
        self.notes.setWordWrap(True)
        self.notes.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        outer.addWidget(self.notes)
        self.chip_holder.hide()
        self.reason.hide()
        self.notes.hide()
        self.hide()

    def _muted(self) -> str:
        return self.palette().color(QPalette.ColorRole.PlaceholderText).name()

    def _style(self) -> None:
        highlight = self.palette().color(QPalette.ColorRole.Highlight)
        self.setStyleSheet(
            f"#searchBar {{ background: {_rgba(highlight, 22)};"
            f" border: 1px solid {_rgba(highlight, 110)}; border-radius: 6px; }}"
        )

    # -- content ---------------------------------------------------------------------

    def show_chips(self, chips: Sequence[FilterChip]) -> None:
        """The inline filters of the box's text, each removable."""
        for view in self.chips:
            self.chip_flow.removeWidget(view)
            view.deleteLater()
        self.chips = []
        for chip in chips:
            view = FilterChipView(chip)
            view.removeRequested.connect(self.chipRemoved)
            self.chip_flow.addWidget(view)
            self.chips.append(view)
        self.chip_holder.setVisible(bool(chips))

    def chip_texts(self) -> list[str]:
        return [c.text() for c in self.chips]

    def show_summary(self, text: str, count: int | None, *, error: str = "") -> None:
        """ "3 results for “invoice”, best first"; an error sentence instead, in red."""
        self._style()
        if error:
            colour = "#f87171" if is_dark(self.palette()) else "#b91c1c"
            self.summary.setText(f'<span style="color:{colour}">{html.escape(error)}</span>')
        elif count == 0:
            self.summary.setText(f"Nothing matches <b>“{html.escape(text)}”</b>")
        elif count is not None:
            noun = "result" if count == 1 else "results"
            self.summary.setText(f"{count:,} {noun} for <b>“{html.escape(text)}”</b>, best first")
        else:
            self.summary.setText(f"Searching for <b>“{html.escape(text)}”</b>…")
        self.show()

    def summary_text(self) -> str:
        """The summary as plain text (for tests and the status bar)."""
        return html.unescape(re.sub(r"<[^>]+>", "", self.summary.text()))

    def show_notes(self, notes: Sequence[str]) -> None:
        """What could not be searched, small and muted (the full text on hover)."""
        text = " · ".join(notes)
        self.notes.setText(text)
        self.notes.setToolTip("\n".join(notes))
        self.notes.setStyleSheet(f"color: {self._muted()}; font-style: italic;")
        self.notes.setVisible(bool(notes))

    def show_reason(self, name: str, why: str | None) -> None:
        """Why the current item matched: "NAME — Matched: …" (matched words bold)."""
        if not why:
            self.reason.setText("")
            self.reason.hide()
            return
        self.reason.setText(f"<b>{html.escape(name)}</b> — Matched: {why_html(why)}")
        self.reason.setToolTip(f"Why {name} is a result")
        self.reason.show()

    def clear(self) -> None:
        self.show_chips([])
        self.show_notes([])
        self.show_reason("", None)
        self.summary.setText("")
        self.hide()
