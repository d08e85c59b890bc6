"""The main toolbar: Import on the left; the grid's filters on the right.

`queryChanged` fires when the filter changes (typing settles for 200 ms first);
`query()` is what the grid should show. New search controls go here.
"""

from __future__ import annotations

from desktop.qt import (
    QComboBox,
    QLineEdit,
    QSizePolicy,
    Qt,
    QTimer,
    QToolBar,
    QToolButton,
    QWidget,
    Signal,
)
from engine import browse
from engine.browse import BrowseQuery

TYPING_MS = 200


class MainToolBar(QToolBar):
    queryChanged = Signal()
    searchSubmitted = Signal()  # Return in the search box

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Main", parent)
        self.setObjectName("mainToolBar")
        self.setMovable(False)
        self.setFloatable(False)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.import_button = QToolButton()
        self.import_button.setText("Import Folder…")
        self.import_button.setToolTip("Import a folder (Ctrl+I), or drop one on the window")
        self.addWidget(self.import_button)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.addWidget(spacer)

        self._typing = QTimer(self)
        self._typing.setSingleShot(True)
        self._typing.setInterval(TYPING_MS)
        self._typing.timeout.connect(self._changed)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter by name  (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(220)
        self.search.setAccessibleName("Filter by name")
        self.search.textChanged.connect(lambda _t: self._typing.start())
        self.search.returnPressed.connect(self.searchSubmitted)
        self.addWidget(self.search)

        self.kind_box = self._combo(browse.KINDS, "Kind")
        self.state_box = self._combo(browse.STATE_FILTERS, "State")
        self.sort_box = self._combo({k: f"Sort: {v}" for k, v in browse.SORTS.items()}, "Sort")
        self.sort_box.blockSignals(True)
        self.sort_box.setCurrentIndex(self.sort_box.findData("added"))
        self.sort_box.blockSignals(False)
        for box in (self.kind_box, self.state_box, self.sort_box):
            self.addSeparator()
            self.addWidget(box)

    def _combo(self, options: dict[str, str], name: str) -> QComboBox:
        box = QComboBox()
        box.setAccessibleName(name)
        box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        for key, text in options.items():
            box.addItem(text, key)
        box.currentIndexChanged.connect(lambda _i: self._changed())
        return box

    def _changed(self) -> None:
        self._typing.stop()
        self.queryChanged.emit()

    def query(self) -> BrowseQuery:
        return BrowseQuery(
            sort=self.sort_box.currentData() or "added",
            kind=self.kind_box.currentData() or "",
            state=self.state_box.currentData() or "all",
            text=self.search.text(),
        )

    def focus_search(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()
