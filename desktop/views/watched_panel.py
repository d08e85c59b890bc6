"""The sidebar's watched folders: name (full path in the tooltip), a muted
"(not available)" where the folder is not there, and a way to stop watching.

Thin: the list comes from `desktop.operations.watch`, and so does stopping. Adding
goes through the window (`addRequested`), which owns the folder picker and the
import that follows.
"""

from __future__ import annotations

import time

from desktop.operations import watch as watch_ops
from desktop.qt import (
    QAbstractItemView,
    QApplication,
    QDesktopServices,
    QFont,
    QFontMetrics,
    QHBoxLayout,
    QIcon,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QModelIndex,
    QPainter,
    QPalette,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QSize,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    Qt,
    QToolButton,
    QUrl,
    QVBoxLayout,
    QWidget,
    Signal,
)
from engine.library import Changes, Library

ENTRY_ROLE = int(Qt.ItemDataRole.UserRole) + 1
REFRESH_S = 2.0  # the list changes rarely; availability (a stat per folder) is re-checked
ROWS_SHOWN = 5  # the list grows with its rows up to this many, then scrolls
UNAVAILABLE = "(not available)"


class WatchedDelegate(QStyledItemDelegate):
    """Folder icon and name; a muted "(not available)" after the name of a folder
    that is not there."""

    GAP = 6

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        fm = QFontMetrics(option.font)
        return QSize(160, max(fm.height(), 16) + 10)

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        entry = index.data(ENTRY_ROLE)
        if not isinstance(entry, watch_ops.WatchEntry):
            super().paint(painter, option, index)
            return
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        opt.icon = QIcon()
        widget = opt.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)

        rect: QRect = opt.rect.adjusted(6, 0, -6, 0)
        palette: QPalette = opt.palette
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        text_colour = palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        )
        muted = text_colour if selected else palette.color(QPalette.ColorRole.PlaceholderText)
        painter.save()
        icon = style.standardIcon(QStyle.StandardPixmap.SP_DirIcon, None, widget)
        side = 16
        icon_rect = QRect(rect.left(), rect.top() + (rect.height() - side) // 2, side, side)
        mode = QIcon.Mode.Normal if entry.available else QIcon.Mode.Disabled
        icon.paint(painter, icon_rect, Qt.AlignmentFlag.AlignCenter, mode)

        left = icon_rect.right() + 1 + self.GAP
        fm = QFontMetrics(opt.font)
        suffix = "" if entry.available else f"  {UNAVAILABLE}"
        suffix_w = fm.horizontalAdvance(suffix)
        name_w = max(20, rect.right() - left - suffix_w)
        name = fm.elidedText(entry.name, Qt.TextElideMode.ElideMiddle, name_w)
        centre = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        painter.setFont(opt.font)
        painter.setPen(text_colour if entry.available else muted)
        name_rect = QRect(left, rect.top(), fm.horizontalAdvance(name) + 1, rect.height())
        painter.drawText(name_rect, centre, name)
        if suffix:
            small = QFont(opt.font)
            small.setItalic(True)
            painter.setFont(small)
            painter.setPen(muted)
            painter.drawText(
                QRect(
                    name_rect.right() + 1,
                    rect.top(),
                    rect.right() - name_rect.right(),
                    rect.height(),
                ),
                centre,
                QFontMetrics(small).elidedText(
                    suffix, Qt.TextElideMode.ElideRight, rect.right() - name_rect.right()
                ),
            )
        painter.restore()


class WatchedPanel(QWidget):
    """Watched folders of one library. `addRequested` asks the window to pick a folder."""

    addRequested = Signal()

    def __init__(self, library: Library, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library = library
        self.entries: list[watch_ops.WatchEntry] = []
        self._refreshed_at = 0.0

        self.heading = QLabel("Watched folders")
        font = self.heading.font()
        font.setBold(True)
        self.heading.setFont(font)
        self.add_button = QToolButton()
        self.add_button.setText("+")
        self.add_button.setAutoRaise(True)
        self.add_button.setToolTip("Watch a folder: what arrives there is imported by itself")
        self.add_button.setAccessibleName("Watch Folder")
        self.add_button.clicked.connect(self.addRequested)
        self.remove_button = QToolButton()
        self.remove_button.setText("−")
        self.remove_button.setAutoRaise(True)
        self.remove_button.setToolTip("Stop watching the selected folder (its items stay)")
        self.remove_button.setAccessibleName("Stop Watching")
        self.remove_button.clicked.connect(self.stop_selected)
        header = QHBoxLayout()
        header.setContentsMargins(0, 10, 0, 0)
        header.setSpacing(2)
        header.addWidget(self.heading, 1)
        header.addWidget(self.add_button)
        header.addWidget(self.remove_button)

        self.view = QListWidget()
        self.view.setObjectName("watchedList")
        self.view.setAccessibleName("Watched folders")
        self.view.setItemDelegate(WatchedDelegate(self.view))
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setUniformItemSizes(True)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._context_menu)
        self.view.itemSelectionChanged.connect(self._update_buttons)

        self.empty = QLabel("None yet. File ▸ Watch Folder… keeps a folder in step.")
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet("color: palette(placeholder-text);")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addWidget(self.view)
        layout.addWidget(self.empty)
        self.reload()

    # -- pulling -------------------------------------------------------------------------

    def refresh(self, changes: Changes | None) -> None:
        """From the window's poll tick: re-read every couple of seconds (the host's watcher
        never edits the list; a folder's availability changes by itself)."""
        if time.monotonic() - self._refreshed_at >= REFRESH_S:
            self.reload()

    def reload(self) -> None:
        self._refreshed_at = time.monotonic()
        entries = watch_ops.watched_folders(self.library)
        if entries == self.entries:
            return
        selected = self.selected_path()
        self.entries = entries
        self.view.clear()
        for entry in entries:
            item = QListWidgetItem(entry.name)
            item.setData(ENTRY_ROLE, entry)
            tip = entry.display
            if not entry.available:
                tip += "\nNot available (unplugged or removed): its items are kept, and "
                tip += "watching resumes when it is back."
            item.setToolTip(tip)
            item.setData(
                Qt.ItemDataRole.AccessibleTextRole,
                entry.name if entry.available else f"{entry.name} {UNAVAILABLE}",
            )
            self.view.addItem(item)
            if entry.path == selected:
                item.setSelected(True)
                self.view.setCurrentItem(item)
        self.view.setVisible(bool(entries))
        self.empty.setVisible(not entries)
        self._fit_height()
        self._update_buttons()

    def _fit_height(self) -> None:
        rows = min(max(len(self.entries), 1), ROWS_SHOWN)
        row_h = self.view.sizeHintForRow(0) if self.entries else 0
        if row_h <= 0:
            row_h = WatchedDelegate().sizeHint(QStyleOptionViewItem(), QModelIndex()).height()
        self.view.setFixedHeight(rows * row_h + 2 * self.view.frameWidth() + 2)

    # -- actions -------------------------------------------------------------------------

    def selected_path(self) -> str | None:
        items = self.view.selectedItems()
        entry = items[0].data(ENTRY_ROLE) if items else None
        return entry.path if isinstance(entry, watch_ops.WatchEntry) else None

    def select_path(self, path: str) -> bool:
        for row in range(self.view.count()):
            item = self.view.item(row)
            entry = item.data(ENTRY_ROLE)
            if isinstance(entry, watch_ops.WatchEntry) and entry.path == path:
                self.view.setCurrentItem(item)
                return True
        return False

    def _update_buttons(self) -> None:
        has = self.selected_path() is not None
        self.remove_button.setEnabled(has)
        self.remove_button.setVisible(bool(self.entries))

    def stop_selected(self) -> None:
        path = self.selected_path()
        if path is not None:
            self.stop_watching(path)

    def stop_watching(self, path: str) -> bool:
        removed = watch_ops.unwatch_folder(self.library, path)
        self.reload()
        return removed

    def _context_menu(self, pos: QPoint) -> None:
        item = self.view.itemAt(pos)
        entry = item.data(ENTRY_ROLE) if item is not None else None
        menu = QMenu(self)
        if isinstance(entry, watch_ops.WatchEntry):
            path = entry.path
            open_action = menu.addAction("Open Folder")
            open_action.setEnabled(entry.available)
            open_action.triggered.connect(
                lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(path))
            )
            menu.addAction("Stop Watching").triggered.connect(lambda: self.stop_watching(path))
            menu.addSeparator()
        menu.addAction("Watch Folder…").triggered.connect(self.addRequested)
        menu.exec(self.view.viewport().mapToGlobal(pos))
