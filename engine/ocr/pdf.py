"""PDF pages for OCR: a born-digital page's own text, or the page rendered for tesseract.

A page whose text layer holds at least PDF_TEXT_MIN_CHARS letters and digits is
taken as it is (Paperless-ngx uses 50 characters too); anything less (a scan, a
scanner's stamp, a page number) is rendered at 300 dpi and OCRed. Word boxes of a
text layer are in the pixels of `render_page` at the same dpi, y axis down, with the
page's own /Rotate applied, like an OCR reading of that render.

PDFium is not thread-safe: every call into it holds `PDFIUM_LOCK` (shared with the
thumbnail and metadata stages).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from engine.errors import PermanentError
from engine.ocr.orientation import read_upright
from engine.ocr.types import PageText, PageTimeout, Word
from engine.pipeline.media import open_pdf

if TYPE_CHECKING:
    from PIL import Image

    from engine.jobs.control import JobControl

__all__ = [
    "MAX_RENDER_PIXELS",
    "PDF_TEXT_MIN_CHARS",
    "RENDER_DPI",
    "page_text_layer",
    "pdf_pages",
    "read_pdf_page",
    "render_page",
    "rendered_dpi",
]

RENDER_DPI = 300
PDF_TEXT_MIN_CHARS = 50
# A render larger than this is made at a lower dpi (a 50-MP greyscale page is 50 MB;
# an A4 page at 300 dpi is 8.7 MP, an A0 poster at 300 dpi 140 MP).
MAX_RENDER_PIXELS = 50_000_000
# A text layer with more than this share of unmapped glyphs (private-use code
# points, U+FFFD) is font garbage, not text: the page is OCRed instead.
MAX_GARBAGE_SHARE = 0.3


@contextmanager
def _open(path: str) -> Iterator[Any]:
    """The PDF document, open, with PDFIUM_LOCK held (`media.open_pdf`: plain reasons)."""
    with open_pdf(path) as pdf:
        yield pdf


@contextmanager
def _page(path: str, index: int) -> Iterator[Any]:
    with _open(path) as pdf:
        count = len(pdf)
        if not 0 <= index < count:
            raise PermanentError(
                f"The PDF has {count} page{'s' if count != 1 else ''}; "
                f"there is no page {index + 1}."
            )
        page = pdf[index]
        try:
            yield page
        finally:
            page.close()


def pdf_pages(path: str) -> int:
    """Number of pages (PermanentError for a password-protected or damaged PDF)."""
    with _open(path) as pdf:
        return len(pdf)


def rendered_dpi(img: Image.Image) -> float | None:
    """The dpi a `render_page` image was made at (lower than asked for huge pages)."""
    dpi = img.info.get("dpi")
    if isinstance(dpi, tuple) and dpi and isinstance(dpi[0], int | float):
        return float(dpi[0])
    return None


def render_page(
    path: str, index: int, dpi: float = RENDER_DPI, *, max_pixels: int = MAX_RENDER_PIXELS
) -> Image.Image:
    """Page `index` (0-based) as an 8-bit greyscale image at `dpi`, the page's /Rotate
    applied. A page that would exceed `max_pixels` is rendered at the dpi that fits;
    the dpi used is in `img.info["dpi"]` (`rendered_dpi`)."""
    with _page(path, index) as page:
        width_pt, height_pt = page.get_size()
        scale = dpi / 72
        area = max(width_pt, 1.0) * max(height_pt, 1.0)
        if area * scale * scale > max_pixels:
            scale = math.sqrt(max_pixels / area)
            # pypdfium2 rounds the bitmap size up: shrink until that fits too.
            while math.ceil(width_pt * scale) * math.ceil(height_pt * scale) > max_pixels:
                scale *= 0.999
        try:
            image: Image.Image = page.render(scale=scale, grayscale=True).to_pil()
        except Exception as exc:  # pypdfium2 raises PdfiumError and plain errors alike
            raise PermanentError(
                f"Page {index + 1} of the PDF is damaged and cannot be rendered."
            ) from exc
    if image.mode != "L":
        image = image.convert("L")
    effective = round(scale * 72, 2)
    image.info["dpi"] = (effective, effective)
    return image


def page_text_layer(path: str, index: int, *, dpi: float = RENDER_DPI) -> PageText | None:
    """The text of page `index`'s own text layer, words boxed in pixels at `dpi`, or
    None when it has fewer than PDF_TEXT_MIN_CHARS letters and digits (or is font
    garbage): that page must be OCRed. Never runs tesseract."""
    import pypdfium2.raw as pdfium_c

    with _page(path, index) as page:
        textpage = page.get_textpage()
        try:
            count = textpage.count_chars()
            chars = [chr(pdfium_c.FPDFText_GetUnicode(textpage.raw, i)) for i in range(count)]
            boxes = [textpage.get_charbox(i) for i in range(count)]
        finally:
            textpage.close()
        left, bottom, right, top = page.get_cropbox()
        rotation = page.get_rotation() % 360
        shown_width, shown_height = page.get_size()  # /Rotate applied
    to_px = _pixel_mapper(left, bottom, right, top, rotation, dpi / 72)
    text, words = _words(chars, boxes, to_px)
    meaningful = sum(ch.isalnum() for ch in text)
    garbage = sum(ch == "\ufffd" or unicodedata.category(ch) == "Co" for ch in text)
    if meaningful < PDF_TEXT_MIN_CHARS or garbage > MAX_GARBAGE_SHARE * max(1, len(text)):
        return None
    # The size `render_page` gives (pypdfium2 rounds up).
    scale = dpi / 72
    width, height = math.ceil(shown_width * scale), math.ceil(shown_height * scale)
    return PageText(
        text=text,
        confidence=None,
        words=words,
        width=width,
        height=height,
        rotation=0,
        source="text-layer",
        lang="",
    )


def read_pdf_page(
    path: str,
    index: int,
    lang: str,
    *,
    timeout_s: float,
    control: JobControl | None = None,
) -> PageText:
    """Page `index`'s text: its text layer when it has one, else the page rendered at
    RENDER_DPI and read upright. A page past its time limit raises PageTimeout naming
    the page ("OCR timed out after 120 s on page 3.")."""
    layer = page_text_layer(path, index)
    if layer is not None:
        return layer
    image = render_page(path, index)
    try:
        return read_upright(
            image, lang, timeout_s=timeout_s, control=control, dpi=rendered_dpi(image)
        )
    except PageTimeout as exc:
        raise exc.on_page(index + 1) from exc


Box = tuple[float, float, float, float]


def _pixel_mapper(
    left: float, bottom: float, right: float, top: float, rotation: int, scale: float
) -> Callable[[Box], tuple[int, int, int, int]]:
    """PDF user-space box (l, b, r, t) → pixel box (x0, y0, x1, y1) of the render."""
    width, height = (right - left) * scale, (top - bottom) * scale

    def to_px(box: Box) -> tuple[int, int, int, int]:
        l, b, r, t = box  # noqa: E741
        u0, u1 = (l - left) * scale, (r - left) * scale  # unrotated render, y down
        v0, v1 = (top - t) * scale, (top - b) * scale
        if rotation == 90:
            u0, v0, u1, v1 = height - v1, u0, height - v0, u1
        elif rotation == 180:
            u0, v0, u1, v1 = width - u1, height - v1, width - u0, height - v0
        elif rotation == 270:
            u0, v0, u1, v1 = v0, width - u1, v1, width - u0
        return math.floor(u0), math.floor(v0), math.ceil(u1), math.ceil(v1)

    return to_px


def _words(
    chars: list[str], boxes: list[Box], to_px: Callable[[Box], tuple[int, int, int, int]]
) -> tuple[str, list[Word]]:
    """The page text (PDFium's CR LF line ends as newlines) and its words: runs of
    non-space characters, each boxed by the union of its glyphs' boxes."""
    pieces: list[str] = []
    words: list[Word] = []
    length = 0
    start: int | None = None
    union: list[float] | None = None

    def close_word() -> None:
        nonlocal start, union
        if start is not None and union is not None:
            x0, y0, x1, y1 = to_px((union[0], union[1], union[2], union[3]))
            words.append(Word(x0, y0, x1, y1, 100.0, start, length))
        start, union = None, None

    for ch, box in zip(chars, boxes, strict=True):
        if ch == "\r":
            continue  # CR of CR LF; a lone CR is rare enough to drop
        if ch == "\x00" or ch == "\ufffe":
            continue
        if ch == "\x02":  # PDFium's mark for a hyphen that ends a line
            ch = "-"
        if ch.isspace():
            close_word()
            ch = "\n" if ch == "\n" else " "
        else:
            if start is None:
                start = length
            l, b, r, t = box  # noqa: E741
            if r > l or t > b:
                if union is None:
                    union = [l, b, r, t]
                else:
                    union = [min(union[0], l), min(union[1], b), max(union[2], r), max(union[3], t)]
        pieces.append(ch)
        length += len(ch)
    close_word()
    return "".join(pieces), words
