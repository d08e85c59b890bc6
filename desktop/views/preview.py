"""The detail pane's picture: the upright preview, scaled to the pane, with the detected
objects' boxes and labels drawn over it.

Boxes are stored in pixels of the upright original (`Enrichment.frame`); the preview
is that image scaled down, so a box is scaled by displayed size / original size. With
no known original size the boxes are in the preview's own pixels (the detect stage's
fallback). `shown_boxes()` is what is painted, in widget coordinates.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from desktop.qt import (
    QColor,
    QEvent,
    QFont,
    QFontMetricsF,
    QHelpEvent,
    QImage,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QPixmap,
    QPointF,
    QRectF,
    QSizePolicy,
    Qt,
    QToolTip,
    QWidget,
)
from engine.enrichment_view import Detection

# Distinct, saturated colours that read on light and dark photos (white label text).
OBJECT_COLOURS = (
    "#e11d48",
    "#2563eb",
    "#16a34a",
    "#d97706",
    "#7c3aed",
    "#0891b2",
    "#db2777",
    "#65a30d",
)
PLACEHOLDER_HEIGHT = 160


def label_colour(label: str) -> QColor:
    """The same colour for a label everywhere (its box, its row, its chip)."""
    return QColor(OBJECT_COLOURS[zlib.crc32(label.encode()) % len(OBJECT_COLOURS)])


def score_text(score: float) -> str:
    return f"{score * 100:.0f}%"


@dataclass(frozen=True)
class ShownBox:
    """A detection as drawn: `rect` in the widget's coordinates."""

    label: str
    score: float
    rect: QRectF
    colour: QColor


class PreviewView(QWidget):
    """Paints one image, centred, at the width `fit` gave it, and the boxes over it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("preview")
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setMouseTracking(True)
        self._image: QImage | None = None
        self._pixmap: QPixmap | None = None
        self._text = ""
        self._detections: list[Detection] = []
        self._frame: tuple[int, int] | None = None
        self._show_boxes = True
        self._highlight = ""  # a label whose boxes are emphasised
        self._width = 0
        self.setFixedHeight(PLACEHOLDER_HEIGHT)

    # -- content -------------------------------------------------------------------

    def set_image(self, image: QImage | None) -> None:
        self._image = image if image is not None and not image.isNull() else None
        self._pixmap = None
        self.fit(self._width)

    def has_image(self) -> bool:
        return self._image is not None

    def set_placeholder(self, text: str) -> None:
        """What shows while there is no image."""
        self._text = text
        self.update()

    def placeholder(self) -> str:
        return self._text

    def set_detections(
        self, detections: Sequence[Detection], frame: tuple[int, int] | None
    ) -> None:
        self._detections = list(detections)
        self._frame = frame
        self._highlight = ""
        self.update()

    def set_show_boxes(self, on: bool) -> None:
        if on != self._show_boxes:
            self._show_boxes = on
            self.update()

    def shows_boxes(self) -> bool:
        return self._show_boxes

    def set_highlight(self, label: str) -> None:
        """Draw the boxes of `label` emphasised (the others dimmed); "" for none."""
        if label != self._highlight:
            self._highlight = label
            self.update()

    def fit(self, width: int) -> None:
        """Scale the image to `width` (at most 1.2 × as tall); the widget takes its height."""
        self._width = width
        if self._image is None or width <= 0:
            self._pixmap = None
            self.setFixedHeight(PLACEHOLDER_HEIGHT)
            self.update()
            return
        dpr = self.devicePixelRatioF()
        scaled = self._image.scaled(
            int(width * dpr),
            int(width * 1.2 * dpr),
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        pixmap = QPixmap.fromImage(scaled)
        pixmap.setDevicePixelRatio(dpr)
        self._pixmap = pixmap
        self.setFixedHeight(max(1, round(scaled.height() / dpr)))
        self.update()

    # -- geometry ------------------------------------------------------------------

    def image_rect(self) -> QRectF:
        """Where the picture is drawn (empty without one)."""
        if self._pixmap is None:
            return QRectF()
        size = self._pixmap.deviceIndependentSize()
        return QRectF((self.width() - size.width()) / 2, 0, size.width(), size.height())

    def shown_boxes(self) -> list[ShownBox]:
        """The boxes as painted now: none while hidden or before the picture loads."""
        area = self.image_rect()
        if not self._show_boxes or area.isEmpty() or self._image is None:
            return []
        frame_w, frame_h = self._frame or (self._image.width(), self._image.height())
        if frame_w <= 0 or frame_h <= 0:
            return []
        sx, sy = area.width() / frame_w, area.height() / frame_h
        out: list[ShownBox] = []
        for d in self._detections:
            x0, y0, x1, y1 = d.box
            rect = QRectF(
                area.x() + min(x0, x1) * sx,
                area.y() + min(y0, y1) * sy,
                abs(x1 - x0) * sx,
                abs(y1 - y0) * sy,
            ).intersected(area)
            out.append(ShownBox(d.label, d.score, rect, label_colour(d.label)))
        return out

    # -- painting ------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if self._pixmap is None:
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._text)
            painter.end()
            return
        area = self.image_rect()
        painter.drawPixmap(area.topLeft(), self._pixmap)
        boxes = self.shown_boxes()
        font = QFont(self.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
        font.setWeight(QFont.Weight.DemiBold)
        metrics = QFontMetricsF(font)
        painter.setFont(font)
        for box in boxes:
            dim = bool(self._highlight) and box.label != self._highlight
            colour = QColor(box.colour)
            if dim:
                colour.setAlpha(90)
            width = 3.0 if box.label == self._highlight else 2.0
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(QColor(0, 0, 0, 60 if dim else 110), width + 2))
            painter.drawRect(box.rect)
            painter.setPen(QPen(colour, width))
            painter.drawRect(box.rect)
            self._paint_label(painter, metrics, box, colour, area)
        painter.end()

    def _paint_label(
        self, painter: QPainter, metrics: QFontMetricsF, box: ShownBox, fill: QColor, area: QRectF
    ) -> None:
        text = f"{box.label} {score_text(box.score)}"
        w, h = metrics.horizontalAdvance(text) + 8, metrics.height() + 2
        x = min(box.rect.left(), area.right() - w)
        y = box.rect.top() - h  # above the box, or inside it at the picture's top edge
        if y < area.top():
            y = box.rect.top()
        tag = QRectF(max(area.left(), x), y, w, h)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(fill)
        painter.drawRoundedRect(tag, 3, 3)
        painter.setPen(QColor(255, 255, 255, fill.alpha()))
        painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, text)

    def event(self, e: QEvent) -> bool:
        if e.type() == QEvent.Type.ToolTip and isinstance(e, QHelpEvent):
            hit = self.box_at(QPointF(e.pos()))
            if hit is not None:
                QToolTip.showText(e.globalPos(), f"{hit.label} — {score_text(hit.score)} sure")
            else:
                QToolTip.hideText()
                e.ignore()
            return True
        return super().event(e)

    def box_at(self, pos: QPointF) -> ShownBox | None:
        """The smallest shown box under `pos`."""
        hits = [b for b in self.shown_boxes() if b.rect.contains(pos)]
        return min(hits, key=lambda b: b.rect.width() * b.rect.height()) if hits else None
