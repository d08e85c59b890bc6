"""Files and folders dropped on a window: the window imports them."""

from __future__ import annotations

from collections.abc import Callable

from desktop.qt import QDragMoveEvent, QDropEvent, QEvent, QMimeData, QObject, QWidget, Signal


def local_paths(mime: QMimeData) -> list[str]:
    """The local files and folders a drag carries."""
    if not mime.hasUrls():
        return []
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile() and url.toLocalFile()]


class DropTarget(QObject):
    """Takes the drags of local paths that reach `widget` (while `accepting()`), lights
    `highlight(True)` while one hovers, and emits `dropped(paths)` on a drop."""

    dropped = Signal(list)

    def __init__(
        self,
        widget: QWidget,
        accepting: Callable[[], bool],
        highlight: Callable[[bool], None],
    ) -> None:
        super().__init__(widget)
        self.accepting = accepting
        self.highlight = highlight
        widget.setAcceptDrops(True)
        widget.installEventFilter(self)

    def _wanted(self, event: QDropEvent) -> list[str]:
        return local_paths(event.mimeData()) if self.accepting() else []

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.DragLeave:
            self.highlight(False)
            return False
        if not isinstance(event, QDropEvent):
            return False
        if kind == QEvent.Type.DragEnter:
            if self._wanted(event):
                event.acceptProposedAction()
                self.highlight(True)
            else:
                event.ignore()
            return True
        if kind == QEvent.Type.DragMove and isinstance(event, QDragMoveEvent):
            if self._wanted(event):
                event.acceptProposedAction()
            return True
        if kind == QEvent.Type.Drop:
            self.highlight(False)
            paths = self._wanted(event)
            if not paths:
                event.ignore()
                return True
            event.acceptProposedAction()
            self.dropped.emit(paths)
            return True
        return False
