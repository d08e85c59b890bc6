"""The main toolbar: Import on the left; the search box and the grid's filters on the right.

`queryChanged` fires when a filter box changes; `query()` is what the grid should
show. The search box (`desktop.views.search_box`) says `searchTyped` once typing
settles (200 ms), `searchSubmitted` on Return, and its Filter menu `filterPicked`.
"""

from __future__ import annotations

from desktop.qt import (
    QComboBox,
    QSizePolicy,
    Qt,
    QToolBar,
    QToolButton,
    QWidget,
    Signal,
)
from desktop.views.search_box import FilterButton, SearchBox
from engine import browse
from engine.browse import BrowseQuery


class MainToolBar(QToolBar):
    queryChanged = Signal()
    searchTyped = Signal()  # typing in the search box settled
    searchSubmitted = Signal()  # Return in the search box
    filterPicked = Signal(str, str)  # the Filter menu: key, value

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

        self.search = SearchBox()
        self.search.typed.connect(self.searchTyped)
        self.search.submitted.connect(self.searchSubmitted)
        self.addWidget(self.search)
        self.filter_button = FilterButton()
        self.filter_button.filterPicked.connect(self.filterPicked)
        self.addWidget(self.filter_button)

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
        self.queryChanged.emit()

    def query(self) -> BrowseQuery:
        """The library's list (the search box searches instead of filtering it)."""
        return BrowseQuery(
            sort=self.sort_box.currentData() or "added",
            kind=self.kind_box.currentData() or "",
            state=self.state_box.currentData() or "all",
        )

    def focus_search(self) -> None:
        self.search.focus_and_select()
