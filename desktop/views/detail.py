"""The detail pane: large preview (with the detected objects' boxes), tags and objects,
metadata, every path, each stage's state and error."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from desktop.qt import (
    QCheckBox,
    QDesktopServices,
    QFont,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QImage,
    QImageReader,
    QLabel,
    QPalette,
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
from desktop.views.enrichment import ObjectsView, TagsView
from desktop.views.grid import BADGE_COLOURS, is_dark
from desktop.views.preview import PreviewView
from desktop.views.waiting_banner import reason_html
from engine.browse import ItemDetail, item_detail
from engine.enrichment_view import Enrichment, item_enrichment
from engine.library import Library

STATE_LABELS = {
    "queued": "Queued",
    "running": "Working",
    "done": "Done",
    "failed": "Failed",
    "dead": "Gave up",
    "cancelled": "Cancelled",
    "skipped": "Skipped",
    "waiting": "Waiting for model",
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
    """Shows one item. `retryRequested(item_id)` asks the window to retry its failed stages;
    `showObjectsToggled(on)` says the user flipped "Show objects" (the window keeps the
    setting and its menu action in step, and calls `set_show_objects`)."""

    retryRequested = Signal(int)
    closeRequested = Signal()
    showObjectsToggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library: Library | None = None
        self.item_id: int | None = None
        self.opened_at = 0  # when shown, in `desktop.actions`'s order of things opened
        self.detail: ItemDetail | None = None
        self.enrichment: Enrichment | None = None
        self.tags_view: TagsView | None = None
        self.objects_view: ObjectsView | None = None
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
        self.preview = PreviewView()
        self.body.addWidget(self.preview)
        self.show_objects = QCheckBox("Show objects")
        self.show_objects.setToolTip("Draw the detected objects over the picture (O)")
        self.show_objects.setChecked(True)
        self.show_objects.toggled.connect(self._objects_toggled)
        self.show_objects.hide()
        self.body.addWidget(self.show_objects)
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
        self.enrichment = None
        self.preview.set_detections([], None)
        self.show_objects.hide()
        self.title.setText("")
        self._set_image(None, None)
        self._rebuild(None)

    def refresh(self, changed_ids: Sequence[int]) -> None:
        if self.item_id is not None and self.item_id in changed_ids and self.isVisible():
            self.reload()

    def reload(self) -> None:
        if self.library is None or self.item_id is None:
            return
        conn = self.library.catalog.conn
        self.detail = detail = item_detail(conn, self.item_id)
        embed_model = self.library.settings.models.embed or None
        self.enrichment = item_enrichment(conn, self.item_id, embed_model) if detail else None
        self.title.setText(detail.name if detail else "(removed)")
        self.title.setToolTip(detail.name if detail else "")
        found = self.enrichment
        self.preview.set_detections(
            found.detections if found else [], found.frame if found else None
        )
        self.show_objects.setVisible(bool(found and found.detections))
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
        self.preview.set_image(image)
        self._fit_preview()

    def _fit_preview(self) -> None:
        if self._image is None:
            failed = self.detail is not None and any(
                s.state in RETRYABLE_STATES for s in self.detail.stages
            )
            text = "No preview available" if failed else "No preview yet"
            self.preview.set_placeholder(text if self.item_id is not None else "")
        self.preview.fit(max(100, self.scroller.viewport().width() - 28))

    def set_show_objects(self, on: bool) -> None:
        """Draw the boxes over the preview, or not (the checkbox follows)."""
        self.show_objects.blockSignals(True)
        self.show_objects.setChecked(on)
        self.show_objects.blockSignals(False)
        self.preview.set_show_boxes(on)

    def _objects_toggled(self, on: bool) -> None:
        self.preview.set_show_boxes(on)
        self.showObjectsToggled.emit(on)

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

        self.tags_view = self.objects_view = None
        found = self.enrichment
        if found is not None and found.tags:
            layout.addWidget(_section("Tags"))
            self.tags_view = TagsView(found.tags)
            layout.addWidget(self.tags_view)
        if found is not None and found.detections:
            layout.addWidget(_section("Objects"))
            self.objects_view = ObjectsView(found.detections)
            self.objects_view.hovered.connect(self.preview.set_highlight)
            layout.addWidget(self.objects_view)

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
                elif stage.state == "waiting":  # the reason says what to do: its command as code
                    err.setTextFormat(Qt.TextFormat.RichText)
                    err.setText(reason_html(stage.error))
                    err.setToolTip("Select the text to copy the command")
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
