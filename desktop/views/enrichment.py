"""What the model stages found about an item, for the detail pane: its tags as chips
grouped by where they came from (score on hover), and its objects, one row per label
(hovering a row picks out its boxes on the preview)."""

from __future__ import annotations

from collections.abc import Sequence

from desktop.qt import (
    QColor,
    QEnterEvent,
    QEvent,
    QHBoxLayout,
    QLabel,
    QPalette,
    QVBoxLayout,
    QWidget,
    Signal,
)
from desktop.views.flow_layout import FlowLayout
from desktop.views.preview import label_colour, score_text
from engine.enrichment_view import Detection, Tag

# Shown in this order; a source this version does not know goes last, by its own name.
SOURCE_TITLES = {
    "classifier": "Your categories",
    "detect": "Objects",
    "zero-shot": "Looks like",
}
SOURCE_HINTS = {
    "classifier": "one of your trained categories",
    "detect": "found by the object detector",
    "zero-shot": "guessed from the picture by the embedding model (zero-shot)",
}
SOURCE_COLOURS = {"classifier": "#16a34a", "detect": "#d97706", "zero-shot": "#2563eb"}
OBJECT_ROWS = 12  # more labels than this: the rest are counted in one line


def _rgba(colour: QColor, alpha: int) -> str:
    return f"rgba({colour.red()}, {colour.green()}, {colour.blue()}, {alpha})"


def _muted(widget: QWidget) -> str:
    return widget.palette().color(QPalette.ColorRole.PlaceholderText).name()


class TagsView(QWidget):
    """Tag chips in one wrapped group per source; `chips` in display order."""

    def __init__(self, tags: Sequence[Tag], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tagsView")
        self.chips: list[QLabel] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        order = list(SOURCE_TITLES) + sorted({t.source for t in tags} - set(SOURCE_TITLES))
        for source in order:
            group = [t for t in tags if t.source == source]
            if not group:
                continue
            caption = QLabel(SOURCE_TITLES.get(source, source.capitalize()))
            caption.setStyleSheet(f"color: {_muted(self)};")
            caption.setToolTip(SOURCE_HINTS.get(source, ""))
            layout.addWidget(caption)
            holder = QWidget()
            flow = FlowLayout(holder, spacing=5)
            colour = QColor(SOURCE_COLOURS.get(source, "#64748b"))
            for tag in sorted(group, key=lambda t: (-t.score, t.tag)):
                chip = self._chip(tag, colour)
                flow.addWidget(chip)
                self.chips.append(chip)
            layout.addWidget(holder)

    def _chip(self, tag: Tag, colour: QColor) -> QLabel:
        chip = QLabel(tag.tag)
        chip.setObjectName("tagChip")
        chip.setProperty("source", tag.source)
        chip.setProperty("score", tag.score)
        hint = SOURCE_HINTS.get(tag.source, tag.source)
        chip.setToolTip(f"{tag.tag}: {score_text(tag.score)} — {hint}")
        chip.setAccessibleName(f"Tag {tag.tag}, {score_text(tag.score)}, {tag.source}")
        chip.setStyleSheet(
            f"QLabel#tagChip {{ background: {_rgba(colour, 38)};"
            f" border: 1px solid {_rgba(colour, 150)}; border-radius: 9px;"
            " padding: 1px 8px; }"
        )
        return chip

    def texts(self) -> list[tuple[str, str]]:
        """(tag, source) of every chip, in display order (for tests)."""
        return [(c.text(), str(c.property("source"))) for c in self.chips]


class _ObjectRow(QWidget):
    hovered = Signal(str)  # the label; "" when the pointer leaves

    def __init__(self, label: str, detections: Sequence[Detection]) -> None:
        super().__init__()
        self.label = label
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 1, 0, 1)
        row.setSpacing(6)
        colour = label_colour(label).name()
        count = f" × {len(detections)}" if len(detections) > 1 else ""
        name = QLabel(f'<span style="color:{colour}; font-weight:700">■</span> {label}{count}')
        best = max(d.score for d in detections)
        score = QLabel(score_text(best))
        score.setStyleSheet(f"color: {_muted(self)};")
        scores = ", ".join(score_text(d.score) for d in detections)
        self.setToolTip(f"{label}: {scores} sure")
        row.addWidget(name, 1)
        row.addWidget(score)

    def enterEvent(self, event: QEnterEvent) -> None:
        self.hovered.emit(self.label)
        super().enterEvent(event)

    def leaveEvent(self, event: QEvent) -> None:
        self.hovered.emit("")
        super().leaveEvent(event)


class ObjectsView(QWidget):
    """One row per detected label, best first; `hovered(label)` ("" when none)."""

    hovered = Signal(str)

    def __init__(self, detections: Sequence[Detection], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("objectsView")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        by_label: dict[str, list[Detection]] = {}
        for d in sorted(detections, key=lambda d: -d.score):
            by_label.setdefault(d.label, []).append(d)
        self.labels = list(by_label)
        for label in self.labels[:OBJECT_ROWS]:
            row = _ObjectRow(label, by_label[label])
            row.hovered.connect(self.hovered)
            layout.addWidget(row)
        rest = self.labels[OBJECT_ROWS:]
        if rest:
            more = QLabel(f"and {len(rest)} more: " + ", ".join(rest))
            more.setWordWrap(True)
            more.setStyleSheet(f"color: {_muted(self)};")
            layout.addWidget(more)
