"""engine/text_view.py: an item's pages for the detail pane, the search's words found in
them (case and diacritics folded), word boxes back in the stored image's frame, and a
PDF page drawn."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from engine.library import Library
from engine.search.query import parse
from engine.store.db import next_seq
from engine.text_view import (
    PageView,
    PageWord,
    fold,
    highlight_spans,
    item_pages,
    marked_words,
    page_count,
    render_pdf_page,
    search_terms,
    source_path,
    stored_frame_boxes,
)

TEXT = "INVOICE 4711\nDear Mr Müller, your invoices are due.\nFinal notice: pay by June"


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[Library]:
    library = Library(tmp_path / "lib")
    with library.catalog.write() as conn:
        seq = next_seq(conn)
        conn.execute(
            """INSERT INTO items (id, hash, kind, format, size, added_at, seq)
               VALUES (1, ?, 'document', 'pdf', 1, ?, ?)""",
            ("a" * 64, time.time(), seq),
        )
        conn.executemany(
            """INSERT INTO paths (raw, display, item_id, size, mtime_ns, first_seen, last_seen,
                                  missing) VALUES (?, ?, 1, 1, 0, 0, 0, ?)""",
            [(b"/gone/old.pdf", "/gone/old.pdf", 1), (b"/docs/bill.pdf", "/docs/bill.pdf", 0)],
        )
        words = [[10, 20, 110, 40, 96.5, 0, 7], [120, 20, 170, 40, 91.0, 8, 12], ["bad"]]
        conn.execute(
            """INSERT INTO ocr_pages (item_id, page, source, rotation, confidence, lang, width,
                                      height, text, words)
               VALUES (1, 1, 'ocr', 90, 87.4, 'eng', 1000, 1400, ?, ?)""",
            (TEXT, json.dumps(words)),
        )
        conn.execute(
            """INSERT INTO ocr_pages (item_id, page, source, text, width, height)
               VALUES (1, 0, 'text-layer', 'Page one', 612, 792)"""
        )
    yield library
    library.close()


def test_item_pages_in_order_with_words_and_captions(lib: Library) -> None:
    conn = lib.catalog.conn
    first, second = item_pages(conn, 1)
    assert (first.page, first.source, first.confidence, first.words) == (0, "text-layer", None, ())
    assert first.caption() == "Page 1 · text layer"
    assert second.caption() == "Page 2 · OCR · turned 90° · 87% confidence"
    assert second.words == (
        PageWord((10, 20, 110, 40), 96.5, 0, 7),
        PageWord((120, 20, 170, 40), 91.0, 8, 12),
    )  # the malformed word is left out
    assert (second.width, second.height, second.lang) == (1000, 1400, "eng")
    assert [p.page for p in item_pages(conn, 1, limit=1)] == [0]
    assert item_pages(conn, 2) == [] and page_count(conn, 1) == 2
    assert source_path(conn, 1) == "/docs/bill.pdf"  # the missing copy is not offered
    assert source_path(conn, 2) is None


def test_search_terms_fold_and_mark_the_word_being_typed() -> None:
    assert search_terms(parse("Invoice Müller")) == ["invoice", "muller"]
    assert search_terms(parse("the invo", typing=True)) == ["invo*"]  # stopwords: no
    assert search_terms(parse('"Final  Notice" pay kind:document')) == ["pay", "final notice"]
    assert search_terms(parse("invoice ", typing=True)) == ["invoice"]  # the word is done
    assert search_terms(parse("kind:photo")) == []
    assert fold("Café ZÜRICH") == "cafe zurich"


def spans_text(text: str, terms: list[str]) -> list[str]:
    return [text[a:b] for a, b in highlight_spans(text, terms)]


def test_highlight_whole_words_case_and_diacritics_folded() -> None:
    assert spans_text(TEXT, ["invoice"]) == ["INVOICE"]  # not "invoices"
    assert spans_text(TEXT, ["invoice*"]) == ["INVOICE", "invoices"]
    assert spans_text(TEXT, ["muller"]) == ["Müller"]
    assert spans_text("Mueller Muller", ["müller"]) == ["Muller"]
    assert spans_text(TEXT, ["final notice"]) == ["Final notice"]
    assert spans_text(TEXT, ["notice final"]) == []
    assert spans_text(TEXT, ["pay by june", "by"]) == ["pay by June"]  # overlaps merge
    assert spans_text(TEXT, ["4711", "due"]) == ["4711", "due"]
    assert highlight_spans(TEXT, []) == [] and highlight_spans("", ["x"]) == []
    assert highlight_spans(TEXT, ["*", "  "]) == []


def test_marked_words_are_the_boxes_of_highlighted_text() -> None:
    page = PageView(
        0,
        "ocr",
        0,
        90.0,
        "eng",
        100,
        100,
        "total due now",
        (PageWord((0, 0, 1, 1), 90, 0, 5), PageWord((2, 0, 3, 1), 90, 6, 9)),
    )
    assert marked_words(page, highlight_spans(page.text, ["due"])) == [False, True]
    assert marked_words(page, []) == [False, False]


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_boxes_go_back_to_the_stored_frame(rotation: int) -> None:
    """A mark on the stored image, turned clockwise as the OCR turned it: its box in
    the upright image maps back onto where it is in the stored one."""
    stored = Image.new("L", (300, 200), 255)
    ImageDraw.Draw(stored).rectangle((40, 30, 99, 59), fill=0)  # x 40..100, y 30..60
    turns = {0: None, 90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180}
    turns[270] = Image.Transpose.ROTATE_90  # PIL's ROTATE_* turn counter-clockwise
    turn = turns[rotation]
    upright = stored.transpose(turn) if turn is not None else stored
    box = Image.eval(upright, lambda v: 255 - v).getbbox()
    assert box is not None
    page = PageView(
        0, "ocr", rotation, 90.0, "eng", upright.width, upright.height, "word",
        (PageWord(box, 90.0, 0, 4),),
    )  # fmt: skip
    frame, (back,) = stored_frame_boxes(page)
    assert frame == (300, 200)
    assert back == (40, 30, 100, 60)


def _pdf(path: Path, sizes: list[tuple[float, float]]) -> None:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    for width, height in sizes:
        pdf.new_page(width, height)
    pdf.save(str(path))
    pdf.close()


def test_render_a_later_pdf_page(tmp_path: Path) -> None:
    path = tmp_path / "two.pdf"
    _pdf(path, [(612, 792), (792, 612)])
    data, width, height = render_pdf_page(str(path), 1, 400)
    assert width == 400 and abs(height - 309) <= 1  # landscape: 612 / 792 of the width
    assert len(data) == width * height * 3
    assert set(data[:300]) == {255}  # a blank page is white
    with pytest.raises(ValueError, match="no page 3"):
        render_pdf_page(str(path), 2, 400)
    (tmp_path / "bad.pdf").write_bytes(b"not a pdf")
    with pytest.raises(ValueError, match="cannot be opened"):
        render_pdf_page(str(tmp_path / "bad.pdf"), 0, 400)
