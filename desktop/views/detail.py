"""The detail pane: large preview (with the detected objects' boxes, or a page's word
boxes), why the item matched the search, tags and objects, the text of its pages,
its labels (yours or automatic, each removable), metadata, every path, each stage's
state and error."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from desktop.operations import labels as label_ops
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
from desktop.views.label_chips import LabelChips
from desktop.views.page_text import PagePreview, PageTextView, read_page_image
from desktop.views.waiting_banner import reason_html
from engine.browse import ItemDetail, item_detail
from engine.enrichment_view import Enrichment, item_enrichment
from engine.errors import is_offline_reason
from engine.library import Library
from engine.search.hybrid import Hit
from engine.search_view import why_html
from engine.text_view import (
    PageView,
    can_render_pages,
    highlight_spans,
    item_pages,
    marked_words,
    source_path,
    stored_frame_boxes,
)

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
PAGE_LIMIT = 100  # pages of text shown in the detail pane
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
    setting and its menu action in step, and calls `set_show_objects`);
    `labelRemoved(item_id, name)` asks to take a label off the item."""

    retryRequested = Signal(int)
    labelRemoved = Signal(int, str)
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
        self.labels_view: LabelChips | None = None
        self.labels: list[dict[str, Any]] = []
        self.open_folder: Callable[[str], object] = open_containing_folder
        self._image: QImage | None = None
        self._preview_path: str | None = None
        self.pages: list[PageView] = []
        self.page = 0  # the page whose picture and word boxes the preview shows
        self._pages_of: int | None = None  # the item `page` was chosen for
        self.search_terms: list[str] = []  # the current search's words, to highlight
        self.search_hits: dict[int, Hit] = {}
        self.text_view: PageTextView | None = None
        self.matched: QLabel | None = None
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
        self.preview = PagePreview()
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

    def set_search(self, terms: Sequence[str], hits: Mapping[int, Hit]) -> None:
        """The search the grid shows (none: empty): the shown item says why it matched,
        its page text is highlighted and it opens at the page the hit is on."""
        self.search_terms, self.search_hits = list(terms), dict(hits)
        self._pages_of = None  # choose the page again
        if self.isVisible():
            self.reload()

    def clear(self) -> None:
        self.library = None
        self.item_id = None
        self.detail = None
        self.enrichment = None
        self.labels = []
        self.pages, self._pages_of = [], None
        self.preview.set_detections([], None)
        self.preview.set_words([], [], None)
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
        self.labels = label_ops.item_labels(self.library, self.item_id) if detail else []
        self.title.setText(detail.name if detail else "(removed)")
        self.title.setToolTip(detail.name if detail else "")
        found = self.enrichment
        self.preview.set_detections(
            found.detections if found else [], found.frame if found else None
        )
        self.pages = item_pages(conn, self.item_id, PAGE_LIMIT) if detail else []
        if self._pages_of != self.item_id:
            self._pages_of = self.item_id
            hit = self.search_hits.get(self.item_id)
            known = [p.page for p in self.pages]
            self.page = hit.page if hit and hit.page in known else known[0] if known else 0
        self._show_words()
        self._rebuild(detail)
        self._show_page_image(detail)

    def _show_page_image(self, detail: ItemDetail | None) -> None:
        """The preview shows page `page`: the stored preview for the first page, the
        PDF page drawn off the GUI thread for the others."""
        preview = detail.preview or detail.thumb if detail else None
        library = self.library
        if detail is not None and library is not None and self.page > 0:
            path = source_path(library.catalog.conn, detail.id)
            if path and can_render_pages(detail.format):
                self._load_page(path, self.page)
                return
        if preview != self._preview_path:
            self._set_image(None, preview)
            if preview is not None and self.library is not None:
                self._load_preview(self.library.root / preview, preview)

    def _show_words(self) -> None:
        """The shown page's word boxes over the preview, the search's words filled."""
        page = next((p for p in self.pages if p.page == self.page), None)
        if page is None or not page.words or not page.width or not page.height:
            self.preview.set_words([], [], None)
        else:
            frame, boxes = stored_frame_boxes(page)
            spans = highlight_spans(page.text, self.search_terms)
            self.preview.set_words(boxes, marked_words(page, spans), frame)
        objects = bool(self.enrichment and self.enrichment.detections)
        words = self.preview.has_words()
        self.show_objects.setText(
            "Show boxes" if objects and words else "Show word boxes" if words else "Show objects"
        )
        self.show_objects.setVisible(objects or words)

    def show_page(self, page: int) -> None:
        """Show page `page` (0-based) of the item in the preview, with its word boxes."""
        if page == self.page or self.detail is None:
            return
        self.page = page
        self._show_words()
        if self.text_view is not None:
            self.text_view.set_current(page)
        self._show_page_image(self.detail)

    def _load_preview(self, path: Path, key: str) -> None:
        def read() -> QImage:
            reader = QImageReader(str(path))
            reader.setAutoTransform(True)
            return reader.read()

        def done(image: QImage) -> None:
            if key == self._preview_path and not image.isNull():
                self._set_image(image, key)

        run_in_thread(read, done)

    def _load_page(self, path: str, page: int) -> None:
        key = f"{path}#page={page + 1}"
        if key == self._preview_path:
            return
        self._set_image(None, key)

        def done(image: QImage) -> None:
            if key == self._preview_path:
                self._set_image(image, key)

        def failed(exc: BaseException) -> None:
            if key == self._preview_path:
                self.preview.set_placeholder(f"This page cannot be drawn: {exc}")

        run_in_thread(lambda: read_page_image(path, page), done, failed)

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
        self.labels_view = None
        self.text_view = self.matched = None
        hit = self.search_hits.get(detail.id)
        if hit is not None and hit.why:
            self.matched = QLabel(f"Matched: {why_html(hit.why)}")
            self.matched.setObjectName("matchedReason")
            self.matched.setTextFormat(Qt.TextFormat.RichText)
            self.matched.setWordWrap(True)
            self.matched.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.matched.setContentsMargins(0, 8, 0, 0)
            layout.addWidget(self.matched)
        if self.labels:
            layout.addWidget(_section("Labels"))
            self.labels_view = LabelChips(self.labels)
            item_id = detail.id
            self.labels_view.removeRequested.connect(
                lambda name: self.labelRemoved.emit(item_id, name)
            )
            layout.addWidget(self.labels_view)
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
        if self.pages:
            layout.addWidget(_section("Text"))
            pdf = can_render_pages(detail.format)
            showable = [p.page for p in self.pages if p.page == 0 or pdf]
            self.text_view = PageTextView(
                self.pages, self.search_terms, current=self.page, showable=showable
            )
            self.text_view.pageRequested.connect(self.show_page)
            layout.addWidget(self.text_view)

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
            if stage.state == "waiting" and is_offline_reason(stage.error):
                state_text = "Waiting for its folder"  # a drive unplugged, not a model
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
