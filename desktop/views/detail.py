"""The detail pane: large preview, metadata, every path, each stage's state and error."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from desktop.qt import (
    QDesktopServices,
    QFont,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QImage,
    QImageReader,
    QLabel,
    QPalette,
    QPixmap,
    QPushButton,
    QResizeEvent,
    QScrollArea,
    QSizePolicy,
    Qt,
    QToolButton,
    QUrl,
    QVBoxLayout,
    QWidget,
    Signal,
)
from desktop.threads import run_in_thread
from desktop.views.grid import BADGE_COLOURS, is_dark
from engine.browse import ItemDetail, item_detail
from engine.library import Library

STATE_LABELS = {
    "queued": "Queued",
    "running": "Working",
    "done": "Done",
    "failed": "Failed",
    "dead": "Gave up",
    "cancelled": "Cancelled",
    "skipped": "Skipped",
}
FAILED_STATES = ("failed", "dead")
RETRYABLE_STATES = (*FAILED_STATES, "skipped")  # retrying a failed step brings back its skips


def open_containing_folder(path: str) -> bool:
    return QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.dirname(path) or path))


def _section(title: str) -> QLabel:
    label = QLabel(title)
    font = QFont(label.font())
    font.setWeight(QFont.Weight.DemiBold)
    label.setFont(font)
    label.setContentsMargins(0, 10, 0, 2)
    return label


class DetailPane(QWidget):
    """Shows one item. `retryRequested(item_id)` asks the window to retry its failed stages."""

    retryRequested = Signal(int)
    closeRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library: Library | None = None
        self.item_id: int | None = None
        self.detail: ItemDetail | None = None
        self.open_folder: Callable[[str], object] = open_containing_folder
        self._image: QImage | None = None
        self._preview_path: str | None = None
        self.setMinimumWidth(280)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        header = QHBoxLayout()
        header.setContentsMargins(14, 10, 8, 6)
        self.title = QLabel()
        title_font = QFont(self.title.font())
        title_font.setPointSizeF(title_font.pointSizeF() * 1.2)
        title_font.setWeight(QFont.Weight.DemiBold)
        self.title.setFont(title_font)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Close the detail pane (Esc)")
        close.clicked.connect(self.closeRequested)
        header.addWidget(self.title, 1)
        header.addWidget(close)
        outer.addLayout(header)

        self.scroller = QScrollArea()
        self.scroller.setWidgetResizable(True)
        self.scroller.setFrameShape(QFrame.Shape.NoFrame)
        self.scroller.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        outer.addWidget(self.scroller, 1)
        body = QWidget()
        self.body = QVBoxLayout(body)
        self.body.setContentsMargins(14, 0, 14, 14)
        self.body.setSpacing(4)
        self.preview = QLabel()
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumHeight(200)
        self.preview.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.body.addWidget(self.preview)
        self.content = QWidget()
        self.body.addWidget(self.content)
        self.body.addStretch(1)
        self.scroller.setWidget(body)

    # -- content -----------------------------------------------------------------

    def show_item(self, library: Library, item_id: int) -> None:
        self.library = library
        self.item_id = item_id
        self.reload()

    def clear(self) -> None:
        self.library = None
        self.item_id = None
        self.detail = None
        self.title.setText("")
        self._set_image(None, None)
        self._rebuild(None)

    def refresh(self, changed_ids: Sequence[int]) -> None:
        if self.item_id is not None and self.item_id in changed_ids and self.isVisible():
            self.reload()

    def reload(self) -> None:
        if self.library is None or self.item_id is None:
            return
        self.detail = item_detail(self.library.catalog.conn, self.item_id)
        detail = self.detail
        self.title.setText(detail.name if detail else "(removed)")
        self.title.setToolTip(detail.name if detail else "")
        self._rebuild(detail)
        preview = detail.preview or detail.thumb if detail else None
        if preview != self._preview_path:
            self._set_image(None, preview)
            if preview is not None:
                self._load_preview(self.library.root / preview, preview)

    def _load_preview(self, path: Path, key: str) -> None:
        def read() -> QImage:
            reader = QImageReader(str(path))
            reader.setAutoTransform(True)
            return reader.read()

        def done(image: QImage) -> None:
            if key == self._preview_path and not image.isNull():
                self._set_image(image, key)

        run_in_thread(read, done)

    def _set_image(self, image: QImage | None, key: str | None) -> None:
        self._image = image
        self._preview_path = key
        self._fit_preview()

    def _fit_preview(self) -> None:
        width = max(100, self.scroller.viewport().width() - 28)
        if self._image is None:
            self.preview.setPixmap(QPixmap())
            failed = self.detail is not None and any(
                s.state in RETRYABLE_STATES for s in self.detail.stages
            )
            text = "No preview available" if failed else "No preview yet"
            self.preview.setText(text if self.item_id is not None else "")
            self.preview.setFixedHeight(160)
            return
        scaled = self._image.scaled(
            width,
            int(width * 1.2),
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        self.preview.setPixmap(QPixmap.fromImage(scaled))
        self.preview.setFixedHeight(scaled.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_preview()

    def _rebuild(self, detail: ItemDetail | None) -> None:
        old = self.content
        self.content = QWidget()
        self.body.replaceWidget(old, self.content)
        old.hide()
        old.deleteLater()
        if detail is None:
            return
        layout = QVBoxLayout(self.content)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        muted = self.palette().color(QPalette.ColorRole.PlaceholderText).name()
        error_colour = "#f87171" if is_dark(self.palette()) else "#b91c1c"

        layout.addWidget(_section("Details"))
        form = QFormLayout()
        form.setHorizontalSpacing(14)
        form.setVerticalSpacing(4)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for label, value in detail.facts:
            key = QLabel(label)
            key.setStyleSheet(f"color: {muted};")
            val = QLabel(value)
            val.setWordWrap(True)
            val.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(key, val)
        layout.addLayout(form)

        layout.addWidget(_section("Locations"))
        for path, missing in [(p, False) for p in detail.paths] + [
            (p, True) for p in detail.missing_paths
        ]:
            row = QHBoxLayout()
            row.setSpacing(6)
            text = QLabel(path + ("  (missing)" if missing else ""))
            text.setWordWrap(True)
            text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            if missing:
                text.setStyleSheet(f"color: {muted};")
            row.addWidget(text, 1)
            button = QPushButton("Open folder")
            button.setToolTip("Open the folder that contains this file")
            button.setEnabled(not missing)
            button.clicked.connect(lambda _=False, p=path: self.open_folder(p))
            row.addWidget(button, 0, Qt.AlignmentFlag.AlignTop)
            layout.addLayout(row)

        layout.addWidget(_section("Processing"))
        stages = QFormLayout()
        stages.setHorizontalSpacing(14)
        stages.setVerticalSpacing(4)
        retryable = False
        for stage in detail.stages:
            stage_label = QLabel(stage.name.replace("_", " ").capitalize())
            stage_label.setStyleSheet(f"color: {muted};")
            badge_key = {"running": "working", "dead": "failed"}.get(stage.state, stage.state)
            colour = BADGE_COLOURS.get(badge_key, BADGE_COLOURS["queued"])
            state_text = STATE_LABELS.get(stage.state) or stage.state.capitalize()
            if stage.attempts > 1:
                state_text += f" · {stage.attempts} attempts"
            state_label = QLabel(
                f'<span style="color:{colour}; font-weight:600">●</span> {state_text}'
            )
            stages.addRow(stage_label, state_label)
            if stage.error:
                err = QLabel(stage.error)
                err.setWordWrap(True)
                err.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
                if stage.state in FAILED_STATES:
                    err.setStyleSheet(f"color: {error_colour};")
                elif stage.state == "skipped":
                    err.setStyleSheet(f"color: {muted};")
                stages.addRow("", err)
            retryable = retryable or stage.state in RETRYABLE_STATES
        if not detail.stages:
            stages.addRow(QLabel("Nothing to process for this file."))
        layout.addLayout(stages)
        if retryable:
            retry = QPushButton("Retry failed steps")
            retry.clicked.connect(lambda: self.retryRequested.emit(detail.id))
            layout.addWidget(retry, 0, Qt.AlignmentFlag.AlignLeft)
        self.content.show()
