"""The library grid: an item view of uniform cells, laid out by arithmetic.

Every cell has one size, so where a row sits follows from its number: nothing is
laid out per item, and hit-testing, keyboard movement, selection and painting cost
O(visible cells) whether the library holds 100 items or 100,000. Each cell is
painted once into a pixmap, kept in a small LRU keyed by the item, and from then
on only blitted until its row data, its thumbnail, its selected/hover/focus state,
the palette, the font or the device pixel ratio change.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from desktop.itemmodels.grid import GridModel, ItemIdRole, RowRole, stage_title
from desktop.qt import (
    QAbstractItemView,
    QColor,
    QCursor,
    QEvent,
    QFont,
    QFontMetrics,
    QItemSelection,
    QItemSelectionModel,
    QKeyEvent,
    QModelIndex,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPalette,
    QPen,
    QPersistentModelIndex,
    QPixmap,
    QPoint,
    QPointF,
    QRect,
    QRectF,
    QRegion,
    QSize,
    QStyledItemDelegate,
    Qt,
    QWidget,
    Signal,
)
from engine.browse import GridRow
from engine.errors import is_offline_reason

CELL = QSize(184, 216)
THUMB_BOX = QSize(164, 148)
MARGIN = 10
SCROLL_STEP = 32  # pixels per wheel step (three per notch)
CACHE_BYTES = 64 * 1024 * 1024  # painted cells kept (at least a few screens' worth)
KEY_SEARCH_ROWS = 2048  # type-ahead looks this far ahead, never through every row

# Badge fills carry their own white text: readable on light and dark palettes alike.
BADGE_COLOURS: dict[str, str] = {
    "queued": "#64748b",
    "working": "#2563eb",
    "done": "#16a34a",
    "failed": "#dc2626",
    "missing": "#d97706",
    "cancelled": "#64748b",
    "skipped": "#78716c",  # a warmer grey: it did not run because another step failed
    # Violet: neither failed (red) nor busy (blue); it runs by itself once the model is here.
    "waiting": "#7c3aed",
    "other": "#64748b",  # a state this version does not know
}

# What a badge says while a stage runs (unknown stages show their own name).
STAGE_VERBS: dict[str, str] = {
    "metadata": "Reading details",
    "thumbnail": "Making thumbnail",
    "ocr": "Reading text",
    "embed": "Indexing",
    "detect": "Finding objects",
    "tags": "Tagging",
}
WAITING_TEXT = "Needs model"  # the waiting badge (an hourglass before it)
OFFLINE_TEXT = "Drive away"  # waiting: the folder of its file is not there (unplugged)

WELCOME = (
    "Drop a folder here",
    "Photos and scanned documents appear at once and are processed in the background."
    "\nOr choose File ▸ Import Folder… (Ctrl+I).",
)
NO_MATCHES = ("Nothing matches", "Try another filter or clear the search.")

# Cell state bits (part of a painted cell's identity).
SELECTED, HOVERED, FOCUSED = 1, 2, 4


def is_skipped(row: GridRow) -> bool:
    """Nothing left to run, and a step was skipped (one it needs failed): not "done"."""
    state: str = row.state
    return state == "skipped" or (state == "done" and "skipped" in row.stages.values())


def is_waiting(row: GridRow) -> bool:
    """A stage waits for a model whose weights are not here (nothing else left to run)."""
    return "waiting" in row.stages.values()


def badge_for(row: GridRow) -> tuple[str, str]:
    """(colour key, text) of the badge a row shows; text "" for the compact done mark.

    Work that runs now or next shows first; then a failure; then a stage waiting for
    its model (the ledger counts it as no work left, the badge does not say "done")."""
    state: str = row.state  # the ledger may know states this version does not
    if row.missing:
        return "missing", "Missing"
    if state == "working":
        return "working", f"{STAGE_VERBS.get(row.stage or '', stage_title(row.stage))}…"
    if state == "queued":
        return "queued", "Queued"
    if state == "failed":
        return "failed", "Failed"
    if is_waiting(row):
        return "waiting", OFFLINE_TEXT if is_offline_reason(row.error) else WAITING_TEXT
    if is_skipped(row):
        return "skipped", "Skipped"
    if state == "cancelled":
        return "cancelled", "Cancelled"
    if state == "done":
        return "done", ""
    return "other", stage_title(state) or "Unknown"


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


def _subtitle(row: GridRow) -> str:
    if row.state in ("failed", "skipped") and row.error:
        return row.error
    if row.taken_at:  # "~": the file's date, not the camera's
        return f"~{row.taken_at[:10]}" if row.taken_guess else row.taken_at[:10]
    if row.width and row.height:
        return f"{row.width} × {row.height}"
    return ""


class CellPainter:
    """Paints one cell (thumbnail, state badge, name, date) into an opaque pixmap.

    What many cells share (badges, placeholder tiles) is drawn once into a sprite.
    `palette`, `font` and `dpr` are set by the view; changing them drops the sprites.
    """

    def __init__(self) -> None:
        self.palette = QPalette()
        self.dpr = 1.0
        self.fonts = _Fonts(QFont())
        self._sprites: dict[tuple[object, ...], QPixmap] = {}
        # Pixmaps of cells dropped from the view's cache, painted over again: a cell's
        # pixmap is big enough that allocating and freeing one per cell shows in scrolling.
        self.spares: list[QPixmap] = []
        self.rendered = 0  # cells painted into pixmaps (for tests and benchmarks)

    def configure(self, palette: QPalette, font: QFont, dpr: float) -> bool:
        """Adopt the view's look; True if it changed (painted cells are then stale)."""
        changed = (
            palette.cacheKey() != self.palette.cacheKey()
            or font.key() != self.fonts.key
            or dpr != self.dpr
        )
        if changed:
            self.palette = QPalette(palette)
            self.fonts = _Fonts(font)
            self.dpr = dpr
            self._sprites.clear()
            self.spares.clear()
        return changed

    def _canvas(self, size: QSize, fill: QColor | None) -> tuple[QPixmap, QPainter]:
        dpr = self.dpr
        w, h = int(size.width() * dpr + 0.5), int(size.height() * dpr + 0.5)
        pixmap: QPixmap | None = None
        if fill is not None:
            while self.spares and pixmap is None:
                spare = self.spares.pop()
                if spare.width() == w and spare.height() == h:
                    pixmap = spare
        if pixmap is None:
            pixmap = QPixmap(w, h)
            pixmap.setDevicePixelRatio(dpr)
        # Cells are opaque (a plain copy when blitted); sprites keep their alpha.
        pixmap.fill(fill if fill is not None else QColor(Qt.GlobalColor.transparent))
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        return pixmap, painter

    def render(self, row: GridRow | None, state: int, size: QSize) -> QPixmap:
        """The cell without its picture: background, highlight, name and date. The
        picture (or placeholder) and the badge are sprites blitted over it (`layers`),
        so a thumbnail arriving costs no repaint of the text."""
        self.rendered += 1
        palette = self.palette
        width, height = size.width(), size.height()
        pixmap, painter = self._canvas(size, palette.color(QPalette.ColorRole.Base))
        if state & (SELECTED | HOVERED):
            # Columns are spread over the width; the highlight keeps the cell's own size.
            cell = QRectF((width - CELL.width()) / 2 + 4, 4, CELL.width() - 8, height - 8)
            fill = QColor(palette.color(QPalette.ColorRole.Highlight))
            fill.setAlpha(70 if state & SELECTED else 28)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(fill)
            painter.drawRoundedRect(cell, 8, 8)
            if state & SELECTED and state & FOCUSED:
                painter.setPen(QPen(palette.color(QPalette.ColorRole.Highlight), 2))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.drawRoundedRect(cell.adjusted(1, 1, -1, -1), 8, 8)
        if row is not None:
            self._text(painter, width, row, self.fonts)
        painter.end()
        return pixmap

    def layers(
        self, row: GridRow | None, thumb: QPixmap | None, width: int
    ) -> list[tuple[int, int, QPixmap]]:
        """The sprites drawn over a cell's base: (x, y, pixmap) relative to the cell."""
        box = QRect((width - THUMB_BOX.width()) // 2, MARGIN, THUMB_BOX.width(), THUMB_BOX.height())
        out: list[tuple[int, int, QPixmap]] = []
        if thumb is not None and not thumb.isNull():
            size = thumb.deviceIndependentSize().toSize()
            if size.width() > box.width() or size.height() > box.height():
                size = size.scaled(box.size(), Qt.AspectRatioMode.KeepAspectRatio)
                dpr = thumb.devicePixelRatio()
                thumb = thumb.scaled(
                    size * dpr,
                    Qt.AspectRatioMode.IgnoreAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
                thumb.setDevicePixelRatio(dpr)
            image_rect = QRect(  # bottom-aligned: names sit right under every picture
                box.x() + (box.width() - size.width()) // 2,
                box.y() + box.height() - size.height(),
                size.width(),
                size.height(),
            )
            out.append((image_rect.x(), image_rect.y(), thumb))
        else:
            image_rect = QRect(box.x() + 18, box.y() + 22, box.width() - 36, box.height() - 22)
            label = ""
            if row is not None:
                label = row.format.upper() if row.format not in ("unknown", "empty") else row.kind
            tile = self._placeholder(image_rect.size(), label)
            out.append((image_rect.x(), image_rect.y(), tile))
        if row is not None:
            kind, text = badge_for(row)
            badge = self._badge(kind, text, image_rect.width() - 12)
            badge_size = badge.deviceIndependentSize().toSize()
            if kind == "done":  # the check mark sits bottom right
                at = (
                    image_rect.right() - badge_size.width() - 4,
                    image_rect.bottom() - badge_size.height() - 4,
                )
            else:
                at = (image_rect.left() + 6, image_rect.bottom() - badge_size.height() - 5)
            out.append((at[0], at[1], badge))
        return out

    def _placeholder(self, size: QSize, label: str) -> QPixmap:
        """A neutral tile until the thumbnail exists."""
        key = ("tile", label, size.width(), size.height())
        sprite = self._sprites.get(key)
        if sprite is None:
            palette = self.palette
            base = QColor(palette.color(QPalette.ColorRole.Base))
            tile = base.darker(108) if not is_dark(palette) else base.lighter(135)
            ink = palette.color(QPalette.ColorRole.PlaceholderText)
            sprite, p = self._canvas(size, None)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(tile)
            area = QRectF(0, 0, size.width(), size.height())
            p.drawRoundedRect(area, 6, 6)
            if label:
                p.setFont(self.fonts.label)
                p.setPen(ink)
                p.drawText(area, Qt.AlignmentFlag.AlignCenter, label)
            p.end()
            self._store(key, sprite)
        return sprite

    def _badge(self, kind: str, text: str, max_width: int) -> QPixmap:
        key = ("badge", kind, text, max_width)
        sprite = self._sprites.get(key)
        if sprite is not None:
            return sprite
        colour = QColor(BADGE_COLOURS.get(kind, BADGE_COLOURS["other"]))
        outline = QColor(255, 255, 255, 200)
        if not text:  # done: a small check mark in a circle
            d = 20.0
            sprite, p = self._canvas(QSize(22, 22), None)
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
            metrics = self.fonts.badge_metrics
            h = metrics.height() + 6
            icon = round(h * 0.55) + 4 if kind == "waiting" else 0  # the hourglass and a gap
            text = metrics.elidedText(
                text, Qt.TextElideMode.ElideRight, max(20, max_width - 16 - icon)
            )
            w = metrics.horizontalAdvance(text) + 16 + icon
            sprite, p = self._canvas(QSize(w + 2, h + 2), None)
            pill = QRectF(1, 1, w, h)
            p.setPen(QPen(outline, 1))
            p.setBrush(colour)
            p.drawRoundedRect(pill, h / 2, h / 2)
            if icon:
                _hourglass(p, QRectF(pill.x() + 8, pill.y() + h * 0.2, icon - 4, h * 0.6))
            p.setFont(self.fonts.badge)
            p.setPen(QColor("white"))
            p.drawText(pill.adjusted(icon, 0, 0, 0), Qt.AlignmentFlag.AlignCenter, text)
        p.end()
        self._store(key, sprite)
        return sprite

    def _store(self, key: tuple[object, ...], sprite: QPixmap) -> None:
        if len(self._sprites) > 500:
            self._sprites.clear()
        self._sprites[key] = sprite

    def _text(self, painter: QPainter, width: int, row: GridRow, fonts: _Fonts) -> None:
        palette = self.palette
        metrics = fonts.name_metrics
        text_top = MARGIN + THUMB_BOX.height() - 1 + 8  # under the picture box
        text_rect = QRect(12, text_top, width - 24, metrics.height())
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


def _hourglass(p: QPainter, box: QRectF) -> None:
    """A small white hourglass in `box`: two triangles meeting in the middle, top and
    bottom bars (drawn, so it needs no emoji font)."""
    white = QColor("white")
    pen = QPen(white, 1.2)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    p.setPen(pen)
    p.setBrush(Qt.BrushStyle.NoBrush)
    left, right, top, bottom = box.left(), box.right(), box.top(), box.bottom()
    mid = QPointF(box.center().x(), box.center().y())
    outline = QPainterPath()
    outline.moveTo(left, top)
    outline.lineTo(right, top)
    outline.lineTo(mid)
    outline.lineTo(right, bottom)
    outline.lineTo(left, bottom)
    outline.lineTo(mid)
    outline.closeSubpath()
    p.drawPath(outline)
    sand = QPainterPath()  # most of the sand already ran down
    inset = box.width() * 0.22
    sand.moveTo(left + inset, bottom)
    sand.lineTo(right - inset, bottom)
    sand.lineTo(mid.x(), bottom - box.height() * 0.3)
    sand.closeSubpath()
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(white)
    p.drawPath(sand)


class _Painted:
    """A painted cell and what it was painted from."""

    __slots__ = ("layers", "pixmap", "row", "state", "thumb", "width")

    def __init__(self, pixmap: QPixmap, row: GridRow | None, state: int, width: int) -> None:
        self.pixmap = pixmap
        self.row = row
        self.state = state
        self.width = width
        self.thumb = -1  # the thumbnail's cacheKey (0: none) that `layers` were made for
        self.layers: list[tuple[int, int, QPixmap]] = []


class GridView(QAbstractItemView):
    """Uniform cells in rows that fill the width; keyboard first, a welcome when empty.

    Cell `row` sits at column `row % columns`, line `row // columns`; the vertical
    scroll bar is in pixels. Nothing here ever walks all rows of the model.
    """

    openRequested = Signal(QModelIndex)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._cell = QSize(CELL)
        self._columns = 1
        self._x0 = 0
        self._hover = -1
        self._cells: OrderedDict[int, _Painted] = OrderedDict()  # item id -> painted cell
        self._cache_limit = 200
        self.cell_painter = CellPainter()
        self.cells_drawn = 0  # cells blitted by paint events (for tests and benchmarks)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.verticalScrollBar().setSingleStep(SCROLL_STEP)
        self.setDragEnabled(False)
        self.setAcceptDrops(False)
        self.setMouseTracking(True)
        self.setFrameShape(QAbstractItemView.Shape.NoFrame)
        if self.itemDelegate() is None:  # tooltips come from the delegate's helpEvent
            self.setItemDelegate(QStyledItemDelegate(self))
        self.setAttribute(Qt.WidgetAttribute.WA_MacShowFocusRect, False)
        self.doubleClicked.connect(self.openRequested)
        self.drop_highlight = False
        self.empty_title, self.empty_text = WELCOME
        self._restore_id: int | None = None

    # -- geometry ------------------------------------------------------------------

    def gridSize(self) -> QSize:
        """The size of one cell (the columns share the viewport's width)."""
        return QSize(self._cell)

    def columns(self) -> int:
        return self._columns

    def _count(self) -> int:
        model = self.model()
        return model.rowCount(self.rootIndex()) if model is not None else 0

    @staticmethod
    def _split(width: int) -> tuple[int, int, int]:
        """(columns, cell width, left offset) for a viewport `width` wide."""
        columns = max(1, width // CELL.width())
        cell_w = max(CELL.width(), width // columns)
        return columns, cell_w, max(0, (width - columns * cell_w) // 2)

    def updateGeometries(self) -> None:
        viewport = self.viewport()
        height = viewport.height()
        bar = self.verticalScrollBar()
        count = self._count()
        old_columns, old_top = self._columns, bar.value()
        columns, cell_w, x0 = self._split(viewport.width())
        # Whether the bar is needed is judged at the width without it, so that showing
        # it (narrower, perhaps fewer columns) can never make it unneeded again.
        full = self._split(self.maximumViewportSize().width())[0]
        needed = -(-count // full) * CELL.height() > height
        self._columns, self._cell, self._x0 = columns, QSize(cell_w, CELL.height()), x0
        content = -(-count // columns) * CELL.height()
        bar.setSingleStep(SCROLL_STEP)
        bar.setPageStep(max(1, height))
        bar.setRange(0, max(0, content - height) if needed else 0)
        if columns != old_columns and old_top > 0:
            # Keep the row that was at the top in view when the columns change.
            first = (old_top // CELL.height()) * old_columns
            bar.setValue((first // columns) * CELL.height())
        visible = columns * (height // CELL.height() + 2)
        dpr = viewport.devicePixelRatioF()
        per_cell = max(1, int(cell_w * CELL.height() * 4 * dpr * dpr))
        self._cache_limit = max(3 * visible, CACHE_BYTES // per_cell)
        super().updateGeometries()

    def _rect(self, row: int) -> QRect:
        line, col = divmod(row, self._columns)
        cell = self._cell
        return QRect(
            self._x0 + col * cell.width(),
            line * cell.height() - self.verticalScrollBar().value(),
            cell.width(),
            cell.height(),
        )

    def _visible_rows(self, rect: QRect | None = None) -> tuple[int, int]:
        """First and last row whose cells meet `rect` (the viewport), or (0, -1)."""
        count = self._count()
        if count == 0:
            return 0, -1
        area = rect if rect is not None else self.viewport().rect()
        top = self.verticalScrollBar().value()
        h = self._cell.height()
        first_line = max(0, (area.top() + top) // h)
        last_line = (area.bottom() + top) // h
        return first_line * self._columns, min(count - 1, (last_line + 1) * self._columns - 1)

    def _row_at(self, point: QPoint, *, clamp: bool = False) -> int:
        """The row under `point` (viewport coordinates); -1 if none. `clamp`: the
        nearest row instead (for selections dragged or extended past the cells)."""
        count = self._count()
        if count == 0:
            return -1
        cell = self._cell
        x = point.x() - self._x0
        y = point.y() + self.verticalScrollBar().value()
        col, line = x // cell.width(), y // cell.height()
        if clamp:
            col = min(max(col, 0), self._columns - 1)
            line = min(max(line, 0), (count - 1) // self._columns)
            return min(line * self._columns + col, count - 1)
        if x < 0 or y < 0 or col >= self._columns:
            return -1
        row = line * self._columns + col
        return row if row < count else -1

    def _span(self, first: int, last: int) -> QRegion:
        """The cells of rows first..last (reading order) as at most three rectangles."""
        region = QRegion()
        if first > last:
            return region
        columns, cell = self._columns, self._cell
        top = self.verticalScrollBar().value()
        l0, c0 = divmod(first, columns)
        l1, c1 = divmod(last, columns)

        def block(line0: int, line1: int, col0: int, col1: int) -> QRect:
            return QRect(
                self._x0 + col0 * cell.width(),
                line0 * cell.height() - top,
                (col1 - col0 + 1) * cell.width(),
                (line1 - line0 + 1) * cell.height(),
            )

        if l0 == l1:
            return region.united(block(l0, l0, c0, c1))
        region = region.united(block(l0, l0, c0, columns - 1))
        if l1 > l0 + 1:
            region = region.united(block(l0 + 1, l1 - 1, 0, columns - 1))
        return region.united(block(l1, l1, 0, c1))

    # -- QAbstractItemView -----------------------------------------------------------

    def visualRect(self, index: QModelIndex | QPersistentModelIndex) -> QRect:
        if not index.isValid() or index.parent() != self.rootIndex():
            return QRect()
        return self._rect(index.row())

    def indexAt(self, point: QPoint) -> QModelIndex:
        row = self._row_at(point)
        model = self.model()
        if row < 0 or model is None:
            return QModelIndex()
        return model.index(row, 0, self.rootIndex())

    def horizontalOffset(self) -> int:
        return 0

    def verticalOffset(self) -> int:
        return self.verticalScrollBar().value()

    def isIndexHidden(self, index: QModelIndex | QPersistentModelIndex) -> bool:
        return False

    def scrollContentsBy(self, dx: int, dy: int) -> None:
        self.viewport().scroll(0, dy)  # what stays in view is copied, not painted again
        if self._hover >= 0:
            self._set_hover(self._row_at(self.viewport().mapFromGlobal(QCursor.pos())))

    def scrollTo(
        self,
        index: QModelIndex | QPersistentModelIndex,
        hint: QAbstractItemView.ScrollHint = QAbstractItemView.ScrollHint.EnsureVisible,
    ) -> None:
        if not index.isValid() or index.parent() != self.rootIndex():
            return
        self.executeDelayedItemsLayout()
        bar = self.verticalScrollBar()
        height = self.viewport().height()
        cell_h = self._cell.height()
        top = (index.row() // self._columns) * cell_h
        value = bar.value()
        hints = QAbstractItemView.ScrollHint
        if hint == hints.PositionAtTop:
            value = top
        elif hint == hints.PositionAtBottom:
            value = top + cell_h - height
        elif hint == hints.PositionAtCenter:
            value = top - (height - cell_h) // 2
        elif top < value:
            value = top
        elif top + cell_h > value + height:
            value = top + cell_h - height
        bar.setValue(value)

    def moveCursor(
        self,
        cursorAction: QAbstractItemView.CursorAction,
        modifiers: Qt.KeyboardModifier,
    ) -> QModelIndex:
        model = self.model()
        count = self._count()
        if model is None or count == 0:
            return QModelIndex()
        current = self.currentIndex()
        if not current.isValid():  # the first cell in view
            return model.index(max(0, self._visible_rows()[0]), 0, self.rootIndex())
        row, columns = current.row(), self._columns
        line, col = divmod(row, columns)
        last_line = (count - 1) // columns
        page = max(1, self.viewport().height() // self._cell.height())
        act = QAbstractItemView.CursorAction
        if cursorAction in (act.MoveLeft, act.MovePrevious):
            row -= 1
        elif cursorAction in (act.MoveRight, act.MoveNext):
            row += 1
        elif cursorAction == act.MoveUp:
            row = row - columns if line > 0 else row
        elif cursorAction == act.MoveDown:
            # Down from above a gap in the last line: to the last cell.
            row = min(row + columns, count - 1) if line < last_line else row
        elif cursorAction == act.MovePageUp:
            row = max(0, line - page) * columns + col
        elif cursorAction == act.MovePageDown:
            row = min(last_line, line + page) * columns + col
        elif cursorAction == act.MoveHome:
            row = 0
        elif cursorAction == act.MoveEnd:
            row = count - 1
        return model.index(min(max(row, 0), count - 1), 0, self.rootIndex())

    def setSelection(self, rect: QRect, command: QItemSelectionModel.SelectionFlag) -> None:
        model, selection_model = self.model(), self.selectionModel()
        if model is None or selection_model is None or self._count() == 0:
            return
        root = self.rootIndex()
        selection = QItemSelection()
        # Qt passes (where the selection started, where it is now), not normalised.
        start, end = rect.topLeft(), rect.bottomRight()
        if self.state() == QAbstractItemView.State.DragSelectingState:
            # Dragging: a box of cells (whole lines become one range).
            x0, x1 = sorted((start.x(), end.x()))
            y0, y1 = sorted((start.y(), end.y()))
            a = self._row_at(QPoint(x0, y0), clamp=True)
            b = self._row_at(QPoint(x1, y1), clamp=True)
            columns = self._columns
            (l0, c0), (l1, c1) = divmod(a, columns), divmod(b, columns)
            if (c0 == 0 and c1 == columns - 1) or l0 == l1:
                selection.select(model.index(a, 0, root), model.index(b, 0, root))
            else:
                count = self._count()
                for line in range(l0, l1 + 1):
                    lo, hi = line * columns + c0, min(line * columns + c1, count - 1)
                    if lo <= hi:
                        selection.select(model.index(lo, 0, root), model.index(hi, 0, root))
        else:
            # Clicks and keys: every cell between the two, in reading order.
            a = self._row_at(start, clamp=True)
            b = self._row_at(end, clamp=True)
            a, b = min(a, b), max(a, b)
            selection.select(model.index(a, 0, root), model.index(b, 0, root))
        selection_model.select(selection, command)

    def visualRegionForSelection(self, selection: QItemSelection) -> QRegion:
        region = QRegion()
        first, last = self._visible_rows()
        root = self.rootIndex()
        for i in range(selection.count()):
            span = selection.at(i)
            if span.parent() != root:
                continue
            lo, hi = max(span.top(), first), min(span.bottom(), last)
            if lo <= hi:
                region = region.united(self._span(lo, hi))
        return region

    def dataChanged(
        self,
        topLeft: QModelIndex | QPersistentModelIndex,
        bottomRight: QModelIndex | QPersistentModelIndex,
        roles: Sequence[int] = (),
    ) -> None:
        """Repaint the changed cells that are in view; the others cost nothing. (A
        painted cell knows the row data and thumbnail it shows, and is painted again
        when they differ: nothing to drop here.)"""
        if not self.isVisible() or topLeft.parent() != self.rootIndex():
            return
        first, last = self._visible_rows()
        lo, hi = max(topLeft.row(), first), min(bottomRight.row(), last)
        if lo > hi:
            return
        self.viewport().update(self._span(lo, hi))

    def rowsInserted(
        self, parent: QModelIndex | QPersistentModelIndex, start: int, end: int
    ) -> None:
        super().rowsInserted(parent, start, end)
        if parent == self.rootIndex():
            self._rows_moved(start)

    def _rows_moved(self, start: int) -> None:
        self._hover = -1
        self.updateGeometries()
        if start <= self._visible_rows()[1] + 1:
            self.viewport().update()

    def setModel(self, model: Any) -> None:
        old = self.model()
        if old is not None:
            old.rowsRemoved.disconnect(self._on_rows_removed)
            old.modelReset.disconnect(self._forget)
            old.layoutChanged.disconnect(self._forget)
            if isinstance(old, GridModel):
                old.aboutToReset.disconnect(self._remember_current)
                old.reset.disconnect(self._restore_current)
        super().setModel(model)
        self._forget()
        if model is not None:
            model.rowsRemoved.connect(self._on_rows_removed)
            model.modelReset.connect(self._forget)
            model.layoutChanged.connect(self._forget)
            if isinstance(model, GridModel):
                model.aboutToReset.connect(self._remember_current)
                model.reset.connect(self._restore_current)

    # -- items ---------------------------------------------------------------------

    def current_item_id(self) -> int | None:
        index = self.currentIndex()
        return int(index.data(ItemIdRole)) if index.isValid() else None

    def selected_item_ids(self) -> list[int]:
        return [int(i.data(ItemIdRole)) for i in self.selectionModel().selectedIndexes()]

    def _remember_current(self) -> None:
        """Before a reset (a new filter or sort): the current item is kept if it stays."""
        self._restore_id = self.current_item_id()

    def _restore_current(self) -> None:
        item_id, self._restore_id = self._restore_id, None
        model = self.model()
        if item_id is None or not isinstance(model, GridModel):
            return
        row = model.row_of(item_id)
        if row is not None:
            index = model.index(row, 0)
            self.setCurrentIndex(index)
            self.scrollTo(index)

    def _on_rows_removed(self, parent: QModelIndex, start: int, end: int) -> None:
        if parent == self.rootIndex():
            self._rows_moved(start)

    def _forget(self) -> None:
        self._hover = -1
        self._cells.clear()
        self.viewport().update()

    def keyboardSearch(self, search: str) -> None:
        """Type-ahead over the next few pages only: matching every row would read
        the whole library."""
        model = self.model()
        count = self._count()
        if model is None or not search or count == 0:
            return
        start = max(0, self.currentIndex().row())
        needle = search.casefold()
        display = Qt.ItemDataRole.DisplayRole
        root = self.rootIndex()
        offsets = range(1 if len(search) == 1 else 0, min(count, KEY_SEARCH_ROWS))
        for step in offsets:
            index = model.index((start + step) % count, 0, root)
            if str(index.data(display) or "").casefold().startswith(needle):
                self.setCurrentIndex(index)
                return

    # -- input -------------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.openRequested.emit(self.currentIndex())
            event.accept()
            return
        super().keyPressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        super().mouseMoveEvent(event)
        self._set_hover(self._row_at(event.position().toPoint()))

    def viewportEvent(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Leave:
            self._set_hover(-1)
        return super().viewportEvent(event)

    def _set_hover(self, row: int) -> None:
        if row == self._hover:
            return
        old, self._hover = self._hover, row
        viewport = self.viewport()
        if old >= 0:
            viewport.update(self._rect(old))
        if row >= 0:
            viewport.update(self._rect(row))

    def event(self, e: QEvent) -> bool:
        if e.type() in (
            QEvent.Type.PaletteChange,
            QEvent.Type.FontChange,
            QEvent.Type.StyleChange,
            QEvent.Type.ApplicationPaletteChange,
        ):
            self._cells.clear()
            self.viewport().update()
        return super().event(e)

    # -- the empty state and drop target ----------------------------------------------

    def set_drop_highlight(self, on: bool) -> None:
        if on != self.drop_highlight:
            self.drop_highlight = on
            self.viewport().update()

    def set_empty_message(self, title: str, text: str) -> None:
        self.empty_title, self.empty_text = title, text
        self.viewport().update()

    def show_empty_state(self, filtered: bool) -> None:
        """What an empty grid says: a welcome, or that the filter matches nothing."""
        self.set_empty_message(*(NO_MATCHES if filtered else WELCOME))

    # -- painting ----------------------------------------------------------------------

    def cached_cells(self) -> int:
        return len(self._cells)

    def paintEvent(self, e: QPaintEvent) -> None:
        viewport = self.viewport()
        painter = QPainter(viewport)
        count = self._count()
        if count:
            self._paint_cells(painter, e.region(), count)
        if not count or self.drop_highlight:
            self._paint_message(painter, empty=not count)
        painter.end()

    def _paint_cells(self, painter: QPainter, region: QRegion, count: int) -> None:
        model = self.model()
        viewport = self.viewport()
        cell_painter = self.cell_painter
        if cell_painter.configure(self.palette(), self.font(), viewport.devicePixelRatioF()):
            self._cells.clear()
        rows: set[int] = set()
        rects: list[QRect] = list(region)  # type: ignore[call-overload]  # iterable at runtime
        for rect in rects:
            first, last = self._visible_rows(rect)
            if first > last:
                continue
            columns = self._columns
            c0 = max(0, (rect.left() - self._x0) // self._cell.width())
            c1 = min(columns - 1, (rect.right() - self._x0) // self._cell.width())
            for line_start in range(first, last + 1, columns):
                rows.update(range(line_start + c0, min(line_start + c1, count - 1) + 1))
        if not rows:
            return
        grid_model = model if isinstance(model, GridModel) else None
        selection = self.selectionModel()
        selected = selection is not None and selection.hasSelection()
        root = self.rootIndex()
        current = self.currentIndex().row() if self.hasFocus() else -1
        cells = self._cells
        width = self._cell.width()
        top = self.verticalScrollBar().value()
        cell_h, columns, x0 = self._cell.height(), self._columns, self._x0
        cell = self._cell
        draw = painter.drawPixmap
        for row in sorted(rows):
            thumb: QPixmap | None
            if grid_model is not None:
                data = grid_model.row_data(row)
                thumb = grid_model.thumbnail(data) if data is not None else None
                key = grid_model.item_id(row)
            else:
                index = model.index(row, 0, root)
                data = index.data(RowRole)
                thumb = index.data(Qt.ItemDataRole.DecorationRole)
                key = data.id if isinstance(data, GridRow) else -1 - row
            state = 0
            if selected and selection.isSelected(model.index(row, 0, root)):
                state = SELECTED | (FOCUSED if row == current else 0)
            if row == self._hover:
                state |= HOVERED
            thumb_key = thumb.cacheKey() if isinstance(thumb, QPixmap) else 0
            painted = cells.get(key)
            if (
                painted is None
                or painted.state != state
                or painted.width != width
                or (painted.row is not data and painted.row != data)
            ):
                painted = _Painted(cell_painter.render(data, state, cell), data, state, width)
                cells[key] = painted
                if len(cells) > self._cache_limit:
                    spares = cell_painter.spares
                    if len(spares) < 4:
                        spares.append(cells.popitem(last=False)[1].pixmap)
                    else:
                        cells.popitem(last=False)
            else:
                cells.move_to_end(key)
            if painted.thumb != thumb_key:
                painted.layers = cell_painter.layers(data, thumb if thumb_key else None, width)
                painted.thumb = thumb_key
            line, col = divmod(row, columns)
            x, y = x0 + col * width, line * cell_h - top
            draw(x, y, painted.pixmap)
            for dx, dy, sprite in painted.layers:
                draw(x + dx, y + dy, sprite)
            self.cells_drawn += 1

    def _paint_message(self, painter: QPainter, *, empty: bool) -> None:
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
        title_rect = QRectF(area.left(), centre.y() - fm.height() - 6, area.width(), fm.height())
        painter.drawText(title_rect, Qt.AlignmentFlag.AlignCenter, title)
        painter.setFont(QFont(self.font()))
        painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
        body_rect = QRectF(area.left() + 20, centre.y() + 4, area.width() - 40, area.height() / 2)
        painter.drawText(
            body_rect,
            Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap,
            text,
        )
