"""The jobs panel's banner of work waiting for a model: one row per stage, with how
many jobs wait and what to do about it (the reason the engine gave, its command in
`backticks` shown as code, selectable, with a button that copies it).

A stage that waits only because the stage it needs waits ("Waits for embed: …") says
so in a few words instead of repeating the other row's instructions.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping

from desktop.qt import (
    QColor,
    QFrame,
    QGuiApplication,
    QHBoxLayout,
    QLabel,
    QPushButton,
    Qt,
    QVBoxLayout,
    QWidget,
)
from desktop.views.grid import BADGE_COLOURS
from engine.progress import format_count

COMMAND = re.compile(r"`([^`]+)`")
WAITS_FOR = re.compile(r"^Waits for (\w+): ")


def stage_name(stage: str) -> str:
    return stage.replace("_", " ").capitalize()


def command_in(reason: str) -> str | None:
    """The first `command` quoted in a reason, if any."""
    found = COMMAND.search(reason)
    return found.group(1) if found else None


def reason_html(reason: str) -> str:
    """The reason as rich text: escaped, its `commands` as code."""
    parts = COMMAND.split(reason)  # text, command, text, command, …
    return "".join(
        f"<code>{html.escape(part)}</code>" if i % 2 else html.escape(part)
        for i, part in enumerate(parts)
    )


class WaitingRow(QWidget):
    def __init__(self, stage: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.stage = stage
        self.command: str | None = None
        self.plain = ""  # the row as plain text (tests, accessibility)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel(self)
        self.label.setObjectName(f"waiting-{stage}")
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.copy_button = QPushButton("Copy command", self)
        self.copy_button.setObjectName(f"copy-{stage}")
        self.copy_button.setToolTip("Copy the command to the clipboard")
        self.copy_button.clicked.connect(self.copy_command)
        row.addWidget(self.label, 1)
        row.addWidget(self.copy_button, 0, Qt.AlignmentFlag.AlignTop)

    def show_waiting(self, count: int, reason: str, waiting: Mapping[str, object]) -> None:
        title = stage_name(self.stage)
        needs = WAITS_FOR.match(reason)
        if needs is not None and needs.group(1) in waiting:  # that row says what to do
            text = f"they need {stage_name(needs.group(1))} first (see its row)"
            self.command = None
        else:
            text = reason or "waiting for its model"
            self.command = command_in(reason)
        lead = f"{title}: {format_count(count)} waiting"
        self.plain = f"{lead} — {text}"
        self.label.setText(f"<b>{html.escape(lead)}</b> — {reason_html(text)}")
        self.label.setToolTip(reason)
        self.copy_button.setVisible(self.command is not None)

    def copy_command(self) -> None:
        if self.command:
            QGuiApplication.clipboard().setText(self.command)


class WaitingBanner(QFrame):
    """Hidden while nothing waits; `show_waiting(ledger.waiting_stages(conn))`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("waitingBanner")
        violet = QColor(BADGE_COLOURS["waiting"])
        rgb = f"{violet.red()}, {violet.green()}, {violet.blue()}"
        self.setStyleSheet(
            f"QFrame#waitingBanner {{ background: rgba({rgb}, 28);"
            f" border: 1px solid rgba({rgb}, 150); border-radius: 8px; }}"
        )
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(12, 8, 12, 8)
        self._layout.setSpacing(6)
        self.rows: dict[str, WaitingRow] = {}
        self.hide()

    def show_waiting(self, waiting: Mapping[str, tuple[int, str]]) -> None:
        for stage in [s for s in self.rows if s not in waiting]:
            row = self.rows.pop(stage)
            row.hide()
            row.deleteLater()
        for stage, (count, reason) in waiting.items():
            if stage not in self.rows:
                self.rows[stage] = WaitingRow(stage, self)
                self._layout.addWidget(self.rows[stage])
            row = self.rows[stage]
            row.show_waiting(count, reason, waiting)
        self.setVisible(bool(waiting))

    def texts(self) -> list[str]:
        return [row.plain for row in self.rows.values()]
