"""Import sessions with their progress, and the status-bar summary of the whole queue.

Progress is pulled: the main window's poll tick calls `refresh(changes)`; the
numbers come from `engine.progress` (trigger-kept counters, a bounded rate
query), so a refresh costs the same at 100 jobs as at a million.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from desktop.operations import jobs as ops
from desktop.qt import (
    QAbstractItemView,
    QAbstractListModel,
    QApplication,
    QColor,
    QFont,
    QFontMetrics,
    QHBoxLayout,
    QLabel,
    QListView,
    QMessageBox,
    QModelIndex,
    QPainter,
    QPalette,
    QPersistentModelIndex,
    QPushButton,
    QRect,
    QShowEvent,
    QSize,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    Qt,
    QVBoxLayout,
    QWidget,
)
from engine import progress
from engine.jobs import throttle
from engine.library import Changes, Library
from engine.progress import ProgressTracker, SessionProgress

SESSION_ROLE = int(Qt.ItemDataRole.UserRole) + 1
DETAIL_ROLE = int(Qt.ItemDataRole.UserRole) + 2
SESSIONS_SHOWN = 50
IDLE_REFRESH_S = 1.0  # with no ledger change, rates and estimates still move: at most 1/s

Confirm = Callable[[QWidget, str, str], bool]


def ask(parent: QWidget, title: str, text: str) -> bool:
    """A yes/no question; tests replace it."""
    answer = QMessageBox.question(
        parent,
        title,
        text,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


def session_detail(s: SessionProgress, folder_limits: dict[str, float] | None = None) -> str:
    """ "1,234 of 5,000 · 38/s · about 2 min left" (or why it is not moving).
    `folder_limits` (the settings' files a second per folder): an import slowed by one
    says so, so a slow import from a network share is not taken for a stuck one."""
    text = _session_detail(s)
    limited = throttle.folder_limit_of(s.roots, folder_limits or {}) if s.active else None
    if limited is not None and not (s.paused or s.lane_paused):
        folder, rate = limited
        name = os.path.basename(folder.rstrip(os.sep)) or folder
        text += f" · at most {rate:g} files/s from {name} (your limit)"
    return text


def _session_detail(s: SessionProgress) -> str:
    counts = f"{progress.format_count(s.finished)} of {progress.format_count(s.total)}"
    if s.state == "scanning":
        return f"Looking for files… {progress.format_count(s.files)} found"
    if s.state == "cancelled":
        return f"Cancelled · {counts}"
    parts = [counts]
    if s.state == "done":
        parts = [f"{progress.format_count(s.files)} {'file' if s.files == 1 else 'files'}"]
    elif s.paused or s.lane_paused:
        parts.append("paused" if s.paused else "imports paused")
    else:
        if s.rate > 0:
            parts.append(progress.format_rate(s.rate))
        eta = progress.format_eta(s.eta_s)
        parts.append(eta or "starting…")
    problems = s.failed + s.dead
    if problems:
        parts.append(f"{progress.format_count(problems)} failed")
    return " · ".join(parts)


def session_badge(s: SessionProgress) -> str:
    if s.state == "scanning":
        return "Scanning"
    if s.state == "cancelled":
        return "Cancelled"
    if s.state == "done":
        return "Done"
    if s.paused or s.lane_paused:
        return "Paused"
    return f"{s.fraction:.0%}"


class SessionsModel(QAbstractListModel):
    """Import sessions, newest first; rows keep their identity across refreshes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.sessions: list[SessionProgress] = []
        self.folder_limits: dict[str, float] = {}  # [background] folder_limits

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.sessions)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> Any:
        if not index.isValid() or index.row() >= len(self.sessions):
            return None
        s = self.sessions[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return s.name
        if role == SESSION_ROLE:
            return s
        if role == DETAIL_ROLE:
            return session_detail(s, self.folder_limits)
        if role == Qt.ItemDataRole.ToolTipRole:
            return "\n".join(s.roots) + "\n" + session_detail(s, self.folder_limits)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{s.name}: {session_detail(s, self.folder_limits)}"
        return None

    def set_folder_limits(self, limits: dict[str, float]) -> None:
        if limits != self.folder_limits:
            self.folder_limits = limits
            if self.sessions:  # every row's detail may change
                self.dataChanged.emit(self.index(0), self.index(len(self.sessions) - 1))

    def set_sessions(self, sessions: Sequence[SessionProgress]) -> None:
        new = list(sessions)
        if [s.id for s in new] == [s.id for s in self.sessions]:
            changed = [i for i, (a, b) in enumerate(zip(self.sessions, new, strict=True)) if a != b]
            self.sessions = new
            if changed:
                self.dataChanged.emit(self.index(min(changed)), self.index(max(changed)))
            return
        self.beginResetModel()
        self.sessions = new
        self.endResetModel()

    def row_of(self, session_id: int) -> int:
        for row, s in enumerate(self.sessions):
            if s.id == session_id:
                return row
        return -1


class SessionDelegate(QStyledItemDelegate):
    """Name and state on one line, a progress bar, then counts, rate and estimate."""

    PAD = 8
    BAR_H = 6

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        fm = QFontMetrics(option.font)
        return QSize(240, self.PAD * 2 + fm.height() * 2 + self.BAR_H + 10)

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        s = index.data(SESSION_ROLE)
        if not isinstance(s, SessionProgress):
            super().paint(painter, option, index)
            return
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        widget = opt.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)

        rect: QRect = opt.rect.adjusted(self.PAD, self.PAD, -self.PAD, -self.PAD)
        palette: QPalette = opt.palette
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        text_role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        fm = QFontMetrics(opt.font)
        line_h = fm.height()

        painter.save()
        bold = QFont(opt.font)
        bold.setBold(True)
        badge = session_badge(s)
        badge_w = QFontMetrics(bold).horizontalAdvance(badge) + 4
        painter.setFont(bold)
        painter.setPen(palette.color(text_role))
        name_rect = QRect(rect.left(), rect.top(), rect.width() - badge_w - 8, line_h)
        name = QFontMetrics(bold).elidedText(
            s.name, Qt.TextElideMode.ElideMiddle, name_rect.width()
        )
        painter.drawText(
            name_rect, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), name
        )
        badge_color = _badge_color(s, palette, selected)
        painter.setPen(badge_color)
        painter.drawText(
            QRect(rect.right() - badge_w, rect.top(), badge_w, line_h),
            int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
            badge,
        )

        bar = QRect(rect.left(), rect.top() + line_h + 5, rect.width(), self.BAR_H)
        _paint_bar(painter, bar, s, palette, selected)

        painter.setFont(opt.font)
        detail_color = palette.color(text_role)
        if not selected:
            detail_color = palette.color(QPalette.ColorRole.PlaceholderText)
        painter.setPen(detail_color)
        detail_rect = QRect(rect.left(), bar.bottom() + 5, rect.width(), line_h)
        detail = fm.elidedText(
            str(index.data(DETAIL_ROLE)), Qt.TextElideMode.ElideRight, rect.width()
        )
        painter.drawText(
            detail_rect, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), detail
        )
        painter.restore()


def _badge_color(s: SessionProgress, palette: QPalette, selected: bool) -> QColor:
    if selected:
        return palette.color(QPalette.ColorRole.HighlightedText)
    if s.state == "done":
        return QColor("#16a34a")  # failures show as the bar's red part and "N failed"
    if s.state == "cancelled" or s.paused or s.lane_paused:
        return QColor("#d97706")
    if s.failed or s.dead:
        return QColor("#dc2626")
    return palette.color(QPalette.ColorRole.Link)


def _paint_bar(
    painter: QPainter, rect: QRect, s: SessionProgress, palette: QPalette, selected: bool
) -> None:
    """A thin rounded bar: done in the accent colour, failed in red, the rest a groove."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setPen(Qt.PenStyle.NoPen)
    groove = palette.color(
        QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Mid
    )
    groove.setAlpha(70 if selected else 90)
    painter.setBrush(groove)
    radius = rect.height() / 2
    painter.drawRoundedRect(rect, radius, radius)
    if s.total > 0:
        ok = s.done / s.total
        bad = (s.failed + s.dead) / s.total
        accent = palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Highlight
        )
        if s.paused or s.lane_paused or s.state == "cancelled":
            accent = QColor("#d97706")
        elif s.state == "done":
            accent = QColor("#16a34a")
        if ok > 0:
            painter.setBrush(accent)
            painter.drawRoundedRect(
                QRect(
                    rect.left(),
                    rect.top(),
                    max(int(rect.width() * ok), rect.height()),
                    rect.height(),
                ),
                radius,
                radius,
            )
        if bad > 0:
            painter.setBrush(QColor("#dc2626"))
            width = max(int(rect.width() * bad), 3)
            left = rect.left() + int(rect.width() * ok)
            painter.drawRect(QRect(left, rect.top(), width, rect.height()))
    painter.restore()


class ImportsPanel(QWidget):
    """The imports: each with a progress bar, done/total, rate, estimate and its state;
    pause, resume or cancel the selected one."""

    def __init__(
        self,
        library: Library,
        parent: QWidget | None = None,
        *,
        active_only: bool = False,
        confirm: Confirm = ask,
    ) -> None:
        super().__init__(parent)
        self.library = library
        self.active_only = active_only
        self.confirm = confirm
        self.tracker = ProgressTracker()
        self._seq = -1
        self._refreshed_at = 0.0
        self._dirty = True

        self.model = SessionsModel(self)
        self.view = QListView(self)
        self.view.setObjectName("importsList")
        self.view.setModel(self.model)
        self.view.setItemDelegate(SessionDelegate(self.view))
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setUniformItemSizes(True)
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.setAccessibleName("Imports")

        self.empty = QLabel(
            "No imports running." if active_only else "No imports yet. Drop a folder here.", self
        )
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet("color: palette(placeholder-text);")

        self.pause_button = QPushButton("Pause", self)
        self.pause_button.setToolTip("Stop starting this import's jobs (running ones finish)")
        self.pause_button.setCheckable(True)
        self.cancel_button = QPushButton("Cancel import", self)
        self.cancel_button.setToolTip("Drop this import's queued jobs (running ones finish)")
        for button in (self.pause_button, self.cancel_button):
            button.setEnabled(False)
        self.pause_button.clicked.connect(self._toggle_pause)
        self.cancel_button.clicked.connect(self._cancel)

        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addStretch(1)
        buttons.addWidget(self.pause_button)
        buttons.addWidget(self.cancel_button)

        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(6)
        self._layout.addWidget(self.view, 1)
        self._layout.addWidget(self.empty, 1)
        self._layout.addLayout(buttons)

        selection = self.view.selectionModel()
        selection.currentChanged.connect(self._update_buttons)
        selection.selectionChanged.connect(self._update_buttons)
        self.refresh(None)

    # -- pulling -----------------------------------------------------------------------

    def refresh(self, changes: Changes | None) -> None:
        """Re-read the sessions when the ledger moved (or every second, for the rates)."""
        if not self.isVisible():  # hidden (a closed dock, a collapsed sidebar): on show
            self._dirty = True
            return
        now = time.monotonic()
        if (
            changes is not None
            and not self._dirty
            and changes.seq == self._seq
            and now - self._refreshed_at < IDLE_REFRESH_S
        ):
            return
        self._dirty = False
        self._refreshed_at = now
        self._seq = changes.seq if changes is not None else self.library.seq()
        sessions = self.tracker.sessions(self.library.catalog.conn, limit=SESSIONS_SHOWN)
        if self.active_only:
            sessions = [s for s in sessions if s.active]
        selected = self.selected_session()
        try:
            limits = throttle.parse_limits(
                self.library.settings.background.folder_limits, folders=True
            )
        except throttle.LimitsError:  # settings.toml edited by hand: the host says why
            limits = {}
        self.model.set_folder_limits(limits)
        self.model.set_sessions(sessions)
        if selected is not None and self.selected_session() is None:
            row = self.model.row_of(selected.id)
            if row >= 0:
                self.view.setCurrentIndex(self.model.index(row))
        has_rows = bool(sessions)
        self.view.setVisible(has_rows)
        self.empty.setVisible(not has_rows)
        if self.active_only:  # inside the jobs panel: as tall as its rows, up to three
            self._fit_height(len(sessions))
        self._update_buttons()

    def _fit_height(self, rows: int) -> None:
        if rows == 0:
            self.setFixedHeight(self.empty.sizeHint().height() + 12)
            return
        row_h = self.view.sizeHintForRow(0)
        if row_h <= 0:
            row_h = SessionDelegate().sizeHint(QStyleOptionViewItem(), QModelIndex()).height()
        frame = 2 * self.view.frameWidth()
        buttons = self.cancel_button.sizeHint().height()
        spacing = self._layout.spacing()
        self.setFixedHeight(min(rows, 3) * row_h + frame + buttons + spacing + 2)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._dirty:
            self.refresh(None)

    # -- actions -------------------------------------------------------------------------

    def selected_session(self) -> SessionProgress | None:
        index = self.view.currentIndex()
        if not index.isValid() or not self.view.selectionModel().isSelected(index):
            return None
        s = index.data(SESSION_ROLE)
        return s if isinstance(s, SessionProgress) else None

    def select_session(self, session_id: int) -> bool:
        row = self.model.row_of(session_id)
        if row >= 0:
            self.view.setCurrentIndex(self.model.index(row))
        return row >= 0

    def target_session(self) -> SessionProgress | None:
        """What the buttons act on: the selected import, else the newest one under way."""
        selected = self.selected_session()
        if selected is not None:
            return selected
        return next((s for s in self.model.sessions if s.active), None)

    def _update_buttons(self, *args: object) -> None:
        s = self.target_session()
        live = s is not None and s.active
        for button in (self.pause_button, self.cancel_button):
            button.setEnabled(live)
            button.setVisible(live)  # nothing under way: no dead buttons
        paused = bool(s is not None and s.paused)
        self.pause_button.setChecked(paused)
        self.pause_button.setText("Resume" if paused else "Pause")

    def _toggle_pause(self) -> None:
        s = self.target_session()
        if s is None:
            return
        ops.set_import_paused(self.library, s.id, not s.paused)
        self.refresh(None)

    def _cancel(self) -> None:
        s = self.target_session()
        if s is None:
            return
        question = (
            f"Cancel the import of “{s.name}”? {progress.format_count(s.queued)} queued "
            "jobs will not run. Items already catalogued stay in the library; "
            "you can retry them later."
        )
        if not self.confirm(self, "Cancel import", question):
            return
        ops.cancel_import(self.library, s.id)
        self.refresh(None)


class StatusSummary:
    """The whole queue in one line for the status bar:
    "Processing 1,234 of 5,000 · 38/s · about 2 min left" or "All done · 5,000 items"."""

    def __init__(self, library: Library) -> None:
        self.library = library
        self.tracker = ProgressTracker()
        self.last: progress.QueueProgress | None = None

    def text(self) -> str:
        self.last = self.tracker.queue(self.library.catalog.conn)
        return progress.summary_text(self.last)
