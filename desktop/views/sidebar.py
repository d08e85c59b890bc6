"""The main window's sidebar: the library's name and place, its labels, its imports, its
watched folders.

The panels belong to one library: `show_library` builds them, `clear` drops them.
"""

from __future__ import annotations

from desktop.qt import QLabel, Qt, QVBoxLayout, QWidget
from desktop.views.imports_panel import ImportsPanel
from desktop.views.labels_panel import LabelsPanel
from desktop.views.watched_panel import WatchedPanel
from engine.library import Library


class Sidebar(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sidebar")
        self.setMinimumWidth(220)
        self.imports_panel: ImportsPanel | None = None
        self.watched_panel: WatchedPanel | None = None
        self.labels_panel: LabelsPanel | None = None
        side = QVBoxLayout(self)
        side.setContentsMargins(10, 10, 6, 8)
        side.setSpacing(6)
        self.library_label = QLabel()
        font = self.library_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        font.setBold(True)
        self.library_label.setFont(font)
        self.library_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        side.addWidget(self.library_label)
        self.library_path = QLabel()
        self.library_path.setEnabled(False)
        self.library_path.setWordWrap(True)
        side.addWidget(self.library_path)
        self.labels_slot = QVBoxLayout()
        self.labels_slot.setContentsMargins(0, 0, 0, 0)
        side.addLayout(self.labels_slot)
        heading = QLabel("Imports")
        heading.setContentsMargins(0, 10, 0, 0)
        hf = heading.font()
        hf.setBold(True)
        heading.setFont(hf)
        side.addWidget(heading)
        self.imports_slot = QVBoxLayout()
        self.imports_slot.setContentsMargins(0, 0, 0, 0)
        side.addLayout(self.imports_slot, 1)
        self.watched_slot = QVBoxLayout()
        self.watched_slot.setContentsMargins(0, 0, 0, 0)
        side.addLayout(self.watched_slot)

    def show_library(self, library: Library) -> tuple[ImportsPanel, WatchedPanel]:
        """Name the library and build its panels (after `clear`)."""
        self.library_label.setText(library.root.name)
        self.library_label.setToolTip(str(library.root))
        self.library_path.setText(str(library.root.parent))
        self.labels_panel = LabelsPanel(library, self)
        self.labels_slot.addWidget(self.labels_panel)
        self.imports_panel = ImportsPanel(library, self)
        self.imports_slot.addWidget(self.imports_panel)
        self.watched_panel = WatchedPanel(library, self)
        self.watched_slot.addWidget(self.watched_panel)
        return self.imports_panel, self.watched_panel

    def show_no_library(self) -> None:
        self.library_label.setText("No library open")
        self.library_label.setToolTip("")
        self.library_path.setText("")

    def clear(self) -> None:
        if self.labels_panel is not None:
            self.labels_panel.detach()
        for widget in (self.imports_panel, self.watched_panel, self.labels_panel):
            if widget is not None:
                widget.hide()
                widget.setParent(None)
                widget.deleteLater()
        self.imports_panel = self.watched_panel = None
        self.labels_panel = None
