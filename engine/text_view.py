"""Read-only views of an item's page text, shaped for the desktop app's detail pane.

- `item_pages`: the pages the `ocr` stage stored (text, word boxes, size, rotation);
- `search_terms` / `highlight_spans`: where the current search's words are in a page's
  text (case and diacritics folded, as the full-text index folds them);
- `marked_words` / `stored_frame_boxes`: which word boxes to pick out, and the boxes
  turned back into the frame of the stored image (the preview is not turned upright
  by the OCR rotation, only by EXIF);
- `render_pdf_page`: page N of a PDF as RGB pixels (off the GUI thread).

Nothing here writes, and nothing imports Qt.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.search.query import STOPWORDS, Query, fts_terms

# What FTS5's unicode61 tokenizer keeps as a word: letters and digits.
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
SOURCE_NAMES = {"text-layer": "text layer", "ocr": "OCR"}
PREFIX = "*"  # a term ending in it matches words that start with it (the word being typed)

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class PageWord:
    """A word's box in pixels of the upright page (x1/y1 exclusive), its confidence
    (0-100) and where it is in the page text (`text[start:end]`)."""

    box: Box
    conf: float
    start: int
    end: int


@dataclass(frozen=True)
class PageView:
    page: int  # 0-based
    source: str  # text-layer | ocr
    rotation: int  # clockwise turn applied to the stored image to read it upright
    confidence: float | None  # mean word confidence 0-100; None for a text layer
    lang: str
    width: int  # of the upright page image the boxes are measured in
    height: int
    text: str
    words: tuple[PageWord, ...] = ()

    @property
    def number(self) -> int:
        """1-based, as people count pages."""
        return self.page + 1

    def caption(self) -> str:
        """ "Page 2 · OCR · turned 90° · 87% confidence"."""
        parts = [f"Page {self.number}", SOURCE_NAMES.get(self.source, self.source)]
        if self.rotation % 360:
            parts.append(f"turned {self.rotation % 360}°")
        if self.confidence is not None:
            parts.append(f"{self.confidence:.0f}% confidence")
        return " · ".join(parts)


def item_pages(conn: sqlite3.Connection, item_id: int, limit: int | None = None) -> list[PageView]:
    """The item's pages with text, in order (none when the ocr stage stored nothing)."""
    sql = """SELECT page, source, rotation, confidence, lang, width, height, text, words
             FROM ocr_pages WHERE item_id = ? ORDER BY page"""
    params: tuple[int, ...] = (item_id,)
    if limit is not None:
        sql += " LIMIT ?"
        params = (item_id, limit)
    return [_page(r) for r in conn.execute(sql, params)]


def page_count(conn: sqlite3.Connection, item_id: int) -> int:
    row = conn.execute("SELECT count(*) FROM ocr_pages WHERE item_id = ?", (item_id,)).fetchone()
    return int(row[0]) if row else 0


def _page(r: Sequence[Any]) -> PageView:
    words: list[PageWord] = []
    try:
        raw = json.loads(str(r[8] or "[]"))
    except ValueError:
        raw = []
    for w in raw if isinstance(raw, list) else []:
        try:
            x0, y0, x1, y1, conf, start, end = w
            words.append(
                PageWord((int(x0), int(y0), int(x1), int(y1)), float(conf), int(start), int(end))
            )
        except (TypeError, ValueError):
            continue  # a malformed word is left out, not the page
    return PageView(
        page=int(r[0]),
        source=str(r[1]),
        rotation=int(r[2] or 0),
        confidence=float(r[3]) if r[3] is not None else None,
        lang=str(r[4] or ""),
        width=int(r[5] or 0),
        height=int(r[6] or 0),
        text=str(r[7] or ""),
        words=tuple(words),
    )


# -- highlighting ----------------------------------------------------------------------------


def fold(text: str) -> str:
    """Lower-cased, diacritics removed ("Müller" -> "muller"), as the index compares."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def search_terms(query: Query) -> list[str]:
    """The query's words and phrases to highlight, folded; the word being typed (a
    prefix in the search) ends in `PREFIX`. Stopwords alone are not highlighted."""
    out: list[str] = []
    tokens = [t for word in query.words for t in fts_terms(word)]
    for i, token in enumerate(tokens):
        if token in STOPWORDS:
            continue
        last = i == len(tokens) - 1 and query.typing and not query.phrases
        out.append(fold(token) + (PREFIX if last else ""))
    for phrase in query.phrases:
        words = [fold(t) for t in fts_terms(phrase)]
        if words:
            out.append(" ".join(words))
    return list(dict.fromkeys(t for t in out if t.strip(PREFIX)))


def highlight_spans(text: str, terms: Sequence[str]) -> list[tuple[int, int]]:
    """(start, end) character spans of `text` where a term matches whole words, sorted
    and merged. A term of several words matches them in a row; one ending in
    `PREFIX` matches words that start with it."""
    if not terms or not text:
        return []
    words = [(m.start(), m.end(), fold(m.group(0))) for m in _WORD.finditer(text)]
    spans: list[tuple[int, int]] = []
    for term in terms:
        prefix = term.endswith(PREFIX)
        parts = [fold(p) for p in _WORD.findall(term.rstrip(PREFIX))]
        if not parts:
            continue
        n = len(parts)
        for i in range(len(words) - n + 1):
            ok = True
            for k, part in enumerate(parts):
                word = words[i + k][2]
                last = k == n - 1
                if not (word == part or (prefix and last and word.startswith(part))):
                    ok = False
                    break
            if ok:
                spans.append((words[i][0], words[i + n - 1][1]))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def marked_words(page: PageView, spans: Sequence[tuple[int, int]]) -> list[bool]:
    """For each word of the page: whether its text overlaps a highlighted span."""
    out: list[bool] = []
    for word in page.words:
        out.append(any(word.start < end and start < word.end for start, end in spans))
    return out


def stored_frame_boxes(page: PageView) -> tuple[tuple[int, int], list[Box]]:
    """The word boxes in the frame of the image as stored (before the OCR's clockwise
    `rotation` turned it upright), and that frame's (width, height). The preview and a
    rendered PDF page are in that frame, so the boxes are drawn over them as they are."""
    w, h = page.width, page.height
    r = page.rotation % 360
    out: list[Box] = []
    for word in page.words:
        x0, y0, x1, y1 = word.box
        if r == 90:
            out.append((y0, w - x1, y1, w - x0))
        elif r == 180:
            out.append((w - x1, h - y1, w - x0, h - y0))
        elif r == 270:
            out.append((h - y1, x0, h - y0, x1))
        else:
            out.append((x0, y0, x1, y1))
    frame = (h, w) if r in (90, 270) else (w, h)
    return frame, out


# -- page images -----------------------------------------------------------------------------


def source_path(conn: sqlite3.Connection, item_id: int) -> str | None:
    """A path of the item that is there (the first known), or None."""
    row = conn.execute(
        "SELECT raw FROM paths WHERE item_id = ? AND missing = 0 ORDER BY id LIMIT 1", (item_id,)
    ).fetchone()
    if row is None:
        return None
    raw = row[0]
    return os.fsdecode(bytes(raw)) if isinstance(raw, bytes | memoryview) else str(raw)


def can_render_pages(item_format: str) -> bool:
    """Whether pages after the first can be drawn (the preview shows the first)."""
    return item_format == "pdf"


def render_pdf_page(path: str, page: int, target_px: int) -> tuple[bytes, int, int]:
    """Page `page` (0-based) of the PDF at `path`, `target_px` on its long side, as
    (RGB bytes, width, height): the page's /Rotate applied, as the preview and the
    text layer's boxes have it. Raises ValueError with a sentence when it cannot."""
    import pypdfium2 as pdfium

    from engine.pipeline.media import PDFIUM_LOCK

    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(path)
        except (pdfium.PdfiumError, OSError) as exc:
            raise ValueError(f"The PDF cannot be opened ({exc}).") from exc
        try:
            if not 0 <= page < len(pdf):
                raise ValueError(f"The PDF has no page {page + 1}.")
            doc_page = pdf[page]
            try:
                width, height = doc_page.get_size()
                scale = target_px / max(width, height, 1.0)
                image = doc_page.render(scale=scale).to_pil()
            finally:
                doc_page.close()
        except pdfium.PdfiumError as exc:
            raise ValueError(f"Page {page + 1} cannot be drawn ({exc}).") from exc
        finally:
            pdf.close()
    rgb = image.convert("RGB")
    return rgb.tobytes(), rgb.width, rgb.height
