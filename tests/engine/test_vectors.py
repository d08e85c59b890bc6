"""engine.vectors: stored embeddings, the exact and HNSW indexes, and `similar`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine import vectors as ev
from engine.library import Library
from engine.store.db import next_seq

MODEL = "test:model-a"
OTHER = "test:model-b"


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[Library]:
    library = Library(tmp_path / "lib")
    yield library
    library.close()


def add_items(lib: Library, n: int, *, kind: str = "photo") -> list[int]:
    """Item rows (no files), each with one existing path and the odd one a missing one."""
    with lib.catalog.write() as conn:
        seq = next_seq(conn)
        start = int(conn.execute("SELECT coalesce(max(id), 0) FROM items").fetchone()[0])
        ids = list(range(start + 1, start + n + 1))
        conn.executemany(
            """INSERT INTO items (id, hash, kind, format, size, added_at, seq)
               VALUES (?, ?, ?, 'jpeg', 1, 0, ?)""",
            [(i, f"h{i}", kind, seq) for i in ids],
        )
        paths = [(f"/p/{i}.jpg", i, 0) for i in ids]
        paths += [(f"/gone/{i}.jpg", i, 1) for i in ids if i % 2]
        conn.executemany(
            """INSERT INTO paths (raw, display, item_id, size, mtime_ns, missing,
                                  first_seen, last_seen)
               VALUES (CAST(? AS BLOB), ?1, ?, 1, 0, ?, 0, 0)""",
            paths,
        )
    return ids


def put(lib: Library, model: str, vectors: dict[int, np.ndarray]) -> None:
    with lib.catalog.write() as conn:
        seq = next_seq(conn)
        ev.store_vectors(conn, [(i, model, v, "digest") for i, v in vectors.items()], seq)


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def stored_matrix(lib: Library, model: str) -> tuple[np.ndarray, np.ndarray]:
    rows = lib.catalog.read(
        "SELECT item_id, dim, vector FROM vectors WHERE model = ? ORDER BY item_id", (model,)
    )
    ids = np.array([r[0] for r in rows])
    return ids, np.stack([ev.decode_vector(r[2], r[1]) for r in rows])


def brute_force(
    lib: Library,
    model: str,
    q: np.ndarray,
    k: int,
    stored: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[int]:
    """The true top k over the catalog's vectors (`stored`: from `stored_matrix`)."""
    ids, matrix = stored or stored_matrix(lib, model)
    scores = matrix @ (q / np.linalg.norm(q))
    return [int(ids[i]) for i in np.lexsort((ids, -scores))[:k]]


def no_full_build(index: ev.VectorIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(conn: Any) -> None:
        raise AssertionError("refresh rebuilt the index instead of catching up")

    monkeypatch.setattr(index, "_full_build", fail)


# -- storage ----------------------------------------------------------------------------


def test_encode_normalises_to_float16_and_decodes() -> None:
    blob = ev.encode_vector([3.0, 4.0, 0.0])
    assert blob == np.array([0.6, 0.8, 0.0], dtype="<f2").tobytes()
    back = ev.decode_vector(blob, 3)
    assert back.dtype == np.float32
    assert np.allclose(back, [0.6, 0.8, 0.0], atol=1e-3)
    with pytest.raises(ValueError, match="zero"):
        ev.encode_vector([0.0, 0.0])
    with pytest.raises(ValueError, match="not finite"):
        ev.encode_vector([1.0, float("nan")])
    with pytest.raises(ValueError, match="takes 8 bytes, not 6"):
        ev.decode_vector(blob, 4)


def test_store_upserts_and_keeps_other_models(lib: Library) -> None:
    [a, b] = add_items(lib, 2)
    put(lib, MODEL, {a: np.array([1.0, 0, 0]), b: np.array([0, 1.0, 0])})
    put(lib, OTHER, {a: np.array([0, 0, 1.0, 0])})
    put(lib, MODEL, {a: np.array([0, 0, 2.0])})  # a re-embedding replaces the row
    rows = lib.catalog.read("SELECT item_id, model, dim, digest, seq FROM vectors ORDER BY 1, 2")
    assert [tuple(r)[:4] for r in rows] == [
        (a, MODEL, 3, "digest"),
        (a, OTHER, 4, "digest"),
        (b, MODEL, 3, "digest"),
    ]
    assert rows[0]["seq"] > rows[2]["seq"]  # the upsert took its transaction's seq
    [vec] = lib.catalog.read(
        "SELECT vector FROM vectors WHERE item_id = ? AND model = ?", (a, MODEL)
    )
    assert np.allclose(ev.decode_vector(vec[0], 3), [0, 0, 1.0])
    assert ev.item_models(lib.catalog.conn, a) == [MODEL, OTHER]
    with pytest.raises(ValueError, match="3 dimensions, not 2"):
        put(lib, MODEL, {b: np.array([1.0, 1.0])})
    with lib.catalog.write() as conn:
        next_seq(conn)
        assert ev.delete_other_models(conn, [a, b], OTHER) == 2
    assert ev.item_models(lib.catalog.conn, a) == [OTHER]
    assert ev.item_models(lib.catalog.conn, b) == []


# -- exact search ---------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["usearch", "numpy"])
def test_exact_search_matches_brute_force(
    lib: Library, kernel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ev, "_USEARCH_EXACT", kernel == "usearch")
    monkeypatch.setattr(ev, "EXACT_BLOCK_ROWS", 300)  # several numpy blocks
    rng = np.random.default_rng(1)
    ids = add_items(lib, 2000)
    x = unit(rng, 2000, 48)
    put(lib, MODEL, dict(zip(ids, x, strict=True)))
    index = ev.VectorIndex(MODEL, threshold=10**9)
    assert index.refresh(lib.catalog.conn)
    assert index.mode == "exact" and len(index) == 2000 and index.dim == 48
    stored = stored_matrix(lib, MODEL)
    matrix = stored[1]
    for qi in range(15):
        q = rng.standard_normal(48)
        hits = index.search(q, 10)
        assert [h[0] for h in hits] == brute_force(lib, MODEL, q, 10, stored)
        want = matrix[[h[0] - 1 for h in hits]] @ (q / np.linalg.norm(q))
        assert np.allclose([h[1] for h in hits], want, atol=1e-5)
        assert [h[1] for h in hits] == sorted((h[1] for h in hits), reverse=True)
        excluded = index.search(x[qi], 5, exclude={ids[qi]})
        assert ids[qi] not in [h[0] for h in excluded]
        assert [h[0] for h in excluded] == brute_force(lib, MODEL, x[qi], 6, stored)[1:]
    assert index.search(q, 0) == []
    assert len(index.search(q, 5000)) == 2000
    with pytest.raises(ValueError, match="48 dimensions, not 3"):
        index.search([1.0, 0.0, 0.0], 3)


def test_refresh_catches_up_with_inserts_updates_and_deletions(
    lib: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(2)
    ids = add_items(lib, 300)
    put(lib, MODEL, dict(zip(ids[:200], unit(rng, 200, 32), strict=True)))
    put(lib, OTHER, {i: v for i, v in zip(ids, unit(rng, 300, 16), strict=True)})
    index = ev.VectorIndex(MODEL, threshold=10**9)
    conn = lib.catalog.conn
    index.refresh(conn)
    assert len(index) == 200
    no_full_build(index, monkeypatch)
    assert not index.refresh(conn)  # nothing changed
    mark = index.watermark

    fresh = unit(rng, 100, 32)
    put(lib, MODEL, dict(zip(ids[200:], fresh, strict=True)))  # inserts
    moved = unit(rng, 1, 32)[0]
    put(lib, MODEL, {ids[5]: moved})  # an update replaces the row in place
    assert index.refresh(conn)
    assert index.watermark > mark and len(index) == 300
    assert index.search(fresh[7], 1)[0][0] == ids[207]
    top = index.search(moved, 1)[0]
    assert top[0] == ids[5] and top[1] == pytest.approx(1.0, abs=1e-3)

    with lib.catalog.write() as c:  # deletions: a row, and an item (cascade)
        next_seq(c)
        c.execute("DELETE FROM vectors WHERE item_id = ? AND model = ?", (ids[207], MODEL))
        c.execute("DELETE FROM paths WHERE item_id = ?", (ids[9],))
        c.execute("DELETE FROM items WHERE id = ?", (ids[9],))
    # Counting rows to find deletions is throttled, but a search given the connection
    # never returns a deleted vector, and has the next refresh look for deletions.
    index.refresh(conn)
    assert ids[207] not in [h[0] for h in index.search(fresh[7], 5, conn=conn)]
    assert index.refresh(conn)
    assert sorted(index.ids().tolist()) == sorted(set(ids) - {ids[207], ids[9]})
    assert ids[207] not in [h[0] for h in index.search(fresh[7], 5)]
    for q in unit(rng, 5, 32):
        assert [h[0] for h in index.search(q, 10)] == brute_force(lib, MODEL, q, 10)
    # deletions and an insert in one go: the count stays, the deletion is still seen
    [new] = add_items(lib, 1)
    with lib.catalog.write() as c:
        seq = next_seq(c)
        c.execute("DELETE FROM vectors WHERE item_id = ? AND model = ?", (ids[0], MODEL))
        ev.store_vectors(c, [(new, MODEL, fresh[0], "")], seq)
    index.refresh(conn, deletions=True)
    assert ids[0] not in index.ids().tolist() and new in index.ids().tolist()
    # and without a search, once `DELETION_CHECK_S` has passed
    with lib.catalog.write() as c:
        next_seq(c)
        c.execute("DELETE FROM vectors WHERE item_id = ? AND model = ?", (ids[1], MODEL))
    index.refresh(conn)
    assert ids[1] in index.ids().tolist()  # not counted yet
    monkeypatch.setattr(ev, "DELETION_CHECK_S", 0.0)
    put(lib, MODEL, {ids[2]: fresh[1]})
    index.refresh(conn)
    assert ids[1] not in index.ids().tolist()


# -- HNSW -----------------------------------------------------------------------------------


def clustered(rng: np.random.Generator, n: int, dim: int, clusters: int = 50) -> np.ndarray:
    centres = unit(rng, clusters, dim)
    x = centres[rng.integers(0, clusters, n)] + 0.6 * unit(rng, n, dim)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def recall(index: ev.VectorIndex, exact: ev.VectorIndex, queries: np.ndarray, **kw: Any) -> float:
    got = 0
    for q in queries:
        truth = {h[0] for h in exact.search(q, 10)}
        got += len(truth & {h[0] for h in index.search(q, 10, **kw)})
    return got / (10 * len(queries))


def test_hnsw_recall_and_reopen_from_disk(lib: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    n, dim = 5000, 64
    ids = add_items(lib, n)
    put(lib, MODEL, dict(zip(ids, clustered(rng, n, dim), strict=True)))
    conn = lib.catalog.conn
    folder = lib.root / "index"
    index = ev.VectorIndex(MODEL, folder, threshold=1000)
    index.refresh(conn)
    assert index.mode == "hnsw" and len(index) == n
    exact = ev.VectorIndex(MODEL, threshold=10**9)
    exact.refresh(conn)
    queries = clustered(rng, 60, dim)
    assert recall(index, exact, queries, conn=conn) >= 0.95
    assert recall(index, exact, queries) >= 0.9  # the int8 graph's own scores: coarser
    q = queries[0]
    exact_scores = dict(exact.search(q, n))
    hits = index.search(q, 10, conn=conn)  # re-scored: the same scores as exact search
    assert len(hits) == 10
    assert all(s == pytest.approx(exact_scores[i], abs=1e-6) for i, s in hits)
    sidecar = json.loads(next(folder.glob("vectors-*.json")).read_text())
    assert sidecar["model"] == MODEL and sidecar["count"] == n and sidecar["dim"] == dim
    assert sidecar["seq"] == index.watermark

    # after the save: one update and one new vector, caught up after the reopen
    [new] = add_items(lib, 1)
    v_new, v_moved = unit(rng, 2, dim)
    put(lib, MODEL, {new: v_new, ids[3]: v_moved})
    reopened = ev.VectorIndex(MODEL, folder, threshold=1000)
    no_full_build(reopened, monkeypatch)
    assert reopened.refresh(conn)
    assert reopened.last_load_s is not None and reopened.mode == "hnsw"
    assert len(reopened) == n + 1
    assert reopened.search(v_new, 1, conn=conn)[0][0] == new
    assert reopened.search(v_moved, 1, conn=conn)[0][0] == ids[3]
    exact.refresh(conn)
    assert recall(reopened, exact, queries, conn=conn) >= 0.95


@pytest.mark.parametrize("damage", ["settings", "seq_ahead", "bad_json", "no_file", "truncated"])
def test_a_saved_index_that_does_not_match_is_rebuilt(lib: Library, damage: str) -> None:
    rng = np.random.default_rng(4)
    ids = add_items(lib, 300)
    put(lib, MODEL, dict(zip(ids, unit(rng, 300, 16), strict=True)))
    folder = lib.root / "index"
    first = ev.VectorIndex(MODEL, folder, threshold=100)
    first.refresh(lib.catalog.conn)
    [sidecar] = folder.glob("vectors-*.json")
    meta = json.loads(sidecar.read_text())
    graph = folder / meta["file"]
    kwargs: dict[str, Any] = {}
    if damage == "settings":
        kwargs["connectivity"] = 8
    elif damage == "seq_ahead":
        sidecar.write_text(json.dumps({**meta, "seq": meta["seq"] + 5}))
    elif damage == "bad_json":
        sidecar.write_text("{not json")
    elif damage == "no_file":
        graph.unlink()
    else:
        graph.write_bytes(graph.read_bytes()[:100])
    again = ev.VectorIndex(MODEL, folder, threshold=100, **kwargs)
    again.refresh(lib.catalog.conn)
    assert again.last_load_s is None and again.last_build_s is not None
    assert again.mode == "hnsw" and len(again) == 300
    assert again.search(unit(rng, 1, 16)[0], 3, conn=lib.catalog.conn)
    # the rebuild was saved over the bad one, and it loads
    third = ev.VectorIndex(MODEL, folder, threshold=100, **kwargs)
    third.refresh(lib.catalog.conn)
    assert third.last_load_s is not None and len(third) == 300
    assert len(list(folder.glob("vectors-*.usearch"))) == 1


def test_exact_index_switches_to_hnsw_past_the_threshold(lib: Library) -> None:
    rng = np.random.default_rng(5)
    ids = add_items(lib, 500)
    x = unit(rng, 500, 24)
    put(lib, MODEL, dict(zip(ids[:250], x[:250], strict=True)))
    index = ev.VectorIndex(MODEL, lib.root / "index", threshold=300)
    index.refresh(lib.catalog.conn)
    assert index.mode == "exact"
    assert not list((lib.root / "index").glob("*.usearch"))  # exact is not saved
    put(lib, MODEL, dict(zip(ids[250:], x[250:], strict=True)))
    index.refresh(lib.catalog.conn)
    assert index.mode == "hnsw" and len(index) == 500
    assert list((lib.root / "index").glob("*.usearch"))
    assert index.search(x[400], 1, conn=lib.catalog.conn)[0][0] == ids[400]
    with lib.catalog.write() as c:
        next_seq(c)
        c.execute("DELETE FROM vectors WHERE item_id IN (?, ?)", (ids[400], ids[401]))
    index.refresh(lib.catalog.conn, deletions=True)
    assert len(index) == 498
    assert ids[400] not in [h[0] for h in index.search(x[400], 10, conn=lib.catalog.conn)]


def test_background_build_keeps_answering_and_merges_changes(lib: Library) -> None:
    rng = np.random.default_rng(6)
    ids = add_items(lib, 2000)
    x = unit(rng, 2000, 32)
    put(lib, MODEL, dict(zip(ids[:1500], x[:1500], strict=True)))
    index = ev.VectorIndex(MODEL, lib.root / "index", threshold=100, background=True)
    conn = lib.catalog.conn
    index.refresh(conn)
    assert index.search(x[10], 1, conn=conn)[0][0] == ids[10]  # exact or graph: answers
    # changes while the graph may still be building: new rows, an update, a deletion
    put(lib, MODEL, dict(zip(ids[1500:], x[1500:], strict=True)))
    moved = unit(rng, 1, 32)[0]
    put(lib, MODEL, {ids[20]: moved})
    with lib.catalog.write() as c:
        next_seq(c)
        c.execute("DELETE FROM vectors WHERE item_id = ?", (ids[30],))
    index.refresh(conn)
    assert index.wait_ready(timeout=30)
    index.refresh(conn, deletions=True)
    assert index.mode == "hnsw" and index.build_error is None
    assert len(index) == 1999
    assert index.search(moved, 1, conn=conn)[0][0] == ids[20]
    assert index.search(x[1900], 1, conn=conn)[0][0] == ids[1900]
    assert ids[30] not in index.ids().tolist()
    deadline = time.monotonic() + 10
    while not list((lib.root / "index").glob("*.usearch")) and time.monotonic() < deadline:
        index.refresh(conn)
        time.sleep(0.05)
    assert list((lib.root / "index").glob("*.usearch"))


# -- similar --------------------------------------------------------------------------------


def test_similar_json_order_and_errors(lib: Library) -> None:
    rng = np.random.default_rng(7)
    ids = add_items(lib, 60)
    [doc] = add_items(lib, 1, kind="document")
    x = unit(rng, 61, 16)
    x[1] = x[0] + 0.05 * x[1]  # item 2 is item 1's near-duplicate
    put(lib, MODEL, dict(zip([*ids, doc], x, strict=True)))
    indexes = ev.VectorIndexes(lib.root)
    conn = lib.catalog.conn
    found = ev.similar(conn, indexes, ids[0], limit=10)
    assert len(found) == 10
    assert all(set(hit) == {"id", "paths", "kind", "score"} for hit in found)
    assert ids[0] not in [hit["id"] for hit in found]
    assert found[0]["id"] == ids[1] and found[0]["score"] > 0.99
    scores = [hit["score"] for hit in found]
    assert scores == sorted(scores, reverse=True)
    assert all(isinstance(s, float) and round(s, 4) == s for s in scores)
    assert [hit["id"] for hit in found] == brute_force(lib, MODEL, x[0], 11)[1:]
    second = found[0]
    assert second["paths"] == [f"/p/{ids[1]}.jpg"] and second["kind"] == "photo"
    first_odd = next(hit for hit in found if hit["id"] % 2)
    assert first_odd["paths"] == [f"/p/{first_odd['id']}.jpg"]  # missing paths left out
    everything = ev.similar(conn, indexes, doc, limit=100)
    assert len(everything) == 60 and doc not in [h["id"] for h in everything]
    assert json.loads(json.dumps(found)) == found

    [bare] = add_items(lib, 1)
    with pytest.raises(LookupError, match=f"Item {bare} has no embedding yet"):
        ev.similar(conn, indexes, bare)
    with pytest.raises(LookupError, match="There is no item 999"):
        ev.similar(conn, indexes, 999)
    with pytest.raises(ValueError, match="at least 1"):
        ev.similar(conn, indexes, ids[0], limit=0)
    assert indexes.get(MODEL) is indexes.get(MODEL)
    assert indexes.models_for_item(conn, ids[0]) == [MODEL]


def test_similar_model_choice_during_a_reindex(lib: Library) -> None:
    rng = np.random.default_rng(8)
    ids = add_items(lib, 40)
    put(lib, MODEL, dict(zip(ids, unit(rng, 40, 16), strict=True)))  # the old model
    put(lib, OTHER, dict(zip(ids[:10], unit(rng, 10, 24), strict=True)))  # re-index begun
    indexes = ev.VectorIndexes(lib.root)
    conn = lib.catalog.conn

    def result_ids(item: int, preferred: str | None) -> set[int]:
        return {h["id"] for h in ev.similar(conn, indexes, item, 100, preferred_model=preferred)}

    # no preference: the model with the most vectors (the old one) answers for all 40
    assert result_ids(ids[0], None) == set(ids[1:])
    assert ev.choose_model(conn, [MODEL, OTHER]) == MODEL
    # preferred and present: the new model, over the items it has reached
    assert result_ids(ids[0], OTHER) == set(ids[1:10])
    # preferred but not reached yet for this item: the old model keeps answering
    assert result_ids(ids[20], OTHER) == set(ids) - {ids[20]}
    # the re-index overtakes the old model: it is chosen without a preference too
    put(lib, OTHER, dict(zip(ids[10:], unit(rng, 30, 24), strict=True)))
    with lib.catalog.write() as c:
        next_seq(c)
        ev.delete_other_models(c, ids[:25], OTHER)
    assert ev.choose_model(conn, [MODEL, OTHER]) == OTHER
    assert result_ids(ids[30], None) == set(ids) - {ids[30]}
    assert ev.item_models(conn, ids[30]) == [MODEL, OTHER]
    assert result_ids(ids[0], MODEL) == set(ids) - {ids[0]}  # the old index caught up


def test_indexes_save_and_close(lib: Library) -> None:
    rng = np.random.default_rng(9)
    ids = add_items(lib, 400)
    put(lib, MODEL, dict(zip(ids, unit(rng, 400, 16), strict=True)))
    indexes = ev.VectorIndexes(lib.root, threshold=100)
    index = indexes.get(MODEL)
    index.refresh(lib.catalog.conn)
    [first] = (lib.root / "index").glob("*.usearch")
    put(lib, MODEL, {ids[0]: unit(rng, 1, 16)[0]})
    index.refresh(lib.catalog.conn)  # one change: below the save interval
    assert list((lib.root / "index").glob("*.usearch")) == [first]
    indexes.close()  # saves what changed
    [second] = (lib.root / "index").glob("*.usearch")
    assert second != first
    meta = json.loads(next((lib.root / "index").glob("*.json")).read_text())
    assert meta["seq"] == index.watermark and meta["file"] == second.name


def test_replacing_every_vector_rebuilds_the_graph(lib: Library) -> None:
    rng = np.random.default_rng(10)
    ids = add_items(lib, 1100)
    put(lib, MODEL, dict(zip(ids, unit(rng, 1100, 16), strict=True)))
    index = ev.VectorIndex(MODEL, threshold=100)
    conn = lib.catalog.conn
    index.refresh(conn)
    rebuilt: list[int] = []
    rebuild = index._rebuild

    def counting(c: Any) -> None:
        rebuilt.append(len(index))
        rebuild(c)

    index._rebuild = counting  # type: ignore[method-assign]
    x = unit(rng, 1100, 16)
    put(lib, MODEL, dict(zip(ids, x, strict=True)))  # every vector replaced once
    index.refresh(conn)
    assert rebuilt == [] and index._removed == 1100  # usearch reuses the slots
    put(lib, MODEL, {ids[0]: x[0] * -1})  # one more removal tips it over
    index.refresh(conn)
    assert rebuilt == [1100] and index._removed == 0
    assert index.mode == "hnsw" and len(index) == 1100
    assert index.search(x[500], 1, conn=conn)[0][0] == ids[500]
    assert index.search(-x[0], 1, conn=conn)[0][0] == ids[0]
