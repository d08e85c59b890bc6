"""The detail pane's page text: each page's text (the search's words highlighted), and
the page's word boxes drawn over its picture.

- `PagePreview`: the detail pane's preview (`PreviewView`) plus word boxes — the
  matched words filled, the others a faint outline; "Show objects" (O) hides them too;
- `PageTextView`: the "Text" section, page by page: page number, where the text came
  from (text layer or OCR), the turn it needed and its confidence; "Show page" puts a
  page's picture in the preview (`pageRequested(page)`);
- `read_page_image`: a PDF page's picture, made off the GUI thread.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from desktop.qt import (
    QColor,
    QHBoxLayout,
    QImage,
    QLabel,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QRectF,
    QSizePolicy,
    Qt,
    QToolButton,
    QVBoxLayout,
    QWidget,
    Signal,
)
from desktop.views.grid import is_dark
from desktop.views.preview import PreviewView
from engine.pipeline.thumbnail import PREVIEW_PX
from engine.text_view import PageView, highlight_spans, render_pdf_page

PAGE_CHARS = 20_000  # more text than this on one page: the rest is counted, not shown
MARK_LIGHT = "#fde047"  # highlighter yellow; on a dark palette a deeper amber
MARK_DARK = "#a16207"
WORD_FILL = QColor(250, 204, 21, 110)
WORD_EDGE = QColor(202, 138, 4, 230)
WORD_FAINT = QColor(37, 99, 235, 60)

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class ShownWord:
    """A word box as drawn: `rect` in the widget's coordinates."""

    rect: QRectF
    matched: bool


class PagePreview(PreviewView):
    """The preview with the shown page's word boxes over it (in `frame`'s pixels)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._words: list[tuple[Box, bool]] = []
        self._word_frame: tuple[int, int] | None = None

    def set_words(
        self, boxes: Sequence[Box], matched: Sequence[bool], frame: tuple[int, int] | None
    ) -> None:
        self._words = list(zip(boxes, matched, strict=True))
        self._word_frame = frame
        self.update()

    def has_words(self) -> bool:
        return bool(self._words)

    def shown_words(self) -> list[ShownWord]:
        """The word boxes as painted now: none while boxes are hidden or without a picture."""
        area = self.image_rect()
        frame = self._word_frame
        if not self.shows_boxes() or area.isEmpty() or not frame or min(frame) <= 0:
            return []
        sx, sy = area.width() / frame[0], area.height() / frame[1]
        out: list[ShownWord] = []
        for (x0, y0, x1, y1), matched in self._words:
            rect = QRectF(
                area.x() + min(x0, x1) * sx,
                area.y() + min(y0, y1) * sy,
                abs(x1 - x0) * sx,
                abs(y1 - y0) * sy,
            ).intersected(area)
            out.append(ShownWord(rect, matched))
        return out

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        words = self.shown_words()
        if not words:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(WORD_FAINT, 1.0))
        for word in words:
            if not word.matched:
                painter.drawRect(word.rect)
        painter.setPen(QPen(WORD_EDGE, 1.5))
        painter.setBrush(WORD_FILL)
        for word in words:
            if word.matched:
                painter.drawRect(word.rect.adjusted(-1.5, -1.5, 1.5, 1.5))
        painter.end()


def page_html(text: str, spans: Sequence[tuple[int, int]], mark: str = MARK_LIGHT) -> str:
    """The page text as rich text, `spans` highlighted, line breaks kept."""
    shown = text[:PAGE_CHARS]
    parts: list[str] = []
    at = 0
    for start, end in spans:
        if start >= len(shown):
            break
        parts.append(html.escape(shown[at:start]))
        parts.append(
            f'<span style="background-color:{mark}; font-weight:600">'
            f"{html.escape(shown[start:end])}</span>"
        )
        at = end
    parts.append(html.escape(shown[at:]))
    body = "".join(parts).replace("\n", "<br>")
    if len(text) > PAGE_CHARS:
        body += f"<br><i>… {len(text) - PAGE_CHARS:,} more characters</i>"
    return body


class PageTextView(QWidget):
    """Every page's text, in order; `current` is the page the preview shows."""

    pageRequested = Signal(int)

    def __init__(
        self,
        pages: Sequence[PageView],
        terms: Sequence[str],
        *,
        current: int = 0,
        showable: Sequence[int] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("pageTextView")
        self.pages = list(pages)
        self.terms = list(terms)
        self.current = current
        self.bodies: dict[int, QLabel] = {}
        self.captions: dict[int, QLabel] = {}
        self.show_buttons: dict[int, QToolButton] = {}
        self.matches: dict[int, int] = {}  # page -> highlighted spans
        muted = self.palette().color(QPalette.ColorRole.PlaceholderText).name()
        mark = MARK_DARK if is_dark(self.palette()) else MARK_LIGHT
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        for page in self.pages:
            spans = highlight_spans(page.text, self.terms)
            self.matches[page.page] = len(spans)
            header = QHBoxLayout()
            header.setSpacing(6)
            caption = QLabel(self._caption(page))
            caption.setStyleSheet(f"color: {muted};")
            caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            header.addWidget(caption, 1)
            self.captions[page.page] = caption
            if page.page in showable:
                button = QToolButton()
                button.setText("Show page")
                button.setAutoRaise(True)
                button.setToolTip(f"Show page {page.number} and its words above")
                button.clicked.connect(lambda _c=False, p=page.page: self.pageRequested.emit(p))
                header.addWidget(button)
                self.show_buttons[page.page] = button
            layout.addLayout(header)
            body = QLabel()
            body.setObjectName("pageText")
            body.setTextFormat(Qt.TextFormat.RichText)
            body.setWordWrap(True)
            body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            body.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            body.setContentsMargins(0, 0, 0, 6)
            if page.text.strip():
                body.setText(page_html(page.text, spans, mark))
            else:
                body.setText(f'<i style="color:{muted}">No text on this page.</i>')
            layout.addWidget(body)
            self.bodies[page.page] = body
        self.set_current(current)  # once every widget is in place (a parentless one shown
        # would be a window of its own)

    def _caption(self, page: PageView) -> str:
        text = page.caption()
        found = self.matches.get(page.page, 0)
        if self.terms and found:
            text += f" · {found} match{'es' if found != 1 else ''}"
        if page.page == self.current:
            text += " · shown above"
        return text

    def set_current(self, page: int) -> None:
        self.current = page
        for p in self.pages:
            self.captions[p.page].setText(self._caption(p))
            button = self.show_buttons.get(p.page)
            if button is not None:
                button.setVisible(p.page != page)

    def html_of(self, page: int) -> str:
        """The rich text shown for a page (for tests)."""
        return self.bodies[page].text()


def read_page_image(path: str, page: int, target_px: int = PREVIEW_PX) -> QImage:
    """Page `page` of the PDF at `path` as an image (in a worker thread). Raises
    ValueError with a sentence when it cannot be drawn."""
    data, width, height = render_pdf_page(path, page, target_px)
    image = QImage(data, width, height, width * 3, QImage.Format.Format_RGB888)
    return image.copy()  # owns its pixels: `data` goes away with this frame
