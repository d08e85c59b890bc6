"""The library grid: a QListView in icon mode with a painted delegate (no widget per item)."""

from __future__ import annotations

from collections.abc import Sequence

from desktop.itemmodels.grid import GridModel, RowRole, stage_title
from desktop.qt import (
    QAbstractItemView,
    QColor,
    QEvent,
    QFont,
    QFontMetrics,
    QKeyEvent,
    QListView,
    QModelIndex,
    QObject,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPalette,
    QPen,
    QPersistentModelIndex,
    QPixmap,
    QPoint,
    QRect,
    QRectF,
    QResizeEvent,
    QSize,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    Qt,
    QWidget,
    Signal,
)
from engine.browse import GridRow

CELL = QSize(184, 216)
THUMB_BOX = QSize(164, 148)
MARGIN = 10

# Badge fills carry their own white text: readable on light and dark palettes alike.
BADGE_COLOURS: dict[str, str] = {
    "queued": "#64748b",
    "working": "#2563eb",
    "done": "#16a34a",
    "failed": "#dc2626",
    "missing": "#d97706",
    "cancelled": "#64748b",
}

# What a badge says while a stage runs (unknown stages show their own name).
STAGE_VERBS: dict[str, str] = {
    "metadata": "Reading details",
    "thumbnail": "Making thumbnail",
    "ocr": "Reading text",
    "embed": "Indexing",
    "detect": "Finding objects",
}


def badge_for(row: GridRow) -> tuple[str, str]:
    """(colour key, text) of the badge a row shows; text "" for the compact done mark."""
    if row.missing:
        return "missing", "Missing"
    if row.state == "working":
        return "working", f"{STAGE_VERBS.get(row.stage or '', stage_title(row.stage))}…"
    if row.state == "queued":
        return "queued", "Queued"
    if row.state == "failed":
        return "failed", "Failed"
    if row.state == "cancelled":
        return "cancelled", "Cancelled"
    return "done", ""


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


class _Fonts:
    """The fonts of a cell, derived once from the view's font."""

    def __init__(self, base: QFont) -> None:
        self.key = base.key()
        self.name = QFont(base)
        self.name_metrics = QFontMetrics(self.name)
        self.small = QFont(base)
        self.small.setPointSizeF(max(7.0, base.pointSizeF() * 0.88))
        self.small_metrics = QFontMetrics(self.small)
        self.badge = QFont(base)
        self.badge.setPointSizeF(max(7.0, base.pointSizeF() * 0.85))
        self.badge.setWeight(QFont.Weight.DemiBold)
        self.badge_metrics = QFontMetrics(self.badge)
        self.label = QFont(base)
        self.label.setPointSizeF(max(7.0, base.pointSizeF() * 0.9))
        self.label.setWeight(QFont.Weight.DemiBold)


class ItemDelegate(QStyledItemDelegate):
    """Paints thumbnail, name and state badge of one cell.

    Scrolling repaints a few dozen cells per frame, so what is the same in many cells
    (badges, placeholder tiles) is drawn once into a sprite and then only blitted; the
    row data comes straight from the model, without a trip through Qt per role.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._fonts: _Fonts | None = None
        self._sprites: dict[tuple[object, ...], QPixmap] = {}

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        return CELL

    def fonts(self, base: QFont) -> _Fonts:
        if self._fonts is None or self._fonts.key != base.key():
            self._fonts = _Fonts(base)
            self._sprites.clear()
        return self._fonts

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        model = index.model()
        row: GridRow | None
        pixmap: QPixmap | None
        if isinstance(model, GridModel):
            row = model.row_data(index.row())
            pixmap = model.thumbnail(row) if row is not None else None
        else:
            row, pixmap = index.data(RowRole), index.data(Qt.ItemDataRole.DecorationRole)
        palette: QPalette = option.palette
        rect: QRect = option.rect
        state = option.state
        fonts = self.fonts(option.font)
        dpr = painter.device().devicePixelRatioF()
        selected = bool(state & QStyle.StateFlag.State_Selected)
        hovered = bool(state & QStyle.StateFlag.State_MouseOver)
        if selected or hovered:
            # The grid spreads columns over the width; the cell itself keeps its size.
            cell = QRectF(
                rect.x() + (rect.width() - CELL.width()) / 2 + 4,
                rect.y() + 4,
                CELL.width() - 8,
                min(rect.height(), CELL.height()) - 8,
            )
            painter.save()
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            fill = QColor(palette.color(QPalette.ColorRole.Highlight))
            fill.setAlpha(70 if selected else 28)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(fill)
            painter.drawRoundedRect(cell, 8, 8)
            if selected and bool(state & QStyle.StateFlag.State_HasFocus):
                painter.setPen(QPen(palette.color(QPalette.ColorRole.Highlight), 2))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.drawRoundedRect(cell.adjusted(1, 1, -1, -1), 8, 8)
            painter.restore()

        box = QRect(
            rect.x() + (rect.width() - THUMB_BOX.width()) // 2,
            rect.y() + MARGIN,
            THUMB_BOX.width(),
            THUMB_BOX.height(),
        )
        if pixmap is not None and not pixmap.isNull():
            size = pixmap.deviceIndependentSize().toSize()
            if size.width() > box.width() or size.height() > box.height():
                size = size.scaled(box.size(), Qt.AspectRatioMode.KeepAspectRatio)
            image_rect = QRect(  # bottom-aligned: names sit right under every picture
                box.x() + (box.width() - size.width()) // 2,
                box.y() + box.height() - size.height(),
                size.width(),
                size.height(),
            )
            painter.drawPixmap(image_rect, pixmap)
        else:
            image_rect = QRect(box.x() + 18, box.y() + 22, box.width() - 36, box.height() - 22)
            label = ""
            if row is not None:
                label = row.format.upper() if row.format not in ("unknown", "empty") else row.kind
            painter.drawPixmap(
                image_rect.topLeft(), self._placeholder(palette, image_rect.size(), label, dpr)
            )
        if row is None:
            return
        badge = self._badge(row, fonts, dpr, image_rect.width() - 12)
        badge_size = badge.deviceIndependentSize().toSize()
        if badge_for(row)[0] == "done":  # the check mark sits bottom right
            at = QPoint(
                image_rect.right() - badge_size.width() - 4,
                image_rect.bottom() - badge_size.height() - 4,
            )
        else:
            at = QPoint(image_rect.left() + 6, image_rect.bottom() - badge_size.height() - 5)
        painter.drawPixmap(at, badge)
        self._text(painter, palette, rect, box, row, fonts)

    # -- sprites -------------------------------------------------------------------

    def _sprite(self, size: QSize, dpr: float) -> tuple[QPixmap, QPainter]:
        pixmap = QPixmap(int(size.width() * dpr + 0.5), int(size.height() * dpr + 0.5))
        pixmap.setDevicePixelRatio(dpr)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        return pixmap, painter

    def _placeholder(self, palette: QPalette, size: QSize, label: str, dpr: float) -> QPixmap:
        """A neutral tile until the thumbnail exists."""
        key = ("tile", label, palette.cacheKey(), size.width(), size.height(), dpr)
        sprite = self._sprites.get(key)
        if sprite is None:
            base = QColor(palette.color(QPalette.ColorRole.Base))
            tile = base.darker(108) if not is_dark(palette) else base.lighter(135)
            ink = palette.color(QPalette.ColorRole.PlaceholderText)
            sprite, p = self._sprite(size, dpr)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(tile)
            area = QRectF(0, 0, size.width(), size.height())
            p.drawRoundedRect(area, 6, 6)
            if label and self._fonts is not None:
                p.setFont(self._fonts.label)
                p.setPen(ink)
                p.drawText(area, Qt.AlignmentFlag.AlignCenter, label)
            p.end()
            self._sprites[key] = sprite
        return sprite

    def _badge(self, row: GridRow, fonts: _Fonts, dpr: float, max_width: int) -> QPixmap:
        kind, text = badge_for(row)
        key = ("badge", kind, text, max_width, dpr)
        sprite = self._sprites.get(key)
        if sprite is not None:
            return sprite
        colour = QColor(BADGE_COLOURS[kind])
        outline = QColor(255, 255, 255, 200)
        if not text:  # done: a small check mark in a circle
            d = 20.0
            sprite, p = self._sprite(QSize(22, 22), dpr)
            circle = QRectF(1, 1, d, d)
            p.setPen(QPen(outline, 1.5))
            p.setBrush(colour)
            p.drawEllipse(circle)
            pen = QPen(QColor("white"), 2.2)
            pen.setCapStyle(Qt.PenCapStyle.RoundCap)
            pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
            p.setPen(pen)
            path = QPainterPath()
            path.moveTo(circle.x() + 5.5, circle.y() + 10.5)
            path.lineTo(circle.x() + 8.8, circle.y() + 13.8)
            path.lineTo(circle.x() + 14.8, circle.y() + 6.8)
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawPath(path)
        else:
            metrics = fonts.badge_metrics
            text = metrics.elidedText(text, Qt.TextElideMode.ElideRight, max(20, max_width - 16))
            w = metrics.horizontalAdvance(text) + 16
            h = metrics.height() + 6
            sprite, p = self._sprite(QSize(w + 2, h + 2), dpr)
            pill = QRectF(1, 1, w, h)
            p.setPen(QPen(outline, 1))
            p.setBrush(colour)
            p.drawRoundedRect(pill, h / 2, h / 2)
            p.setFont(fonts.badge)
            p.setPen(QColor("white"))
            p.drawText(pill, Qt.AlignmentFlag.AlignCenter, text)
        p.end()
        if len(self._sprites) > 500:
            self._sprites.clear()
        self._sprites[key] = sprite
        return sprite

    def _text(
        self,
        painter: QPainter,
        palette: QPalette,
        rect: QRect,
        box: QRect,
        row: GridRow,
        fonts: _Fonts,
    ) -> None:
        metrics = fonts.name_metrics
        text_rect = QRect(rect.x() + 12, box.bottom() + 8, rect.width() - 24, metrics.height())
        painter.setFont(fonts.name)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        name = metrics.elidedText(row.name, Qt.TextElideMode.ElideMiddle, text_rect.width())
        top_centre = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop
        painter.drawText(text_rect, top_centre, name)
        sub = _subtitle(row)
        if sub:
            sm = fonts.small_metrics
            sub_rect = QRect(text_rect.x(), text_rect.bottom() + 3, text_rect.width(), sm.height())
            painter.setFont(fonts.small)
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(
                sub_rect,
                top_centre,
                sm.elidedText(sub, Qt.TextElideMode.ElideRight, sub_rect.width()),
            )


def _subtitle(row: GridRow) -> str:
    if row.state == "failed" and row.error:
        return row.error
    if row.taken_at:
        return row.taken_at[:10]
    if row.width and row.height:
        return f"{row.width} × {row.height}"
    return ""


class GridView(QListView):
    """Icon-mode list view: uniform cells, keyboard first, a welcome when empty."""

    openRequested = Signal(QModelIndex)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # A wrapping list, not IconMode: icon mode positions every item one by one (0.5 s
        # at 100,000 items); a wrapping list with uniform sizes lays out 100,000 in ~0.1 s.
        # Single pass, not batched: a batched layout restarts on every change and clamps
        # the scroll position to the part laid out so far.
        self.setViewMode(QListView.ViewMode.ListMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setGridSize(CELL)
        self.setLayoutMode(QListView.LayoutMode.SinglePass)
        self.setSelectionMode(QListView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(32)
        self.setDragEnabled(False)
        self.setAcceptDrops(False)
        self.setMouseTracking(True)
        self.setWordWrap(False)
        self.setFrameShape(QListView.Shape.NoFrame)
        self.setItemDelegate(ItemDelegate(self))
        self.setAttribute(Qt.WidgetAttribute.WA_MacShowFocusRect, False)
        self.doubleClicked.connect(self.openRequested)
        self.drop_highlight = False
        self.empty_title = "Drop a folder here"
        self.empty_text = (
            "Photos and scanned documents appear at once and are processed in the background."
            "\nOr choose File ▸ Import Folder… (Ctrl+I)."
        )

    def dataChanged(
        self,
        topLeft: QModelIndex | QPersistentModelIndex,
        bottomRight: QModelIndex | QPersistentModelIndex,
        roles: Sequence[int] = (),
    ) -> None:
        """Repaint only. QListView's list mode lays out *every* row again on any data
        change (QListModeViewBase::dataChanged); cells here all have one size, so a
        changed badge or a new thumbnail never moves anything."""
        QAbstractItemView.dataChanged(self, topLeft, bottomRight, list(roles))

    def resizeEvent(self, event: QResizeEvent) -> None:
        # Spread the columns over the whole width instead of leaving a ragged gap.
        width = self.viewport().width() - 8  # the view's own margins: never wrap early
        columns = max(1, width // CELL.width())
        cell = QSize(max(CELL.width(), width // columns), CELL.height())
        if cell != self.gridSize():
            self.setGridSize(cell)
        super().resizeEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.openRequested.emit(self.currentIndex())
            event.accept()
            return
        super().keyPressEvent(event)

    def set_drop_highlight(self, on: bool) -> None:
        if on != self.drop_highlight:
            self.drop_highlight = on
            self.viewport().update()

    def set_empty_message(self, title: str, text: str) -> None:
        self.empty_title, self.empty_text = title, text
        self.viewport().update()

    def event(self, e: QEvent) -> bool:
        if e.type() == QEvent.Type.PaletteChange:
            self.viewport().update()
        return super().event(e)

    def paintEvent(self, e: QPaintEvent) -> None:
        super().paintEvent(e)
        model = self.model()
        empty = model is None or model.rowCount() == 0
        if not empty and not self.drop_highlight:
            return
        painter = QPainter(self.viewport())
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        area = QRectF(self.viewport().rect()).adjusted(24, 24, -24, -24)
        if self.drop_highlight:
            fill = QColor(palette.color(QPalette.ColorRole.Highlight))
            fill.setAlpha(30)
            painter.setBrush(fill)
            pen = QPen(palette.color(QPalette.ColorRole.Highlight), 2, Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawRoundedRect(area, 14, 14)
        if empty or self.drop_highlight:
            title = "Drop to import" if self.drop_highlight else self.empty_title
            text = (
                "Files are catalogued at once; originals are never changed."
                if self.drop_highlight
                else self.empty_text
            )
            font = QFont(self.font())
            font.setPointSizeF(font.pointSizeF() * 1.6)
            font.setWeight(QFont.Weight.DemiBold)
            painter.setFont(font)
            painter.setPen(palette.color(QPalette.ColorRole.Text))
            fm = QFontMetrics(font)
            centre = area.center()
            title_rect = QRectF(
                area.left(), centre.y() - fm.height() - 6, area.width(), fm.height()
            )
            painter.drawText(title_rect, Qt.AlignmentFlag.AlignCenter, title)
            body = QFont(self.font())
            painter.setFont(body)
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            body_rect = QRectF(
                area.left() + 20, centre.y() + 4, area.width() - 40, area.height() / 2
            )
            painter.drawText(
                body_rect,
                Qt.AlignmentFlag.AlignHCenter
                | Qt.AlignmentFlag.AlignTop
                | Qt.TextFlag.TextWordWrap,
                text,
            )
        painter.end()
