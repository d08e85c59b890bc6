"""The review queue: the model's suggestions for the user's labels, answered by key.

Two ways to answer:
- one at a time: a large preview, "Is this Receipts?", the score, why it is asked
  (the reason in words and the three nearest labelled examples), and Y/N/S (also
  A, X, Space and the arrows); J/K go to the next and previous suggestion;
- "confirm a page" (P): a page of suggestions, all ticked; the user unticks the
  wrong ones (a click, Space on the current tile, or its number key) and Enter
  confirms the page — the ticked are the label, the unticked are not.
U or Ctrl+Z undoes the last answer (a page is one answer). The bottom line says how
far the label is: decisions this session, model version, estimated and audited
precision, how many items are labelled automatically, or "suggestions only — why".

The window shows what it is given and asks `desktop.operations.labels` to change the
catalog; every write and the read of the queue after it run in the label pool, in
order, off the GUI thread. An answer moves on at once (the local queue drops it);
the queue read after it replaces the local one. The main window's poll calls
`refresh`, which re-reads the queue when a label changed (a training finished).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from desktop.operations import labels as label_ops
from desktop.operations.labels import Card, LabelInfo, ReviewSnapshot, Suggestion
from desktop.qt import (
    QAction,
    QCloseEvent,
    QColor,
    QComboBox,
    QFont,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QImage,
    QImageReader,
    QKeySequence,
    QLabel,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPalette,
    QPen,
    QPixmap,
    QRectF,
    QSize,
    QSizePolicy,
    QStackedWidget,
    Qt,
    QToolButton,
    QVBoxLayout,
    QWidget,
    Signal,
)
from desktop.threads import run_in_thread
from desktop.thumbs import ThumbnailCache
from desktop.views.grid import is_dark
from engine.library import Library

log = logging.getLogger("shoebox.desktop")

PAGE_SIZE = 18  # tiles on a page of "confirm a page"
PAGE_COLUMNS = 6
WHY_SHOWN = 3  # nearest labelled examples shown
PREVIEW_CACHE = 12  # decoded previews kept (the current one and those just ahead)
PREFETCH = 2
YES_COLOUR = "#16a34a"
NO_COLOUR = "#dc2626"
ALL_LABELS = "All labels"

Key = tuple[int, int]  # (label id, item id): one suggestion


def key_of(s: Suggestion) -> Key:
    return (s.label_id, s.id)


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def progress_text(info: LabelInfo | None, decisions: int) -> str:
    """The bottom line: this session's decisions, then how far the label is — its model
    version, estimated and audited precision, how many items it labels by itself."""
    parts = [f"{decisions:,} decision{'' if decisions == 1 else 's'} this session"]
    if info is None:
        return parts[0]
    if info.version is None:
        parts.append(f"{info.name}: not trained yet")
    else:
        parts.append(f"{info.name} model v{info.version}")
    parts.append(f"estimated precision {percent(info.estimated_precision)}")
    if info.audited:
        point, lower = percent(info.audited_precision), percent(info.audited_precision_lower)
        parts.append(f"audited {point} (at least {lower}, {info.audited:,} checked)")
    else:
        parts.append("not audited yet")
    parts.append(f"{info.auto:,} labelled automatically")
    if info.suggest_only:
        parts.append(f"suggestions only — {info.why_suggest_only or 'no threshold yet'}")
    if info.is_training:
        parts.append("training…")
    return " · ".join(parts)


def _fit(pixmap: QPixmap, box: QRectF) -> QRectF:
    """Where `pixmap` goes to fill `box` keeping its shape (centred)."""
    size = pixmap.deviceIndependentSize()
    if size.width() <= 0 or size.height() <= 0 or box.isEmpty():
        return QRectF()
    scale = min(box.width() / size.width(), box.height() / size.height())
    w, h = size.width() * scale, size.height() * scale
    return QRectF(box.x() + (box.width() - w) / 2, box.y() + (box.height() - h) / 2, w, h)


class FitImage(QWidget):
    """One picture scaled to fit the widget, centred; a line of text while there is none."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("reviewPreview")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(240, 200)
        self._pixmap: QPixmap | None = None
        self._text = ""

    def set_image(self, image: QImage | None) -> None:
        self._pixmap = (
            QPixmap.fromImage(image) if image is not None and not image.isNull() else None
        )
        self.update()

    def has_image(self) -> bool:
        return self._pixmap is not None

    def set_placeholder(self, text: str) -> None:
        self._text = text
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        if self._pixmap is None:
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._text)
        else:
            painter.drawPixmap(_fit(self._pixmap, QRectF(self.rect())), self._pixmap, QRectF())
        painter.end()


class ExampleThumb(QWidget):
    """A labelled example that explains a suggestion: its thumbnail and name."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFixedSize(112, 112)
        self.card: Card | None = None
        self.pixmap: QPixmap | None = None

    def set_card(self, card: Card | None, pixmap: QPixmap | None) -> None:
        self.card, self.pixmap = card, pixmap
        self.setToolTip(card.name if card else "")
        self.setVisible(card is not None)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        box = QRectF(self.rect()).adjusted(2, 2, -2, -2)
        path = QPainterPath()
        path.addRoundedRect(box, 6, 6)
        painter.fillPath(path, self.palette().color(QPalette.ColorRole.AlternateBase))
        if self.pixmap is not None:
            painter.setClipPath(path)
            painter.drawPixmap(_fit(self.pixmap, box), self.pixmap, QRectF())
        painter.end()


class Tile(QWidget):
    """One suggestion on a page: ticked (the label) or not; `clicked` toggles it."""

    clicked = Signal(int)  # its place on the page

    def __init__(self, index: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.index = index
        self.suggestion: Suggestion | None = None
        self.card: Card | None = None
        self.pixmap: QPixmap | None = None
        self.ticked = True
        self.current = False
        self.setMinimumSize(150, 170)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def show_suggestion(
        self, s: Suggestion | None, card: Card | None, pixmap: QPixmap | None, ticked: bool
    ) -> None:
        self.suggestion, self.card, self.pixmap, self.ticked = s, card, pixmap, ticked
        name = card.name if card else ""
        if s is not None:
            state = "ticked" if ticked else "unticked"
            self.setToolTip(f"{name} — score {s.score:.2f}, {s.reason_text} ({state})")
            self.setAccessibleName(f"{name}, {state}")
        self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.suggestion is not None:
            self.clicked.emit(self.index)
        super().mouseReleaseEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        if self.suggestion is None:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        palette = self.palette()
        outer = QRectF(self.rect()).adjusted(3, 3, -3, -3)
        colour = QColor(YES_COLOUR if self.ticked else NO_COLOUR)
        back = QColor(colour)
        back.setAlpha(28 if self.ticked else 40)
        painter.setPen(QPen(colour, 3 if self.current else 1.5))
        painter.setBrush(back)
        painter.drawRoundedRect(outer, 8, 8)
        if self.current:  # the keyboard's place: a second, outer ring
            painter.setPen(QPen(palette.color(QPalette.ColorRole.Highlight), 2))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 10, 10)
        metrics = painter.fontMetrics()
        line = metrics.height()
        picture = outer.adjusted(8, 8, -8, -(line + 12))
        if self.pixmap is not None:
            target = _fit(self.pixmap, picture)
            painter.setOpacity(1.0 if self.ticked else 0.35)
            painter.drawPixmap(target, self.pixmap, QRectF())
            painter.setOpacity(1.0)
        # The tick (or cross) in its disc, top left; the number key top right.
        disc = QRectF(outer.left() + 6, outer.top() + 6, 26, 26)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawEllipse(disc)
        mark = QFont(self.font())
        mark.setBold(True)
        painter.setFont(mark)
        painter.setPen(QColor("white"))
        painter.drawText(disc, Qt.AlignmentFlag.AlignCenter, "✓" if self.ticked else "✕")
        if self.index < 10:
            number = QRectF(outer.right() - 28, outer.top() + 6, 22, 22)
            painter.setBrush(QColor(0, 0, 0, 120))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.drawRoundedRect(number, 4, 4)
            painter.setPen(QColor("white"))
            painter.drawText(number, Qt.AlignmentFlag.AlignCenter, str((self.index + 1) % 10))
        painter.setFont(self.font())
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        caption = QRectF(outer.left() + 8, outer.bottom() - line - 8, outer.width() - 16, line)
        name = self.card.name if self.card else f"item {self.suggestion.id}"
        score = f"{self.suggestion.score:.2f}"
        score_w = metrics.horizontalAdvance(score) + 8
        painter.drawText(
            caption.adjusted(0, 0, -score_w, 0),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            metrics.elidedText(name, Qt.TextElideMode.ElideMiddle, int(caption.width() - score_w)),
        )
        painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
        painter.drawText(
            caption, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, score
        )
        painter.end()


@dataclass
class _Answer:
    """One answer of this session, for undo: the suggestions it was about and, for a
    page, which were ticked."""

    label: str
    items: list[Suggestion]
    ticked: dict[Key, bool] | None = None  # a page


def _button(action: QAction, text: str) -> QToolButton:
    """A button for `action` that keeps its own text (a default action would put the
    action's text back whenever the action changes)."""
    button = QToolButton()
    button.setText(text)
    button.setToolTip(action.toolTip())
    button.setEnabled(action.isEnabled())
    button.clicked.connect(lambda _checked=False: action.trigger())
    action.changed.connect(lambda: button.setEnabled(action.isEnabled()))
    button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys stay the window's
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    button.setMinimumHeight(34)
    return button


class ReviewWindow(QWidget):
    """The review queue of one library, in its own window. `closed` fires on close."""

    closed = Signal()

    def __init__(
        self, library: Library, thumbs: ThumbnailCache, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setObjectName("reviewWindow")
        self.setWindowTitle("Review — Shoebox")
        self.resize(1180, 800)
        self.library = library
        self.thumbs = thumbs
        self.label: str | None = None  # whose queue; None: every label's
        self.snapshot: ReviewSnapshot | None = None
        self.queue: list[Suggestion] = []
        self.skipped: list[Key] = []  # this session's skips, in order: the queue's end
        self.current: Key | None = None
        self.page: list[Suggestion] = []
        self.ticked: dict[Key, bool] = {}
        self.page_current = 0
        self.decisions = 0  # answers this session (a page counts its items)
        self.answers: list[_Answer] = []
        self.message = ""  # the last thing said (an error, what was undone)
        self._want: _Answer | None = None  # after an undo: show this again
        self._serial = 0  # the newest read asked; older ones are dropped
        self._in_flight = 0  # operations and reads not back yet
        self._seen_seq = -1
        self._images: OrderedDict[str, QImage] = OrderedDict()
        self._loading: set[str] = set()
        self._shown_preview: str | None = None

        self._build()
        self._make_actions()
        thumbs.loaded.connect(self._thumb_loaded)
        self._set_mode(False)
        self.reload()

    # -- layout ------------------------------------------------------------------------

    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(16, 12, 16, 10)
        outer.setSpacing(10)

        top = QHBoxLayout()
        top.setSpacing(8)
        picker_label = QLabel("Label")
        self.picker = QComboBox()
        self.picker.setObjectName("labelPicker")
        self.picker.setAccessibleName("Which label's suggestions")
        self.picker.setToolTip("Which label's suggestions to review (L)")
        self.picker.setMinimumWidth(220)
        self.picker.activated.connect(self._picked)
        self.one_button = QToolButton()
        self.page_button = QToolButton()
        top.addWidget(picker_label)
        top.addWidget(self.picker)
        top.addSpacing(16)
        top.addWidget(self.one_button)
        top.addWidget(self.page_button)
        top.addStretch(1)
        self.undo_label = QLabel()
        self.undo_label.setObjectName("reviewUndo")
        self.undo_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.undo_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        top.addWidget(self.undo_label, 1)
        outer.addLayout(top)

        self.stack = QStackedWidget()
        outer.addWidget(self.stack, 1)

        # One at a time.
        self.one_page = QWidget()
        one = QHBoxLayout(self.one_page)
        one.setContentsMargins(0, 0, 0, 0)
        one.setSpacing(18)
        self.preview = FitImage()
        one.addWidget(self.preview, 3)
        side = QVBoxLayout()
        side.setSpacing(8)
        self.question = QLabel()
        self.question.setObjectName("reviewQuestion")
        qf = QFont(self.question.font())
        qf.setPointSizeF(qf.pointSizeF() * 1.6)
        qf.setWeight(QFont.Weight.DemiBold)
        self.question.setFont(qf)
        self.question.setWordWrap(True)
        self.item_name = QLabel()
        self.item_name.setObjectName("reviewItemName")
        self.item_name.setWordWrap(True)
        self.item_name.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.score = QLabel()
        self.score.setObjectName("reviewScore")
        self.score.setTextFormat(Qt.TextFormat.RichText)
        self.score.setWordWrap(True)
        self.reason = QLabel()
        self.reason.setObjectName("reviewReason")
        self.reason.setWordWrap(True)
        why_title = QLabel("Nearest examples of yours")
        wf = QFont(why_title.font())
        wf.setWeight(QFont.Weight.DemiBold)
        why_title.setFont(wf)
        why_title.setContentsMargins(0, 10, 0, 0)
        self.why_title = why_title
        why_row = QHBoxLayout()
        why_row.setSpacing(6)
        self.why = [ExampleThumb() for _ in range(WHY_SHOWN)]
        for thumb in self.why:
            why_row.addWidget(thumb)
        why_row.addStretch(1)
        self.why_names = QLabel()
        self.why_names.setObjectName("reviewWhyNames")
        self.why_names.setWordWrap(True)
        side.addWidget(self.question)
        side.addWidget(self.item_name)
        side.addSpacing(6)
        side.addWidget(self.score)
        side.addWidget(self.reason)
        side.addWidget(why_title)
        side.addLayout(why_row)
        side.addWidget(self.why_names)
        self.keys_help = QLabel(
            "Keys: <b>Y</b> yes · <b>N</b> no · <b>S</b> skip · <b>J</b>/<b>K</b> next/previous"
            " · <b>U</b> undo · <b>P</b> a page at once · <b>L</b> another label · <b>Esc</b>"
            " close"
        )
        self.keys_help.setObjectName("reviewKeys")
        self.keys_help.setTextFormat(Qt.TextFormat.RichText)
        self.keys_help.setWordWrap(True)
        self.keys_help.setStyleSheet("color: palette(placeholder-text);")
        self.keys_help.setContentsMargins(0, 14, 0, 0)
        side.addWidget(self.keys_help)
        side.addStretch(1)
        self.answer_row = QGridLayout()
        self.answer_row.setSpacing(6)
        side.addLayout(self.answer_row)
        side_box = QWidget()
        side_box.setLayout(side)
        side_box.setMinimumWidth(360)
        side_box.setMaximumWidth(460)
        one.addWidget(side_box, 2)
        self.stack.addWidget(self.one_page)

        # Confirm a page.
        self.grid_page = QWidget()
        grid_outer = QVBoxLayout(self.grid_page)
        grid_outer.setContentsMargins(0, 0, 0, 0)
        grid_outer.setSpacing(8)
        self.page_title = QLabel()
        self.page_title.setObjectName("pageTitle")
        self.page_title.setFont(qf)
        self.page_hint = QLabel()
        self.page_hint.setObjectName("pageHint")
        self.page_hint.setWordWrap(True)
        grid_outer.addWidget(self.page_title)
        grid_outer.addWidget(self.page_hint)
        tiles = QGridLayout()
        tiles.setSpacing(8)
        self.tiles = [Tile(i) for i in range(PAGE_SIZE)]
        for tile in self.tiles:
            tile.clicked.connect(self.toggle_tile)
            tiles.addWidget(tile, tile.index // PAGE_COLUMNS, tile.index % PAGE_COLUMNS)
        grid_outer.addLayout(tiles, 1)
        self.page_buttons = QHBoxLayout()
        self.page_buttons.addStretch(1)
        grid_outer.addLayout(self.page_buttons)
        self.stack.addWidget(self.grid_page)

        # Nothing to show.
        self.empty = QWidget()
        empty = QVBoxLayout(self.empty)
        empty.addStretch(1)
        self.empty_title = QLabel()
        self.empty_title.setObjectName("emptyTitle")
        self.empty_title.setFont(qf)
        self.empty_title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_text = QLabel()
        self.empty_text.setObjectName("emptyText")
        self.empty_text.setWordWrap(True)
        self.empty_text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        empty.addWidget(self.empty_title)
        empty.addWidget(self.empty_text)
        empty.addStretch(2)
        self.stack.addWidget(self.empty)

        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        outer.addWidget(line)
        self.progress = QLabel()
        self.progress.setObjectName("reviewProgress")
        self.progress.setWordWrap(True)
        outer.addWidget(self.progress)

    def _action(
        self, text: str, keys: Sequence[str], run: Callable[[], object], tip: str = ""
    ) -> QAction:
        action = QAction(text, self)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(lambda _checked=False: run())
        shown = " / ".join(
            QKeySequence(k).toString(QKeySequence.SequenceFormat.NativeText) for k in keys
        )
        action.setToolTip(f"{tip or text} ({shown})")
        self.addAction(action)
        return action

    def _make_actions(self) -> None:
        a = self._action
        self.accept_action = a("Yes", ["Y", "A", "Right"], self.accept, "Yes, it is the label")
        self.reject_action = a("No", ["N", "X", "Left"], self.reject, "No, it is not the label")
        self.skip_action = a("Skip", ["S", "Space"], self.skip, "Decide later")
        self.next_action = a("Next", ["J", "Down"], lambda: self.step(1), "Next suggestion")
        self.previous_action = a("Previous", ["K", "Up"], lambda: self.step(-1), "Previous one")
        self.one_actions = [
            self.accept_action,
            self.reject_action,
            self.skip_action,
            self.next_action,
            self.previous_action,
        ]
        self.toggle_action = a("Untick", ["Space"], self.toggle_current, "Tick or untick it")
        self.confirm_action = a(
            "Confirm Page", ["Return", "Enter"], self.confirm_page, "Confirm this page"
        )
        self.skip_page_action = a("Skip Page", ["S"], self.skip_page, "Decide these later")
        moves = (("Left", -1), ("Right", 1), ("Up", -PAGE_COLUMNS), ("Down", PAGE_COLUMNS))
        self.move_actions = [
            a(f"Move {k}", [k], partial(self.move_tile, d), "Move between tiles") for k, d in moves
        ]
        self.number_actions = [
            a(f"Toggle {n + 1}", [str((n + 1) % 10)], partial(self.toggle_tile, n), "Toggle tile")
            for n in range(min(10, PAGE_SIZE))
        ]
        self.page_actions = [
            self.toggle_action,
            self.confirm_action,
            self.skip_page_action,
            *self.move_actions,
            *self.number_actions,
        ]
        self.undo_action = a("Undo", ["Ctrl+Z", "U"], self.undo, "Undo the last answer")
        # Checkable: by the time `triggered` runs, the action has flipped already.
        self.page_mode_action = a(
            "Confirm a Page", ["P"], lambda: self._set_mode(self.page_mode), "A page at once"
        )
        self.page_mode_action.setCheckable(True)
        self.one_mode_action = QAction("One at a Time", self)
        self.one_mode_action.setCheckable(True)
        self.one_mode_action.setToolTip("One suggestion at a time (P)")
        self.one_mode_action.triggered.connect(lambda _c=False: self._set_mode(False))
        self.pick_action = a("Choose Label", ["L"], self.picker.showPopup, "Choose the label")
        self.close_action = a("Close", ["Esc", "Ctrl+W"], self.close, "Close the review")

        self.one_button.setDefaultAction(self.one_mode_action)
        self.page_button.setDefaultAction(self.page_mode_action)
        for button in (self.one_button, self.page_button):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.page_mode_action.setIconText("Confirm a Page (P)")
        self.one_mode_action.setIconText("One at a Time (P)")
        self.yes_button = _button(self.accept_action, "✓  Yes  (Y)")
        self.no_button = _button(self.reject_action, "✕  No  (N)")
        self.skip_button = _button(self.skip_action, "Skip  (S)")
        self.undo_button = _button(self.undo_action, "Undo  (U)")
        for button, colour in ((self.yes_button, YES_COLOUR), (self.no_button, NO_COLOUR)):
            button.setStyleSheet(
                f"QToolButton {{ color: white; background: {colour}; border-radius: 6px;"
                " padding: 4px 14px; font-weight: 600; }"
                " QToolButton:disabled { background: #9ca3af; }"
            )
        for i, button in enumerate((self.yes_button, self.no_button)):
            button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            self.answer_row.addWidget(button, 0, i)
        for i, button in enumerate((self.skip_button, self.undo_button)):
            button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            self.answer_row.addWidget(button, 1, i)
        self.confirm_button = _button(self.confirm_action, "Confirm Page  (Enter)")
        self.confirm_button.setStyleSheet(
            f"QToolButton {{ color: white; background: {YES_COLOUR}; border-radius: 6px;"
            " padding: 4px 18px; font-weight: 600; }"
        )
        self.page_buttons.addWidget(_button(self.undo_action, "Undo  (U)"))
        self.page_buttons.addWidget(_button(self.skip_page_action, "Skip Page  (S)"))
        self.page_buttons.addWidget(self.confirm_button)

    # -- what is shown -----------------------------------------------------------------

    @property
    def page_mode(self) -> bool:
        return self.page_mode_action.isChecked()

    def _set_mode(self, page: bool) -> None:
        self.page_mode_action.setChecked(page)
        self.one_mode_action.setChecked(not page)
        for action in self.one_actions:
            action.setEnabled(not page)
        for action in self.page_actions:
            action.setEnabled(page)
        if page:
            self.page = []  # a fresh page, from the current suggestion on
        self._show()

    def order(self) -> list[Suggestion]:
        """The queue as the user meets it: the engine's order, this session's skips last."""
        skipped = {k: i for i, k in enumerate(self.skipped)}
        fresh = [s for s in self.queue if key_of(s) not in skipped]
        later = sorted(
            (s for s in self.queue if key_of(s) in skipped), key=lambda s: skipped[key_of(s)]
        )
        return fresh + later

    def current_suggestion(self) -> Suggestion | None:
        if self.current is None:
            return None
        return next((s for s in self.queue if key_of(s) == self.current), None)

    def shown_id(self) -> int | None:
        """The item the window asks about now (single mode), or None."""
        s = self.current_suggestion()
        return s.id if s is not None and not self.page_mode else None

    def page_ids(self) -> list[int]:
        return [s.id for s in self.page]

    def ticked_ids(self) -> list[int]:
        return [s.id for s in self.page if self.ticked.get(key_of(s), True)]

    def is_idle(self) -> bool:
        """No answer or read is on its way (for tests and the screenshot script)."""
        return self._in_flight == 0

    def _card(self, item_id: int) -> Card | None:
        return self.snapshot.cards.get(item_id) if self.snapshot else None

    def _pixmap(self, card: Card | None) -> QPixmap | None:
        if card is None or not card.thumb:
            return None
        return self.thumbs.pixmap(card.id, card.thumb)

    def _show(self) -> None:
        snap = self.snapshot
        if self.current_suggestion() is None:
            first = self.order()
            self.current = key_of(first[0]) if first else None
        if snap is None:
            self._show_empty("Loading…", "")
        elif not snap.labels:
            self._show_empty(
                "No labels yet",
                "In the library, select a few items that belong together and choose "
                "Item ▸ New Label from Selection… (Ctrl+L). Shoebox learns the label from "
                "them and asks here about the items it is not sure of.",
            )
        elif not self.queue:
            self._show_nothing(snap)
        elif self.page_mode:
            self._show_page()
        else:
            self._show_one()
        info = self._info()
        self.progress.setText(progress_text(info, self.decisions))
        undo = snap.undo_text if snap else None
        said = self.message or (f"Undo: {undo} (U)" if undo else "")
        self.undo_label.setText(said)
        self.undo_label.setToolTip(said)
        self.undo_action.setEnabled(bool(undo) or bool(self.answers))

    def _info(self) -> LabelInfo | None:
        snap = self.snapshot
        if snap is None:
            return None
        if self.label is not None:
            return snap.info(self.label)
        s = self.page[0] if self.page_mode and self.page else self.current_suggestion()
        if s is not None:
            return snap.info(s.label)
        return snap.labels[0] if len(snap.labels) == 1 else None

    def _show_empty(self, title: str, text: str) -> None:
        self.empty_title.setText(title)
        self.empty_text.setText(text)
        self.stack.setCurrentWidget(self.empty)
        for action in (*self.one_actions, *self.page_actions):
            action.setEnabled(False)

    def _show_nothing(self, snap: ReviewSnapshot) -> None:
        labels = [snap.info(self.label)] if self.label else snap.labels
        training = [i.name for i in labels if i is not None and i.is_training]
        what = self.label or "any label"
        if training:
            self._show_empty(
                f"Training {', '.join(training)}…",
                "New suggestions appear here when the training finishes (a few seconds).",
            )
        else:
            self._show_empty(
                f"Nothing to review for {what}",
                "Shoebox has no question for you now. Label more items in the library "
                "(Ctrl+L), or come back after the next training.",
            )

    def _show_one(self) -> None:
        for action in self.one_actions:
            action.setEnabled(True)
        self.stack.setCurrentWidget(self.one_page)
        s = self.current_suggestion()
        assert s is not None
        card = self._card(s.id)
        info = self.snapshot.info(s.label) if self.snapshot else None
        self.question.setText(f"Is this {s.label}?")
        self.item_name.setText(card.name if card else f"item {s.id}")
        line = f"Score <b>{s.score:.2f}</b>"
        if info is not None and info.threshold is not None:
            line += f" — labelled automatically from {info.threshold:.2f}"
        self.score.setText(line)
        self.reason.setText(f"Asked because: {s.reason_text}")
        examples = [self._card(i) for i in s.why[:WHY_SHOWN]]
        for thumb, example in zip(self.why, [*examples, None, None, None], strict=False):
            thumb.set_card(example, self._pixmap(example))
        names = [c.name for c in examples if c is not None]
        self.why_title.setVisible(bool(names))
        self.why_names.setText(", ".join(names))
        self.why_names.setVisible(bool(names))
        self._show_preview(card)
        self._prefetch()

    def _show_preview(self, card: Card | None) -> None:
        rel = (card.preview or card.thumb) if card else None
        self._shown_preview = rel
        image = self._images.get(rel) if rel else None
        if image is not None:
            self._images.move_to_end(rel)  # type: ignore[arg-type]
        self.preview.set_image(image)
        self.preview.set_placeholder("Loading the picture…" if rel else "No preview yet")
        if rel and image is None:
            self._load(rel)

    def _prefetch(self) -> None:
        order = self.order()
        at = next((i for i, s in enumerate(order) if key_of(s) == self.current), -1)
        for s in order[at + 1 : at + 1 + PREFETCH]:
            card = self._card(s.id)
            rel = (card.preview or card.thumb) if card else None
            if rel and rel not in self._images:
                self._load(rel)

    def _load(self, rel: str) -> None:
        """Decode a preview off the GUI thread (as the detail pane does)."""
        if rel in self._loading:
            return
        self._loading.add(rel)
        path = Path(self.library.root) / rel

        def read() -> QImage:
            reader = QImageReader(str(path))
            reader.setAutoTransform(True)
            return reader.read()

        def done(image: QImage) -> None:
            self._loading.discard(rel)
            if image.isNull():
                if rel == self._shown_preview:
                    self.preview.set_placeholder("No preview available")
                return
            self._images[rel] = image
            while len(self._images) > PREVIEW_CACHE:
                self._images.popitem(last=False)
            if rel == self._shown_preview:
                self.preview.set_image(image)

        def failed(exc: BaseException) -> None:
            self._loading.discard(rel)

        run_in_thread(read, done, failed)

    def _thumb_loaded(self, item_id: int) -> None:
        for thumb in self.why:
            if thumb.card is not None and thumb.card.id == item_id:
                thumb.set_card(thumb.card, self._pixmap(thumb.card))
        for tile in self.tiles:
            if tile.card is not None and tile.card.id == item_id:
                tile.pixmap = self._pixmap(tile.card)
                tile.update()

    def _fill_page(self) -> None:
        """A new page from the current suggestion on, all ticked (one label per page)."""
        order = self.order()
        at = next((i for i, s in enumerate(order) if key_of(s) == self.current), 0)
        order = order[at:] + order[:at]
        if not order:
            self.page = []
            return
        label = order[0].label
        self.page = [s for s in order if s.label == label][:PAGE_SIZE]
        self.ticked = {key_of(s): True for s in self.page}
        self.page_current = 0

    def _show_page(self) -> None:
        if not self.page:
            self._fill_page()
        for action in self.page_actions:
            action.setEnabled(True)
        self.stack.setCurrentWidget(self.grid_page)
        label = self.page[0].label if self.page else ""
        self.page_title.setText(f"Are these all {label}?")
        n = len(self.page)
        keys = "1–9, 0" if n >= 10 else f"1–{n}" if n > 1 else "1"
        self.page_hint.setText(
            f"Each starts ticked. Untick the ones that are not {label} — click them, "
            f"press their number ({keys}) or Space on the marked one, move with the arrow "
            "keys — then press Enter: the ticked ones are the label, the unticked are not."
        )
        self.page_current = max(0, min(self.page_current, n - 1))
        for tile in self.tiles:
            s = self.page[tile.index] if tile.index < n else None
            card = self._card(s.id) if s else None
            tile.current = s is not None and tile.index == self.page_current
            tile.show_suggestion(
                s, card, self._pixmap(card), self.ticked.get(key_of(s), True) if s else True
            )
            tile.setVisible(s is not None or tile.index < PAGE_COLUMNS)
        for i, action in enumerate(self.number_actions):
            action.setEnabled(i < n)
        ticked = len(self.ticked_ids())
        self.confirm_button.setText(f"Confirm Page: {ticked} yes, {n - ticked} no  (Enter)")

    # -- reading -----------------------------------------------------------------------

    def set_label(self, label: str | None) -> None:
        """Review `label`'s queue (None: every label's)."""
        if label == self.label:
            return
        self.label = label
        self.current = None
        self.page = []
        self.queue = []
        self.message = ""
        self.reload()
        self._show()

    def _picked(self, index: int) -> None:
        data = self.picker.itemData(index)
        self.set_label(str(data) if data else None)

    def refresh(self, _changes: object = None) -> None:
        """From the main window's poll: re-read when a label changed (a training finished,
        a decision made elsewhere)."""
        if self._in_flight == 0 and label_ops.current_seq(self.library) != self._seen_seq:
            self.reload()

    def reload(self) -> None:
        """Read the queue (after every operation already asked)."""
        self._serial += 1
        serial, library, label = self._serial, self.library, self.label
        self._in_flight += 1

        def done(snapshot: ReviewSnapshot) -> None:
            self._in_flight -= 1
            if serial == self._serial:
                self._apply(snapshot)

        def failed(exc: BaseException) -> None:
            self._in_flight -= 1
            log.error("reading the review queue failed", exc_info=exc)
            if serial == self._serial:
                self.message = f"Cannot read the review queue: {exc}"
                self._show()

        label_ops.run_label_op(lambda: label_ops.read_review(library, label), done, failed)

    def _apply(self, snap: ReviewSnapshot) -> None:
        self.snapshot = snap
        self._seen_seq = snap.seq
        if snap.label != self.label:
            self.label = snap.label
        self.queue = list(snap.queue)
        keys = {key_of(s): s for s in self.queue}
        self.skipped = [k for k in self.skipped if k in keys]
        want, self._want = self._want, None
        if want is not None:  # an undo: the answer's items are asked again
            back = [keys[key_of(s)] for s in want.items if key_of(s) in keys]
            if back and want.ticked is not None:
                self.page = back
                self.ticked = {key_of(s): want.ticked.get(key_of(s), True) for s in back}
                self.page_current = 0
                self.current = key_of(back[0])
            elif back:
                self.current = key_of(back[0])
                self.page = []
        else:  # the page stays as it is, less what left the queue
            self.page = [keys[key_of(s)] for s in self.page if key_of(s) in keys]
        self._fill_picker(snap)
        self._show()

    def _fill_picker(self, snap: ReviewSnapshot) -> None:
        self.picker.blockSignals(True)
        self.picker.clear()
        total = sum(i.in_review for i in snap.labels)
        self.picker.addItem(f"{ALL_LABELS} ({total:,})", "")
        for info in snap.labels:
            self.picker.addItem(f"{info.name} ({info.in_review:,})", info.name)
        at = self.picker.findData(self.label or "")
        self.picker.setCurrentIndex(max(0, at))
        self.picker.blockSignals(False)

    # -- answers -----------------------------------------------------------------------

    def _run(
        self, fn: Callable[[], object], on_done: Callable[[object], None] | None = None
    ) -> None:
        """An operation, then a read of the queue after it."""
        self._in_flight += 1

        def done(result: object) -> None:
            self._in_flight -= 1
            if on_done is not None:
                on_done(result)

        def failed(exc: BaseException) -> None:
            self._in_flight -= 1
            log.warning("a review answer failed: %s", exc)
            self.message = f"Not saved: {exc}"
            self._show()

        label_ops.run_label_op(fn, done, failed)
        self.reload()

    def _answer(self, accept: bool) -> None:
        s = self.current_suggestion()
        if s is None or self.page_mode:
            return
        order = self.order()
        at = order.index(s)
        rest = order[at + 1 :] + order[:at]
        self.queue = [q for q in self.queue if key_of(q) != key_of(s)]
        self.current = key_of(rest[0]) if rest else None
        self.decisions += 1
        self.answers.append(_Answer(s.label, [s]))
        self.message = ""
        library = self.library
        self._run(lambda: label_ops.decide(library, s.label, [s.id], accept))
        self._show()

    def accept(self) -> None:
        """Y: it is the label."""
        self._answer(True)

    def reject(self) -> None:
        """N: it is not (for good: it is not suggested again)."""
        self._answer(False)

    def skip(self) -> None:
        """S: decide later (it goes to the end of this session's queue)."""
        s = self.current_suggestion()
        if s is None:
            return
        order = self.order()
        at = order.index(s)
        rest = order[at + 1 :] + order[:at]
        if key_of(s) in self.skipped:
            self.skipped.remove(key_of(s))
        self.skipped.append(key_of(s))
        self.current = key_of(rest[0]) if rest else key_of(s)
        self._show()

    def go_to(self, item_id: int) -> bool:
        """Ask about `item_id` now (one at a time), if the queue has it."""
        s = next((s for s in self.order() if s.id == item_id), None)
        if s is None:
            return False
        self.current = key_of(s)
        self._show()
        return True

    def step(self, delta: int) -> None:
        """J/K: the next or previous suggestion, nothing decided."""
        order = self.order()
        s = self.current_suggestion()
        if s is None or not order:
            return
        self.current = key_of(order[(order.index(s) + delta) % len(order)])
        self._show()

    def toggle_tile(self, index: int) -> None:
        if not self.page_mode or index >= len(self.page):
            return
        k = key_of(self.page[index])
        self.ticked[k] = not self.ticked.get(k, True)
        self.page_current = index
        self._show()

    def toggle_current(self) -> None:
        self.toggle_tile(self.page_current)

    def move_tile(self, delta: int) -> None:
        if self.page:
            self.page_current = max(0, min(len(self.page) - 1, self.page_current + delta))
            self._show()

    def confirm_page(self) -> None:
        """Enter: the ticked items are the label, the unticked are not (one undo)."""
        if not self.page_mode or not self.page:
            return
        page, ticked = list(self.page), dict(self.ticked)
        label = page[0].label
        yes = [s.id for s in page if ticked.get(key_of(s), True)]
        no = [s.id for s in page if not ticked.get(key_of(s), True)]
        done_keys = {key_of(s) for s in page}
        self.queue = [q for q in self.queue if key_of(q) not in done_keys]
        self.page, self.ticked, self.current = [], {}, None
        self.decisions += len(page)
        self.answers.append(_Answer(label, page, ticked))
        self.message = ""
        library = self.library
        self._run(lambda: label_ops.confirm_page(library, label, yes, no))
        self._show()

    def skip_page(self) -> None:
        """S on a page: these are asked later; the next page."""
        if not self.page:
            return
        for s in self.page:
            if key_of(s) not in self.skipped:
                self.skipped.append(key_of(s))
        self.page, self.current = [], None
        self._show()

    def undo(self) -> None:
        """U / Ctrl+Z: undo the newest answer (of this label, or of any)."""
        answer = self.answers.pop() if self.answers else None
        self._want = answer
        library, label = self.library, self.label

        def done(result: object) -> None:
            text = result if isinstance(result, str) else None
            if text is None:
                self.message = "Nothing to undo."
            else:
                self.message = f"Undone: {text}"
                if answer is not None:
                    self.decisions = max(0, self.decisions - len(answer.items))
            self._show()

        self._run(lambda: label_ops.undo(library, label), done)

    # -- window ------------------------------------------------------------------------

    def sizeHint(self) -> QSize:
        return QSize(1180, 800)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.closed.emit()
        super().closeEvent(event)

    def dark(self) -> bool:
        return is_dark(self.palette())
