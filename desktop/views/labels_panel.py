"""The sidebar's labels: each of the user's categories with how many items are theirs,
labelled automatically and waiting for review; a click shows the label's items.

Thin: the counts come from `desktop.operations.labels`, re-read off the GUI thread
(in the label pool, so a read after a decision sees it) only when a label changed
(`labels_seq` moved). What a click does is the window's (`labelClicked`,
`reviewRequested`, `newRequested`).
"""

from __future__ import annotations

import logging

from desktop.operations import labels as label_ops
from desktop.qt import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPoint,
    Qt,
    QToolButton,
    QVBoxLayout,
    QWidget,
    Signal,
)
from engine.library import Changes, Library

log = logging.getLogger("shoebox.desktop")

COUNT_ROLE = int(Qt.ItemDataRole.UserRole) + 2
ROWS_SHOWN = 8


def count_text(count: label_ops.LabelCount) -> str:
    """ "12 yours · 40 auto · 5 to review" (the parts that are not zero, yours always)."""
    parts = [f"{count.user:,} yours"]
    if count.auto:
        parts.append(f"{count.auto:,} auto")
    if count.review:
        parts.append(f"{count.review:,} to review")
    return " · ".join(parts)


class LabelsPanel(QWidget):
    labelClicked = Signal(str)  # show this label's items
    reviewRequested = Signal(str)  # review this label's suggestions ("" for all)
    newRequested = Signal()

    def __init__(self, library: Library, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library = library
        self.counts: list[label_ops.LabelCount] = []
        self.reads = 0  # times the counts were read (for tests)
        self._seq = -1
        self._reading = False
        self._gone = False  # the library closed: a late read is dropped

        heading = QLabel("Labels")
        font = heading.font()
        font.setBold(True)
        heading.setFont(font)
        self.new_button = QToolButton()
        self.new_button.setText("+")
        self.new_button.setAutoRaise(True)
        self.new_button.setToolTip("New label from the selected items (Ctrl+L)")
        self.new_button.setAccessibleName("New Label from Selection")
        self.new_button.clicked.connect(self.newRequested)
        self.review_button = QToolButton()
        self.review_button.setText("Review")
        self.review_button.setAutoRaise(True)
        self.review_button.setToolTip("Answer what Shoebox is not sure of (Ctrl+Shift+L)")
        self.review_button.clicked.connect(lambda: self.reviewRequested.emit(""))
        header = QHBoxLayout()
        header.setContentsMargins(0, 10, 0, 0)
        header.setSpacing(2)
        header.addWidget(heading, 1)
        header.addWidget(self.review_button)
        header.addWidget(self.new_button)

        self.view = QListWidget()
        self.view.setObjectName("labelsList")
        self.view.setAccessibleName("Labels")
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.itemClicked.connect(self._clicked)
        self.view.itemActivated.connect(self._clicked)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._context_menu)

        self.empty = QLabel("None yet. Select a few items and press Ctrl+L to teach one.")
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet("color: palette(placeholder-text);")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addWidget(self.view)
        layout.addWidget(self.empty)
        self.view.hide()
        self.empty.hide()
        self.reload()

    def refresh(self, changes: Changes | None) -> None:
        """From the window's poll: re-read when a label changed."""
        if not self._reading and label_ops.current_seq(self.library) != self._seq:
            self.reload()

    def reload(self) -> None:
        """Read the counts (after every label operation already asked)."""
        self._seq = label_ops.current_seq(self.library)
        self._reading = True
        library = self.library

        def failed(exc: BaseException) -> None:
            self._reading = False
            log.error("reading the labels failed", exc_info=exc)

        label_ops.run_label_op(lambda: label_ops.label_counts(library), self._show, failed)

    def detach(self) -> None:
        """The library is closing: nothing more is shown."""
        self._gone = True

    def is_idle(self) -> bool:
        return not self._reading

    def _show(self, counts: list[label_ops.LabelCount]) -> None:
        self._reading = False
        if self._gone:
            return
        self.reads += 1
        if counts == self.counts and self.reads > 1:
            return
        selected = self.selected_label()
        self.counts = counts
        self.view.clear()
        for count in counts:
            item = QListWidgetItem(f"{count.name}\n{count_text(count)}")
            item.setData(COUNT_ROLE, count)
            item.setToolTip(
                f"{count.name}: {count.user:,} labelled by you, {count.auto:,} labelled "
                f"automatically, {count.review:,} waiting for your review.\n"
                "Click to show them; right-click to review."
            )
            self.view.addItem(item)
            if count.name == selected:
                item.setSelected(True)
        self.view.setVisible(bool(counts))
        self.empty.setVisible(not counts)
        self.review_button.setEnabled(bool(counts))
        rows = min(max(len(counts), 1), ROWS_SHOWN)
        row_h = self.view.sizeHintForRow(0) if counts else 0
        self.view.setFixedHeight(rows * max(row_h, 34) + 2 * self.view.frameWidth() + 2)

    def rows(self) -> list[str]:
        """Each row's text (for tests)."""
        return [self.view.item(i).text() for i in range(self.view.count())]

    def selected_label(self) -> str | None:
        items = self.view.selectedItems()
        count = items[0].data(COUNT_ROLE) if items else None
        return count.name if isinstance(count, label_ops.LabelCount) else None

    def _clicked(self, item: QListWidgetItem) -> None:
        count = item.data(COUNT_ROLE)
        if isinstance(count, label_ops.LabelCount):
            self.labelClicked.emit(count.name)

    def _context_menu(self, pos: QPoint) -> None:
        item = self.view.itemAt(pos)
        count = item.data(COUNT_ROLE) if item is not None else None
        menu = QMenu(self)
        if isinstance(count, label_ops.LabelCount):
            name = count.name
            menu.addAction(f"Show {name}").triggered.connect(lambda: self.labelClicked.emit(name))
            menu.addAction(f"Review {name}…").triggered.connect(
                lambda: self.reviewRequested.emit(name)
            )
            menu.addSeparator()
        menu.addAction("New Label from Selection…").triggered.connect(self.newRequested)
        menu.exec(self.view.viewport().mapToGlobal(pos))
