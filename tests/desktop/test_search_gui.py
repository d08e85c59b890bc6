"""The search box in the GUI: results as you type (off the GUI thread, a newer query
winning), ranked in the grid with their reasons, filters as chips, "Nothing matches",
query errors, the detail pane's page text and word boxes, and Esc back to the library.

The library is built once, straight through SQL (items, paths, tags, page text with
word boxes, a preview), with no model: only the full-text search runs. One test
loads the real MiniLM text model to search documents by meaning.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop import actions
from desktop.mainwindow import MainWindow
from desktop.operations import search as search_ops
from desktop.qt import QKeySequence, Qt
from engine.config import save_settings
from engine.library import Library
from engine.pipeline.thumbnail import PREVIEW_PX, THUMB_PX, thumb_relpath
from engine.store.db import next_seq

# Page 1 of the invoice is its text layer (612 × 792 pt at 300 dpi); page 2 was scanned
# sideways and read after a turn of 90° clockwise (its upright image is landscape).
PAGE_PX = (2550, 3300)
INVOICE_P1 = "ACME Tools Ltd\nINVOICE 4711\nTotal due: 120.00 EUR"
INVOICE_P2 = "Final notice: the invoice must be paid by June"
LETTER = "Dear Mr Müller,\nthank you for your visit to the Café Zürich last summer."
REMINDER = "Reminder: invoice 9000 is overdue"
ITEMS: dict[int, dict[str, Any]] = {
    1: {"path": "Taxes/invoice-4711.pdf", "kind": "document", "pages": [INVOICE_P1, INVOICE_P2]},
    2: {"path": "Scans/reminder.png", "kind": "document", "pages": [REMINDER]},
    3: {"path": "Photos/beach.jpg", "kind": "photo", "pages": [], "tags": ["beach"]},
    4: {"path": "Letters/letter.pdf", "kind": "document", "pages": [LETTER]},
}
INVOICE, REMINDER_ID, PHOTO, LETTER_ID = 1, 2, 3, 4


def _words(text: str, rotation: int) -> list[list[float]]:
    """A box for every word, laid out in lines on the upright page."""
    import re

    width = PAGE_PX[1] if rotation in (90, 270) else PAGE_PX[0]
    out: list[list[float]] = []
    x, y, line_start = 100, 100, 0
    for m in re.finditer(r"\S+", text):
        if "\n" in text[line_start : m.start()]:
            x, y = 100, y + 80
        line_start = m.start()
        w = 40 * (m.end() - m.start())
        if x + w > width - 100:
            x, y = 100, y + 80
        out.append([x, y, x + w, y + 60, 95.0, m.start(), m.end()])
        x += w + 30
    return out


def _write_pdf(path: Path, pages: int) -> None:
    import pypdfium2 as pdfium

    path.parent.mkdir(parents=True, exist_ok=True)
    pdf = pdfium.PdfDocument.new()
    for _ in range(pages):
        pdf.new_page(612, 792)
    pdf.save(str(path))
    pdf.close()


def _add_items(lib: Library, files: Path) -> None:
    from PIL import Image

    with lib.catalog.write() as conn:
        seq = next_seq(conn)
        for item_id, spec in ITEMS.items():
            path = files / spec["path"]
            fmt = {".pdf": "pdf", ".png": "png", ".jpg": "jpeg"}[path.suffix]
            content_hash = f"{item_id:064x}"
            conn.execute(
                """INSERT INTO items (id, hash, kind, format, size, added_at, seq, width, height)
                   VALUES (?, ?, ?, ?, 1, ?, ?, 1275, 1650)""",
                (item_id, content_hash, spec["kind"], fmt, time.time() + item_id, seq),
            )
            conn.execute(
                """INSERT INTO paths (raw, display, item_id, size, mtime_ns, first_seen,
                                      last_seen) VALUES (?, ?, ?, 1, 0, 0, 0)""",
                (str(path).encode(), str(path), item_id),
            )
            for tag in spec.get("tags", []):
                conn.execute(
                    "INSERT INTO item_tags (item_id, tag, source, score, model)"
                    " VALUES (?, ?, 'zero-shot', 0.5, 'm')",
                    (item_id, tag),
                )
            for page, text in enumerate(spec["pages"]):
                rotation = 90 if (item_id, page) == (INVOICE, 1) else 0
                w, h = PAGE_PX if rotation == 0 else PAGE_PX[::-1]
                conn.execute(
                    """INSERT INTO ocr_pages (item_id, page, source, rotation, confidence,
                           lang, width, height, text, words) VALUES (?, ?, ?, ?, ?, 'eng', ?, ?,
                           ?, ?)""",
                    (
                        item_id,
                        page,
                        "text-layer" if page == 0 and fmt == "pdf" else "ocr",
                        rotation,
                        None if page == 0 and fmt == "pdf" else 91.5,
                        w,
                        h,
                        text,
                        json.dumps(_words(text, rotation)),
                    ),
                )
            if fmt == "pdf":
                _write_pdf(path, len(spec["pages"]))
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (510, 660), "white").save(path)
            for size, px in (("thumb", THUMB_PX), ("preview", PREVIEW_PX)):
                rel = thumb_relpath(content_hash, px)
                (lib.root / rel).parent.mkdir(parents=True, exist_ok=True)
                w, h = round(px * 1275 / 1650), px
                Image.new("RGB", (w, h), (250, 250, 245)).save(lib.root / rel)
                conn.execute(
                    "INSERT INTO thumbnails (item_id, size, path, width, height)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (item_id, size, rel, w, h),
                )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("search-gui")
    library_dir = root / "library"
    with Library(library_dir) as lib:
        lib.settings.models.text = ""
        lib.settings.models.embed = ""
        save_settings(lib.root, lib.settings)
        _add_items(lib, root / "files")
    return library_dir


@pytest.fixture
def library_dir(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "library"
    shutil.copytree(template, copy)
    return copy


@pytest.fixture
def window(make_window: Callable[..., MainWindow], library_dir: Path) -> Iterator[MainWindow]:
    yield make_window(library_dir, start_host=False)


def _ids(window: MainWindow) -> list[int]:
    return window.grid_model.ids()


def _lib(window: MainWindow) -> Library:
    assert window.library is not None
    return window.library


def _search(qtbot: Any, window: MainWindow, text: str) -> search_ops.SearchOutcome:
    """Type `text` and press Return; wait for its results to be shown."""
    box = window.search
    box.clear()
    qtbot.keyClicks(box, text)
    qtbot.keyClick(box, Qt.Key.Key_Return)
    state = window.search_state
    qtbot.waitUntil(
        lambda: state.shown is not None and state.shown.request.text == text, timeout=5000
    )
    assert state.shown is not None
    return state.shown


def _engine_order(window: MainWindow, text: str, typing: bool = False) -> list[int]:
    return [h.id for h in _lib(window).search(text, typing=typing, limit=200).hits]


# -- the box ----------------------------------------------------------------------------


def test_ctrl_f_focuses_the_box_and_selects_its_text(qtbot: Any, window: MainWindow) -> None:
    window.search.setText("old words")
    window.grid.setFocus()
    assert not window.search.hasFocus()
    qtbot.keySequence(window, QKeySequence.StandardKey.Find)
    assert window.search.hasFocus()
    assert window.search.selectedText() == "old words"
    assert QKeySequence("Ctrl+F") in window.actions_by_name["find_action"].shortcuts()
    assert window.search_state.started == 0  # setting the text searched nothing


def test_typing_shows_the_matches_best_first_each_with_its_reason(
    qtbot: Any, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    everything = _ids(window)
    assert len(everything) == len(ITEMS)
    threads: list[bool] = []
    real = search_ops.run_search

    def recorded(library: Library, request: search_ops.SearchRequest) -> Any:
        threads.append(threading.current_thread() is threading.main_thread())
        return real(library, request)

    monkeypatch.setattr(search_ops, "run_search", recorded)
    window.grid.setFocus()
    qtbot.keySequence(window, QKeySequence.StandardKey.Find)
    qtbot.keyClicks(window.search, "invoice")  # no Return: the search runs once typing settles
    want = _engine_order(window, "invoice", typing=True)
    assert want[0] == INVOICE and set(want) == {INVOICE, REMINDER_ID}
    qtbot.waitUntil(lambda: _ids(window) == want, timeout=5000)
    state = window.search_state
    assert state.started == 1 and threads == [False]  # seven keys, one search, off the GUI thread
    assert state.shown is not None and state.shown.request.typing
    assert window.search.hasFocus()  # typing goes on in the box
    assert window.is_filtered()

    bar = window.search_bar
    assert bar.isVisible()
    assert bar.summary_text() == "2 results for “invoice”, best first"
    assert bar.notes.isVisible() and "not searched by meaning" in bar.notes.text()
    model = window.grid_model
    tip = str(model.index(0, 0).data(Qt.ItemDataRole.ToolTipRole))
    assert "Matched:" in tip and "<b>invoice</b>" in tip.lower()
    assert window.current_id() == INVOICE
    assert "Matched:" in bar.reason.text() and "invoice-4711.pdf" in bar.reason.text()
    window.grid.setCurrentIndex(model.index(1, 0))
    assert "<b>invoice</b>" in bar.reason.text().lower() and "9000" in bar.reason.text()
    assert not window.grid.grab().isNull()


def test_a_stale_result_is_dropped(
    qtbot: Any, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, gate = threading.Event(), threading.Event()
    real = search_ops.run_search
    ran: list[str] = []

    def slow_first(library: Library, request: search_ops.SearchRequest) -> Any:
        if request.text == "invoice":
            entered.set()
            assert gate.wait(10)
        ran.append(request.text)
        return real(library, request)

    monkeypatch.setattr(search_ops, "run_search", slow_first)
    state = window.search_state
    window.search.setText("invoice")
    actions.search(window)
    qtbot.waitUntil(entered.is_set, timeout=5000)  # the first query runs, held at the gate
    window.search.setText("zürich")
    actions.search(window)  # the second finishes first
    qtbot.waitUntil(lambda: _ids(window) == [LETTER_ID], timeout=5000)
    assert state.delivered == 1 and state.dropped == 0
    gate.set()  # now the first one's result comes back, late
    qtbot.waitUntil(lambda: state.dropped == 1, timeout=5000)
    assert ran == ["zürich", "invoice"]
    assert _ids(window) == [LETTER_ID]
    assert state.shown is not None and state.shown.request.text == "zürich"
    assert state.started == 2 and state.delivered == 1
    assert "invoice" not in window.search_bar.summary_text()


def test_inline_filter_becomes_a_chip_and_its_x_removes_it(qtbot: Any, window: MainWindow) -> None:
    shown = _search(qtbot, window, "invoice kind:document")
    bar = window.search_bar
    assert bar.chip_texts() == ["Documents"]
    assert shown.ids == _engine_order(window, "invoice kind:document")
    qtbot.mouseClick(bar.chips[0].close_button, Qt.MouseButton.LeftButton)
    assert window.search.text() == "invoice"
    state = window.search_state
    qtbot.waitUntil(
        lambda: state.shown is not None and state.shown.request.text == "invoice", timeout=5000
    )
    assert bar.chip_texts() == []
    assert _ids(window) == _engine_order(window, "invoice")

    # The Filter menu adds one: photos only. No photo mentions an invoice.
    window.toolbar.filter_button.menu_actions()["kind:photo"].trigger()
    assert window.search.text() == "invoice kind:photo"
    qtbot.waitUntil(
        lambda: state.shown is not None and state.shown.request.text == "invoice kind:photo",
        timeout=5000,
    )
    assert bar.chip_texts() == ["Photos"] and _ids(window) == []
    window.toolbar.filter_button.menu_actions()["kind:document"].trigger()
    assert window.search.text() == "invoice kind:document"  # a kind replaces the kind
    window.toolbar.filter_button.menu_actions()["tag:"].trigger()
    assert window.search.text() == "invoice kind:document tag:" and window.search.hasFocus()


def test_the_kind_box_narrows_a_search(qtbot: Any, window: MainWindow) -> None:
    _search(qtbot, window, "beach")
    assert _ids(window) == [PHOTO]
    reason = window.search_bar.reason
    assert reason.isVisible() and "<b>beach</b>" in reason.text()
    window.kind_box.setCurrentIndex(window.kind_box.findData("document"))
    state = window.search_state
    qtbot.waitUntil(lambda: state.shown is not None and state.shown.ids == [], timeout=5000)
    assert state.shown is not None and state.shown.request.kind == "document"


def test_nothing_matches_says_so_and_a_bad_filter_says_why(qtbot: Any, window: MainWindow) -> None:
    everything = _ids(window)
    _search(qtbot, window, "zzxqv")
    assert _ids(window) == []
    assert window.grid.empty_title == "Nothing matches “zzxqv”"
    assert window.search_bar.summary_text() == "Nothing matches “zzxqv”"
    assert not window.grid.grab().isNull()  # paints the empty state
    window.search_bar.close_button.click()
    qtbot.waitUntil(lambda: _ids(window) == everything, timeout=5000)

    window.search.setText("invoice after:20x")
    actions.search(window)
    qtbot.waitUntil(lambda: window.search_state.delivered == 2, timeout=5000)
    assert "write a date as 2023" in window.search_bar.summary_text()
    assert window.search_bar.isVisible()
    assert _ids(window) == everything and not window.search_state.active  # nothing broke


def test_esc_clears_the_search_and_returns_to_the_library(qtbot: Any, window: MainWindow) -> None:
    everything = _ids(window)
    _search(qtbot, window, "invoice")
    window.grid.setCurrentIndex(window.grid_model.index(1, 0))
    current = window.current_id()
    assert window.grid.hasFocus()  # Return went on to the results
    qtbot.keyClick(window.grid, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: _ids(window) == everything, timeout=5000)
    assert window.search.text() == "" and not window.search_bar.isVisible()
    assert not window.search_state.active and window.current_id() == current

    # In the box, Esc clears it too; a result still on its way is not shown.
    _search(qtbot, window, "invoice")
    window.search.setFocus()
    qtbot.keyClicks(window.search, " 4711")
    qtbot.keyClick(window.search, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: _ids(window) == everything, timeout=5000)
    assert window.search.text() == "" and not window.search.pending()


def test_esc_closes_the_detail_opened_after_the_results_first(
    qtbot: Any, window: MainWindow
) -> None:
    everything = _ids(window)
    _search(qtbot, window, "invoice")
    window.open_detail()
    assert window.detail.isVisible()
    qtbot.keyClick(window.grid, Qt.Key.Key_Escape)
    assert not window.detail.isVisible() and window.search_state.active
    qtbot.keyClick(window.grid, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: _ids(window) == everything, timeout=5000)


def test_more_like_this_from_the_results_goes_back_to_them(qtbot: Any, window: MainWindow) -> None:
    shown = _search(qtbot, window, "invoice")
    actions.show_similar(window, INVOICE, "invoice-4711.pdf", [LETTER_ID, PHOTO])
    assert _ids(window) == [LETTER_ID, PHOTO]
    qtbot.keyClick(window.grid, Qt.Key.Key_Escape)
    assert _ids(window) == shown.ids and window.search_state.active
    assert window.grid_model.reasons == shown.reasons


# -- the detail pane --------------------------------------------------------------------


def test_detail_pane_shows_the_page_text_with_the_words_highlighted(
    qtbot: Any, window: MainWindow
) -> None:
    _search(qtbot, window, "invoice")
    assert window.current_id() == INVOICE
    window.open_detail()
    pane = window.detail
    qtbot.waitUntil(pane.preview.has_image, timeout=5000)
    assert pane.matched is not None
    assert pane.matched.text().startswith("Matched: ")
    assert "<b>INVOICE</b>" in pane.matched.text()
    view = pane.text_view
    assert view is not None and [p.page for p in view.pages] == [0, 1]
    first = view.html_of(0)
    assert 'background-color:#fde047; font-weight:600">INVOICE</span>' in first
    assert "invoice</span>" in view.html_of(1)
    assert view.captions[0].text() == "Page 1 · text layer · 1 match · shown above"
    assert view.captions[1].text() == "Page 2 · OCR · turned 90° · 92% confidence · 1 match"

    # Page 1's word boxes over the preview: the matched word filled, scaled to it.
    words = pane.preview.shown_words()
    assert len(words) == len(INVOICE_P1.split())
    matched = [w for w in words if w.matched]
    assert len(matched) == 1
    area = pane.preview.image_rect()
    scale = area.width() / PAGE_PX[0]
    box = next(b for b in json.loads(_page_words(window, INVOICE, 0)) if b[5] == 15)
    assert matched[0].rect.x() == pytest.approx(area.x() + box[0] * scale, abs=0.01)
    assert matched[0].rect.width() == pytest.approx((box[2] - box[0]) * scale, abs=0.01)
    assert pane.show_objects.isVisible() and pane.show_objects.text() == "Show word boxes"
    window.grid.setFocus()
    qtbot.keyClick(window.grid, Qt.Key.Key_O)  # O hides the boxes, as it does objects
    assert pane.preview.shown_words() == []
    qtbot.keyClick(window.grid, Qt.Key.Key_O)
    assert len(pane.preview.shown_words()) == len(words)

    # Page 2, drawn from the PDF off the GUI thread; its boxes turned back to its frame.
    view.show_buttons[1].click()
    assert pane.page == 1 and not pane.preview.has_image()
    qtbot.waitUntil(pane.preview.has_image, timeout=5000)
    view = pane.text_view
    assert view is not None and view.captions[1].text().endswith("shown above")
    words = pane.preview.shown_words()
    assert len(words) == len(INVOICE_P2.split()) and sum(w.matched for w in words) == 1
    area = pane.preview.image_rect()
    assert all(area.contains(w.rect) for w in words)
    assert area.height() > area.width()  # the page as stored (portrait), not turned
    assert not window.grab().isNull()

    window.grid.setCurrentIndex(window.grid_model.index(1, 0))  # the reminder
    assert pane.item_id == REMINDER_ID and pane.page == 0
    assert pane.text_view is not None and "9000" in pane.text_view.html_of(0)
    assert pane.matched is not None and "9000" in pane.matched.text()


def _page_words(window: MainWindow, item_id: int, page: int) -> str:
    row = (
        _lib(window)
        .catalog.conn.execute(
            "SELECT words FROM ocr_pages WHERE item_id = ? AND page = ?", (item_id, page)
        )
        .fetchone()
    )
    return str(row[0])


def test_detail_pane_without_a_search_shows_the_text_plainly(
    qtbot: Any, window: MainWindow
) -> None:
    row = window.grid_model.row_of(LETTER_ID)
    assert row is not None
    window.grid.setCurrentIndex(window.grid_model.index(row, 0))
    window.open_detail()
    pane = window.detail
    assert pane.matched is None
    assert pane.text_view is not None
    assert "Café Zürich" in pane.text_view.html_of(0)
    assert "background-color" not in pane.text_view.html_of(0)
    qtbot.waitUntil(pane.preview.has_image, timeout=5000)
    assert pane.preview.shown_words() and not any(w.matched for w in pane.preview.shown_words())
    # Diacritics fold both ways in the highlight, as in the search.
    _search(qtbot, window, "cafe zurich")
    assert window.current_id() == LETTER_ID
    assert pane.text_view is not None
    assert pane.text_view.html_of(0).count("background-color") == 2
    photo_row = window.grid_model.row_of(PHOTO)
    assert photo_row is None  # not a result


# -- by meaning, with the real text model -----------------------------------------------


def test_documents_found_by_meaning_with_the_minilm_model(
    qtbot: Any, make_window: Callable[..., MainWindow], library_dir: Path
) -> None:
    from engine.config import DEFAULT_TEXT_MODEL
    from engine.search.textvectors import Passage, store_text_vectors
    from models.text import create_text_embedder

    started = time.monotonic()
    model = create_text_embedder(DEFAULT_TEXT_MODEL, "cpu")
    model.allow_download = False
    if model.availability() is not None:
        pytest.skip(f"the MiniLM weights are not here: {model.availability()}")
    with Library(library_dir) as lib:
        lib.settings.models.text = DEFAULT_TEXT_MODEL
        save_settings(lib.root, lib.settings)
        model.load()
        with lib.catalog.write() as conn:
            seq = next_seq(conn)
            for item_id, spec in ITEMS.items():
                passages, texts = [], []
                for page, text in enumerate(spec["pages"]):
                    for chunk in model.chunk(text):
                        passages.append(Passage(page, chunk.start, chunk.end))
                        texts.append(chunk.text)
                if texts:
                    vectors = model.embed_texts(texts)
                    store_text_vectors(
                        conn, item_id, DEFAULT_TEXT_MODEL, passages, vectors, "d", seq
                    )
    window = make_window(library_dir, start_host=False)
    shown = _search(qtbot, window, "coffee house holiday in Switzerland")
    assert shown.ids and shown.ids[0] == LETTER_ID
    hit = shown.hit(LETTER_ID)
    assert hit is not None and hit.why.startswith("similar in meaning")
    assert "text-meaning" in hit.sources
    tip = str(window.grid_model.index(0, 0).data(Qt.ItemDataRole.ToolTipRole))
    assert "similar in meaning" in tip
    assert not any("Documents are not searched" in n for n in shown.notes)
    assert any(n.startswith("Photos are not searched by meaning") for n in shown.notes)
    assert time.monotonic() - started < 60
