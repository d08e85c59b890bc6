"""The search box over the full-text index (no models): words, phrases, filters, floors.

Items are inserted straight into the catalog (paths, tags, page text); the triggers
mark them dirty and the searcher brings the index up to date before it searches.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import save_settings
from engine.library import Library
from engine.search import fts
from engine.search.query import QueryError, fts_match, parse
from engine.store.db import next_seq


def add_item(
    lib: Library,
    item_id: int,
    path: str,
    *,
    kind: str = "document",
    text: str | list[str] = "",
    tags: tuple[str, ...] = (),
    taken_at: str | None = None,
) -> None:
    pages = [text] if isinstance(text, str) else text
    with lib.catalog.write() as conn:
        seq = next_seq(conn)
        conn.execute(
            """INSERT INTO items (id, hash, kind, format, size, added_at, seq, taken_at)
               VALUES (?, ?, ?, 'png', 1, ?, ?, ?)""",
            (item_id, f"{item_id:064x}", kind, time.time(), seq, taken_at),
        )
        conn.execute(
            """INSERT INTO paths (raw, display, item_id, size, mtime_ns, first_seen, last_seen)
               VALUES (?, ?, ?, 1, 0, 0, 0)""",
            (path.encode(), path, item_id),
        )
        for tag in tags:
            conn.execute(
                "INSERT INTO item_tags (item_id, tag, source, score)"
                " VALUES (?, ?, 'zero-shot', 0.5)",
                (item_id, tag),
            )
        for n, page in enumerate(pages):
            if page:
                conn.execute(
                    "INSERT INTO ocr_pages (item_id, page, source, text) VALUES (?, ?, 'ocr', ?)",
                    (item_id, n, page),
                )


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[Library]:
    library = Library(tmp_path / "lib")
    library.settings.models.text = ""
    library.settings.models.embed = ""
    save_settings(library.root, library.settings)
    add_item(
        library,
        1,
        "/home/me/Taxes/2023/invoice-4711.png",
        text="ACME Tools Ltd\nINVOICE 4711\nTotal due: 120.00 EUR\nFinal notice: pay by June",
        taken_at="2023-05-02T10:00:00",
    )
    add_item(
        library,
        2,
        "/home/me/Scans/letter.pdf",
        text=["Dear Mr Müller,", "Thank you for your visit to the Café Zürich."],
        taken_at="2021-03-01T09:00:00",
    )
    add_item(
        library,
        3,
        "/home/me/Pictures/IMG_0042.JPG",
        kind="photo",
        tags=("beach", "sunset"),
        taken_at="2022-08-14T19:30:00",
    )
    add_item(
        library,
        4,
        "/home/me/Scans/notice.png",
        text="This is not the final notice. Invoice 9000 is paid.",
        taken_at="2024-01-10T12:00:00",
    )
    yield library
    library.close()


def ids(lib: Library, text: str, **kw: object) -> list[int]:
    return [h.id for h in lib.search(text, **kw).hits]


def test_words_match_text_names_folders_and_tags(lib: Library) -> None:
    assert ids(lib, "invoice 4711") == [1]  # every word must match
    assert ids(lib, "4711") == [1]
    assert ids(lib, "beach") == [3]  # a tag
    assert ids(lib, "img_0042") == [3]  # a file name
    assert ids(lib, "taxes") == [1]  # a folder name
    assert set(ids(lib, "invoice")) == {1, 4}


def test_why_says_where_the_words_are(lib: Library) -> None:
    hit = lib.search("invoice 4711").hits[0]
    assert "[4711]" in hit.why and "[INVOICE]" in hit.why
    assert hit.to_json().keys() == {"id", "paths", "kind", "score", "why"}
    assert hit.paths == ["/home/me/Taxes/2023/invoice-4711.png"]
    assert lib.search("sunset").hits[0].why.startswith("tag:")
    assert lib.search("taxes").hits[0].why.startswith("folder:")


def test_diacritics_are_folded_both_ways(lib: Library) -> None:
    assert ids(lib, "muller") == [2]
    assert ids(lib, "Müller") == [2]
    assert ids(lib, "cafe zurich") == [2]


def test_quoted_phrase_matches_exactly(lib: Library) -> None:
    assert set(ids(lib, "final notice")) == {1, 4}
    assert ids(lib, '"final notice: pay"') == [1]
    assert ids(lib, '"notice final"') == []


def test_inline_filters(lib: Library) -> None:
    assert ids(lib, "invoice kind:document after:2024") == [4]
    assert ids(lib, "invoice before:2024-01") == [1]
    assert ids(lib, "invoice in:Taxes") == [1]
    assert ids(lib, "invoice in:/home/me/Scans") == [4]
    assert ids(lib, "invoice kind:photo") == []
    assert ids(lib, "tag:beach") == [3]  # filters alone: the matching items
    assert ids(lib, "kind:document", limit=10) == [4, 1, 2]  # newest first
    assert ids(lib, "invoice", kind="document", after=parse("after:2024").after) == [4]


def test_a_query_that_matches_nothing_returns_nothing(lib: Library) -> None:
    assert ids(lib, "xqzt blorf") == []
    assert ids(lib, "zebra") == []


def test_any_word_fallback_ranks_partial_matches_but_needs_a_real_word(lib: Library) -> None:
    # Not every word matches: items with some of the words, none for only stopwords.
    assert set(ids(lib, "the invoice for my bicycle")) == {1, 4}
    assert ids(lib, "how do i") == []


def test_typing_matches_the_unfinished_word_as_a_prefix(lib: Library) -> None:
    assert set(ids(lib, "invo", typing=True)) == {1, 4}
    assert ids(lib, "invo") == []


def test_bad_filter_is_a_sentence(lib: Library) -> None:
    with pytest.raises(QueryError, match="kind:photo or kind:document"):
        lib.search("kind:video")
    with pytest.raises(QueryError, match="2023-06-15"):
        lib.search("after:yesterday")


def test_index_follows_changes(lib: Library) -> None:
    assert ids(lib, "zebra") == []
    with lib.catalog.write() as conn:
        conn.execute(
            "INSERT INTO item_tags (item_id, tag, source, score) VALUES (3, 'zebra', 'detect', 0.9)"
        )
        conn.execute("UPDATE paths SET display = '/home/me/Pictures/renamed.jpg' WHERE item_id = 3")
    assert ids(lib, "zebra") == [3]
    assert ids(lib, "renamed") == [3]
    assert ids(lib, "img_0042") == []
    with lib.catalog.write() as conn:
        conn.execute("DELETE FROM ocr_pages WHERE item_id = 4")
    assert ids(lib, "9000") == []
    with lib.catalog.write() as conn:
        assert not fts.pending(conn)


def test_fts_expression_quotes_everything() -> None:
    q = parse('AND OR "x" NOT* kind:photo')
    assert fts_match(q) == '"and" AND "or" AND "not" AND "x"'
    assert q.kind == "photo"


def test_missing_models_are_notes_not_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHOEBOX_NO_MODELS", raising=False)
    with Library(tmp_path / "lib2") as library:
        add_item(library, 1, "/x/invoice.png", text="invoice 4711")
        add_item(library, 2, "/x/beach.jpg", kind="photo")
        with library.catalog.write() as conn:
            from engine.vectors import store_vectors

            seq = next_seq(conn)
            store_vectors(conn, [(2, library.settings.models.embed, [1.0] + [0.0] * 511, "")], seq)
        result = library.search("invoice 4711")
        assert [h.id for h in result.hits] == [1]
        notes = " ".join(result.notes)
        assert "Photos are not searched by meaning" in notes
        assert "ViT-B-32" in notes and "not available" in notes


def test_warm_up_loads_the_local_text_model_off_the_callers_thread(tmp_path: Path) -> None:
    from models.text import DEFAULT_TEXT_MODEL

    library = Library(tmp_path / "warm")
    library.settings.models.text = DEFAULT_TEXT_MODEL  # MiniLM, from its wheel
    library.settings.models.download = False
    try:
        searcher = library.searcher()
        assert searcher._text_model is None
        assert searcher.warm_up().result(timeout=120) is True
        assert searcher._text_model is not None and searcher._text_model.state == "loaded"
    finally:
        library.close()


def test_warm_up_loads_nothing_without_local_weights(tmp_path: Path) -> None:
    library = Library(tmp_path / "cold")
    library.settings.models.text = "transformers:/nowhere/no-such-model"
    try:
        assert library.searcher().warm_up().result(timeout=60) is False
        library.settings.models.text = ""
        library._searcher = None
        assert library.searcher().warm_up().result(timeout=60) is False
    finally:
        library.close()
