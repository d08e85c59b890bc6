"""engine.browse: the grid's queries, their filters, and their cost at 100,000 items."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import browse
from engine.browse import BrowseQuery, item_state
from engine.library import Library
from tests.desktop.bulk import STATES, fill
from tests.engine.helpers import jpeg, run_host_until_idle


def test_item_state_precedence() -> None:
    assert item_state({}) == ("done", None, None)
    assert item_state({"a": ("done", None), "b": ("running", None)}) == ("working", "b", None)
    assert item_state({"a": ("failed", "bad"), "b": ("queued", None)}) == ("queued", "b", None)
    assert item_state({"a": ("done", None), "b": ("dead", "gone")}) == ("failed", "b", "gone")
    assert item_state({"a": ("cancelled", "x")}) == ("cancelled", None, None)


def test_filters_match_row_states(library: Library) -> None:
    fill(library, 600)
    conn = library.catalog.conn
    every = browse.item_ids(conn)
    assert every == list(range(1, 601))
    rows = browse.grid_rows(conn, every)
    for state in ("queued", "working", "done", "failed"):
        ids = browse.item_ids(conn, BrowseQuery(state=state))
        assert ids == [i for i in every if rows[i].state == state], state
        assert len(ids) == 600 * STATES.count({"working": "running"}.get(state, state)) // 6
    missing = browse.item_ids(conn, BrowseQuery(state="missing"))
    assert missing == [i for i in every if rows[i].missing] == [97, 194, 291, 388, 485, 582]
    documents = browse.item_ids(conn, BrowseQuery(kind="document"))
    assert documents == [i for i in every if i % 10 == 0]
    assert browse.item_ids(conn, BrowseQuery(text="img-00012")) == list(range(120, 130))
    assert browse.item_ids(conn, BrowseQuery(text="100%")) == []  # LIKE wildcards escaped


def test_sorts(library: Library) -> None:
    fill(library, 300)
    conn = library.catalog.conn
    by_name = browse.item_ids(conn, BrowseQuery(sort="name"))
    assert by_name == list(range(1, 301))
    by_taken = browse.item_ids(conn, BrowseQuery(sort="taken"))
    rows = browse.grid_rows(conn, by_taken)
    dates = [rows[i].taken_at for i in by_taken]
    known = [d for d in dates if d is not None]
    assert known == sorted(known, reverse=True)
    assert dates[len(known) :] == [None] * (len(dates) - len(known))  # unknown dates last


def test_grid_rows_and_detail_after_processing(library: Library, tmp_path: Path) -> None:
    src = tmp_path / "src"
    jpeg(src / "a.jpg", 1)
    jpeg(src / "b.jpg", 2)
    (src / "bad.jpg").write_bytes(bytes(range(256)) * 8)  # named as a photo, is not one
    library.import_paths([src])
    ids = browse.item_ids(library.catalog.conn, BrowseQuery(sort="name"))
    before = browse.grid_rows(library.catalog.conn, ids)
    assert [before[i].name for i in ids] == ["a.jpg", "b.jpg", "bad.jpg"]
    assert {r.state for r in before.values()} == {"queued"}
    run_host_until_idle(library)
    after = browse.grid_rows(library.catalog.conn, ids)
    a, b, bad = (after[i] for i in ids)
    assert a.state == b.state == "done" and a.thumb and (library.root / a.thumb).is_file()
    assert bad.state == "failed" and bad.error and bad.thumb is None
    detail = browse.item_detail(library.catalog.conn, a.id)
    assert detail is not None
    assert detail.paths == [str(src / "a.jpg")]
    assert detail.preview and (library.root / detail.preview).is_file()
    assert ("Dimensions", "320 × 240") in detail.facts
    assert {s.name: s.state for s in detail.stages} == {"metadata": "done", "thumbnail": "done"}
    bad_detail = browse.item_detail(library.catalog.conn, bad.id)
    assert bad_detail is not None
    assert any(s.state == "failed" and s.error for s in bad_detail.stages)
    assert browse.item_detail(library.catalog.conn, 999) is None


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    lib = Library(tmp_path_factory.mktemp("big") / "library")
    fill(lib, 100_000)
    yield lib
    lib.close()


@pytest.mark.parametrize("sort", ["added", "taken", "name"])
def test_id_query_at_100k(big: Library, sort: str) -> None:
    library = big
    started = time.perf_counter()
    ids = browse.item_ids(library.catalog.conn, BrowseQuery(sort=sort))  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    assert len(ids) == 100_000
    assert elapsed < (1.5 if sort == "name" else 0.5), f"{sort}: {elapsed:.3f} s"
    started = time.perf_counter()
    rows = browse.grid_rows(library.catalog.conn, ids[:256])
    assert len(rows) == 256
    assert time.perf_counter() - started < 0.1


def test_format_size() -> None:
    assert browse.format_size(999) == "999 bytes"
    assert browse.format_size(2048) == "2.0 KB"
    assert browse.format_size(5 * 1024**3) == "5.0 GB"
