"""The bar above the grid while it shows the items like one: "Similar to NAME ×"."""

from __future__ import annotations

import html

from desktop.qt import QFrame, QHBoxLayout, QLabel, QPalette, QToolButton, QWidget, Signal


class SimilarBar(QFrame):
    """Shown with `show_for(item_id, name, count)`; `closeRequested` is its ×."""

    closeRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("similarBar")
        self.item_id: int | None = None
        self.name = ""
        self.request = 0  # bumped by each query asked for (and by leaving): newest wins
        self.opened_at = 0  # when shown, in `desktop.actions`'s order of things opened
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 4, 4, 4)
        self.label = QLabel()
        self.label.setObjectName("similarLabel")
        close = QToolButton()
        close.setObjectName("similarClose")
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Show the whole library again (Esc)")
        close.setAccessibleName("Back to the library")
        close.clicked.connect(self.closeRequested)
        self.close_button = close
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.hide()

    def show_for(self, item_id: int, name: str, count: int) -> None:
        self.item_id, self.name = item_id, name
        highlight = self.palette().color(QPalette.ColorRole.Highlight)
        rgb = f"{highlight.red()}, {highlight.green()}, {highlight.blue()}"
        self.setStyleSheet(
            f"#similarBar {{ background: rgba({rgb}, 36); border: 1px solid rgba({rgb}, 130);"
            " border-radius: 6px; }"
        )
        self.label.setText(
            f"Similar to <b>{html.escape(name)}</b>  ·  {count} items, most alike first"
        )
        self.label.setToolTip(f"Items that look like {name}")
        self.show()

    def clear(self) -> None:
        self.item_id, self.name = None, ""
        self.hide()

    @property
    def active(self) -> bool:
        return self.item_id is not None

    def text(self) -> str:
        return f"Similar to {self.name}" if self.active else ""
