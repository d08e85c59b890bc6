"""A brief, non-modal message above the grid that hides itself."""

from __future__ import annotations

from desktop.qt import QFrame, QHBoxLayout, QLabel, QPalette, QTimer, QToolButton, QWidget

NOTICE_MS = 12_000


class Notice(QFrame):
    """A brief, non-modal message above the grid that hides itself."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("notice")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 6, 6, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)
        self.hide()

    def show_message(self, text: str, timeout_ms: int = NOTICE_MS) -> None:
        highlight = self.palette().color(QPalette.ColorRole.Highlight)
        rgb = f"{highlight.red()}, {highlight.green()}, {highlight.blue()}"
        self.setStyleSheet(
            f"#notice {{ background: rgba({rgb}, 40); border: 1px solid rgba({rgb}, 140);"
            " border-radius: 6px; }"
        )
        self.label.setText(text)
        self.show()
        self._timer.start(timeout_ms)

    def text(self) -> str:
        return self.label.text()
