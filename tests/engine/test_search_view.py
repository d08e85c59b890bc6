"""engine/search_view.py: the search box's inline filters as chips, adding and removing
one, a hit's reason with its matched words, and the grid's state filter on hits."""

from __future__ import annotations

import time
from pathlib import Path

from engine.library import Library
from engine.search_view import (
    FilterChip,
    filter_chips,
    ids_in_state,
    why_html,
    why_parts,
    why_text,
    with_filter,
    without_filter,
)
from engine.store.db import next_seq


def test_chips_are_the_inline_filters_with_their_spans() -> None:
    text = 'invoice kind:document tag:"red car" after:2023 re:lunch in:Taxes before:2024-06'
    chips = filter_chips(text)
    assert [(c.key, c.value) for c in chips] == [
        ("kind", "document"),
        ("tag", "red car"),
        ("after", "2023"),
        ("in", "Taxes"),
        ("before", "2024-06"),
    ]  # "re:lunch" is words
    assert [text[c.start : c.end] for c in chips][:2] == ["kind:document", 'tag:"red car"']
    assert [c.label for c in chips] == [
        "Documents",
        "tag: red car",
        "after 2023",
        "in Taxes",
        "before 2024-06",
    ]
    assert FilterChip("kind", "photos", 0, 0).label == "Photos"
    assert FilterChip("kind", "nonsense", 0, 0).label == "kind: nonsense"
    assert filter_chips("tag: invoice") == []  # no value: nothing to show yet


def test_removing_and_adding_filters_edits_the_text() -> None:
    text = "invoice  kind:document   4711"
    (chip,) = filter_chips(text)
    assert without_filter(text, chip) == "invoice 4711"
    assert with_filter("invoice kind:photo", "kind", "document") == "invoice kind:document"
    assert with_filter("invoice", "tag", "red car") == 'invoice tag:"red car"'
    assert with_filter("", "tag", "") == "tag:"


def test_why_marks() -> None:
    why = "…the [INVOICE] from <ACME> [4711]…"
    assert why_parts(why) == [
        ("…the ", False),
        ("INVOICE", True),
        (" from <ACME> ", False),
        ("4711", True),
        ("…", False),
    ]
    assert why_text(why) == "…the INVOICE from <ACME> 4711…"
    assert why_html(why) == "…the <b>INVOICE</b> from &lt;ACME&gt; <b>4711</b>…"
    assert why_parts("similar in meaning") == [("similar in meaning", False)]


def test_state_filter_on_hits(tmp_path: Path) -> None:
    with Library(tmp_path / "lib") as lib:
        with lib.catalog.write() as conn:
            seq = next_seq(conn)
            for i, state in ((1, "done"), (2, "failed"), (3, "queued")):
                conn.execute(
                    """INSERT INTO items (id, hash, kind, format, size, added_at, seq)
                       VALUES (?, ?, 'photo', 'jpeg', 1, ?, ?)""",
                    (i, f"{i:064x}", time.time(), seq),
                )
                conn.execute(
                    """INSERT INTO jobs (item_id, stage, version, lane, state, max_attempts,
                                         created_at, seq) VALUES (?, 'metadata', '1', 'import',
                                         ?, 3, ?, ?)""",
                    (i, state, time.time(), seq),
                )
        conn = lib.catalog.conn
        assert ids_in_state(conn, [1, 2, 3], "all") == {1, 2, 3}
        assert ids_in_state(conn, [1, 2, 3], "failed") == {2}
        assert ids_in_state(conn, [1, 3], "done") == {1}
        assert ids_in_state(conn, [], "done") == set()
