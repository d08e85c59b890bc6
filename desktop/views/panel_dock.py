"""A dock for one of the library's panels (the jobs panel; later ones alike)."""

from __future__ import annotations

from desktop.qt import QDockWidget, QFrame, QMainWindow, QScrollArea, Qt, QWidget

DOCK_AREAS = Qt.DockWidgetArea.BottomDockWidgetArea | Qt.DockWidgetArea.RightDockWidgetArea
MIN_FIRST_HEIGHT = 260


class PanelDock(QDockWidget):
    """Docked at the bottom of `window` and hidden until asked for. The panel sits in a
    scroll area, so the dock can be as short as the user likes; the first time it
    opens docked it takes a third of the window's height, not more."""

    def __init__(self, title: str, name: str, window: QMainWindow) -> None:
        super().__init__(title, window)
        self.main = window
        self.setObjectName(name)
        self.setAllowedAreas(DOCK_AREAS)
        window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self)
        self.hide()
        self._sized = False
        self.visibilityChanged.connect(self._shown)

    def set_panel(self, panel: QWidget) -> None:
        holder = QScrollArea()
        holder.setWidgetResizable(True)
        holder.setFrameShape(QFrame.Shape.NoFrame)
        holder.setWidget(panel)
        self.setWidget(holder)

    def clear(self) -> None:
        holder = self.widget()
        if holder is not None:
            holder.hide()
            holder.setParent(None)
            holder.deleteLater()

    def _shown(self, visible: bool) -> None:
        if visible and not self._sized and not self.isFloating():
            self._sized = True
            height = max(MIN_FIRST_HEIGHT, self.main.height() // 3)
            self.main.resizeDocks([self], [height], Qt.Orientation.Vertical)
