"""The detail pane's labels: one chip per label the item has, saying whose it is —
"yours" (you labelled it) or "auto 0.93" (the label's model, with its score) — and a ×
that takes the label off the item for good (`removeRequested(name)`; the window asks
`desktop.operations.labels`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from desktop.qt import QColor, QFrame, QHBoxLayout, QLabel, QPalette, QToolButton, QWidget, Signal
from desktop.views.flow_layout import FlowLayout

USER_COLOUR = "#16a34a"  # the green of "yes" in the review window
AUTO_COLOUR = "#7c3aed"


def _rgba(colour: QColor, alpha: int) -> str:
    return f"rgba({colour.red()}, {colour.green()}, {colour.blue()}, {alpha})"


def source_text(label: Mapping[str, Any]) -> str:
    """ "yours", or "auto 0.93"."""
    if label.get("source") == "user":
        return "yours"
    score = label.get("score")
    return "auto" if score is None else f"auto {float(score):.2f}"


class LabelChip(QFrame):
    removeRequested = Signal(str)

    def __init__(self, label: Mapping[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("labelChip")
        self.name = str(label["label"])
        self.source = str(label.get("source") or "")
        user = self.source == "user"
        colour = QColor(USER_COLOUR if user else AUTO_COLOUR)
        self.setStyleSheet(
            f"QFrame#labelChip {{ background: {_rgba(colour, 34)};"
            f" border: 1px solid {_rgba(colour, 150)}; border-radius: 10px; }}"
        )
        row = QHBoxLayout(self)
        row.setContentsMargins(9, 1, 2, 1)
        row.setSpacing(5)
        self.name_label = QLabel(self.name)
        muted = self.palette().color(QPalette.ColorRole.PlaceholderText).name()
        self.source_label = QLabel(source_text(label))
        self.source_label.setStyleSheet(f"color: {muted};")
        score = label.get("score")
        sure = f", score {float(score):.2f}" if score is not None else ""
        why = "you labelled it" if user else f"labelled automatically by its model{sure}"
        self.setToolTip(f"{self.name}: {why}")
        self.setAccessibleName(f"Label {self.name}, {source_text(label)}")
        row.addWidget(self.name_label)
        row.addWidget(self.source_label)
        remove = QToolButton()
        remove.setObjectName("labelRemove")
        remove.setText("✕")
        remove.setAutoRaise(True)
        remove.setToolTip(
            f"Not {self.name}: take the label off this item (it is never applied again)"
        )
        remove.setAccessibleName(f"Remove label {self.name}")
        remove.clicked.connect(lambda: self.removeRequested.emit(self.name))
        self.remove_button = remove
        row.addWidget(remove)

    def text(self) -> str:
        return f"{self.name} · {self.source_label.text()}"


class LabelChips(QWidget):
    """Chips of the item's labels, theirs first; `removeRequested(name)`."""

    removeRequested = Signal(str)

    def __init__(self, labels: Sequence[Mapping[str, Any]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("labelChips")
        self.chips: list[LabelChip] = []
        flow = FlowLayout(self, spacing=5)
        ordered = sorted(labels, key=lambda d: (d.get("source") != "user", str(d["label"])))
        for label in ordered:
            chip = LabelChip(label)
            chip.removeRequested.connect(self.removeRequested)
            flow.addWidget(chip)
            self.chips.append(chip)

    def texts(self) -> list[str]:
        return [c.text() for c in self.chips]

    def chip(self, name: str) -> LabelChip | None:
        return next((c for c in self.chips if c.name == name), None)
