"""Checks that the document generator in tests/doccorpus.py is deterministic and what it claims."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image

from tests.doccorpus import (
    DOC_KINDS,
    FONTS,
    make_documents,
    make_queries,
    make_text_free_photos,
    photograph,
    render_page,
    rotate_page,
    write_scanned_pdf,
    write_text_pdf,
)


def _digest(img: Image.Image) -> str:
    return hashlib.sha256(img.tobytes()).hexdigest()


def test_documents_are_deterministic_and_varied() -> None:
    docs = make_documents()
    assert docs == make_documents()
    assert docs != make_documents(seed=15)
    assert len(docs) >= 60
    kinds = Counter(d.kind for d in docs)
    assert set(kinds) == set(DOC_KINDS) and len(kinds) >= 6
    assert len({d.id for d in docs}) == len(docs)
    assert len({d.filename for d in docs}) == len(docs)
    assert all(8 <= len(d.lines) <= 40 for d in docs)
    assert len({d.text for d in docs}) == len(docs)
    first = docs[0]
    assert first.kind == "invoice" and first.fact("number") == "4711"
    assert sum("4711" in d.text for d in docs) == 1
    deliveries = Counter(d.fact("delivery") for d in docs)
    assert sum(n for k, n in deliveries.items() if k.startswith("rot")) >= 6
    assert deliveries["photo"] >= 6
    assert deliveries["pdf_text"] >= 3 and deliveries["pdf_scan"] >= 3
    two_page = Counter(d.fact("delivery") for d in docs if d.fact("pages") == "2")
    assert two_page["pdf_text"] >= 1 and two_page["pdf_scan"] >= 1


def test_queries_half_exact_half_paraphrase() -> None:
    docs = make_documents()
    queries = make_queries(docs)
    assert queries == make_queries(docs)
    assert len(queries) >= 30
    styles = Counter(q.style for q in queries)
    assert styles["exact"] == styles["paraphrase"]
    ids = {d.id for d in docs}
    assert all(q.relevant and q.relevant <= ids and len(q.relevant) <= 3 for q in queries)
    by_text = {q.text: q for q in queries}
    assert by_text["invoice 4711"].relevant == {docs[0].id}
    electricity = by_text["how much do I owe for electricity"].relevant
    assert {next(d for d in docs if d.id == i).fact("topic") for i in electricity} == {
        "electricity"
    }


def test_pages_render_and_rotate() -> None:
    assert {"sans", "serif", "mono"} <= set(FONTS) and all(p.exists() for p in FONTS.values())
    lines = ["INVOICE No. 4711", "Total due 12.50"]
    page = render_page(lines, bold_first=True)
    assert page.mode == "L" and page.width == 1800
    assert page.height < 600  # only as tall as its content
    assert page.getextrema() == (0, 255)
    assert _digest(page) == _digest(render_page(lines, bold_first=True))
    turned = rotate_page(page, 90)
    assert turned.size == (page.height, page.width)
    assert _digest(rotate_page(turned, 270)) == _digest(page)
    # Clockwise: the top-left of the page ends up top-right.
    assert turned.getpixel((turned.width - 1, 0)) == page.getpixel((0, page.height - 1))


def test_photos_are_deterministic_rgb() -> None:
    page = render_page(["Receipt", "Coffee 3.20", "Total 3.20"], font="mono")
    a = photograph(page, random.Random(3), size=(640, 480))
    b = photograph(page, random.Random(3), size=(640, 480))
    assert a.mode == "RGB" and a.size == (640, 480) and _digest(a) == _digest(b)
    photos = make_text_free_photos(3, size=(320, 240))
    again = make_text_free_photos(3, size=(320, 240))
    assert [_digest(p) for p in photos] == [_digest(p) for p in again]
    assert all(p.mode == "RGB" for p in photos)


def test_text_pdf_has_a_text_layer(tmp_path: Path) -> None:
    path = tmp_path / "t.pdf"
    write_text_pdf(path, [["Invoice 4711", "Caf\u00e9 (total) 12\\50"], ["Page two"]], title="T")
    pdf = pdfium.PdfDocument(path)
    try:
        assert len(pdf) == 2
        text = pdf[0].get_textpage().get_text_range()
        assert "Invoice 4711" in text and "Caf\u00e9 (total) 12\\50" in text
        assert "Page two" in pdf[1].get_textpage().get_text_range()
    finally:
        pdf.close()


def test_scanned_pdf_has_no_text(tmp_path: Path) -> None:
    path = tmp_path / "s.pdf"
    pages = [render_page(["Scanned page one"], dpi=100), render_page(["Two"], dpi=100)]
    write_scanned_pdf(path, pages, dpi=100)
    pdf = pdfium.PdfDocument(path)
    try:
        assert len(pdf) == 2
        assert all(pdf[i].get_textpage().get_text_range().strip() == "" for i in range(2))
        assert round(pdf[0].get_width() / 72 * 100) == pages[0].width
    finally:
        pdf.close()
