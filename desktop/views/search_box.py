"""The search box and its Filter menu (in the main toolbar).

`typed` fires once typing settles (`TYPING_MS`), `submitted` on Return; the window
runs the search (`desktop.actions.search`). The Filter menu asks for an inline filter
(`filterPicked(key, value)`; an empty value: the user types it after the key).
"""

from __future__ import annotations

from desktop.qt import QAction, QLineEdit, QMenu, Qt, QTimer, QToolButton, QWidget, Signal

TYPING_MS = 200
PLACEHOLDER = "Search text, names, tags…  (Ctrl+F)"
# (menu text, key, value): value "" puts "key:" in the box for the user to finish.
FILTERS: tuple[tuple[str, str, str], ...] = (
    ("Photos Only\tkind:photo", "kind", "photo"),
    ("Documents Only\tkind:document", "kind", "document"),
    ("", "", ""),
    ("With Tag…\ttag:", "tag", ""),
    ("With Label…\tlabel:", "label", ""),
    ("Taken After…\tafter:", "after", ""),
    ("Taken Before…\tbefore:", "before", ""),
    ("In Folder…\tin:", "in", ""),
)


class SearchBox(QLineEdit):
    typed = Signal()
    submitted = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("searchBox")
        self.setPlaceholderText(PLACEHOLDER)
        self.setClearButtonEnabled(True)
        self.setMinimumWidth(320)
        self.setAccessibleName("Search")
        self.setToolTip(
            "Words and “phrases” in the text of documents, names, folders and tags;\n"
            "filters: kind:photo kind:document tag:beach label:Receipts after:2023 before:2024-06\n"
            "in:Taxes"
        )
        self._typing = QTimer(self)
        self._typing.setSingleShot(True)
        self._typing.setInterval(TYPING_MS)
        self._typing.timeout.connect(self.typed)
        self.textEdited.connect(lambda _t: self._typing.start())
        self.returnPressed.connect(self._submit)

    def _submit(self) -> None:
        self._typing.stop()
        self.submitted.emit()

    def pending(self) -> bool:
        """Typing has not settled yet (a search is due)."""
        return self._typing.isActive()

    def cancel_pending(self) -> None:
        self._typing.stop()

    def set_text_quietly(self, text: str) -> None:
        """Replace the text without a search being due (the caller searches, or not)."""
        self._typing.stop()
        self.setText(text)

    def focus_and_select(self) -> None:
        self.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.selectAll()


class FilterButton(QToolButton):
    """ "Filter ▾": adds an inline filter to the search."""

    filterPicked = Signal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("filterButton")
        self.setText("Filter")
        self.setToolTip("Add a filter to the search")
        self.setAccessibleName("Add a search filter")
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self)
        for text, key, value in FILTERS:
            if not text:
                menu.addSeparator()
                continue
            action = menu.addAction(text)
            action.setData(f"{key}:{value}")
            action.triggered.connect(lambda _c=False, k=key, v=value: self.filterPicked.emit(k, v))
        self.setMenu(menu)

    def menu_actions(self) -> dict[str, QAction]:
        """Each entry's "key:value" and its action (for tests)."""
        menu = self.menu()
        return {str(a.data()): a for a in menu.actions() if not a.isSeparator()} if menu else {}
