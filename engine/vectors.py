"""Stored embeddings and the one vector index behind `similar`.

Vectors live in the catalog's `vectors` table: one L2-normalised float16 vector per
(item, model spec), with the change number (`seq`) of the transaction that wrote it.
A `VectorIndex` keeps one model's vectors searchable in memory and catches up with
the catalog by that number, so a refresh after a few new embeddings reads only those.

Two ways to search, picked by size:

- exact: a contiguous float16 matrix, scanned by usearch's brute-force kernel, which
  reads float16 directly (numpy in float32 blocks where usearch is missing; memory
  stays bounded either way); perfect results, cost linear in the count.
- HNSW (usearch, int8 storage, cosine): an approximate graph index for
  libraries above `HNSW_THRESHOLD` vectors, updated in place (add/remove by item id)
  and saved under `<library>/index/` with a JSON sidecar holding its watermark, so a
  restart loads it instead of rebuilding. When the caller passes a connection, the
  candidates are re-scored exactly from the catalog's float16 vectors, so scores are
  the same in both modes.

Cosine similarity is the dot product (vectors are normalised). Everything here is
safe to call from several threads: refreshes take turns, searches run between the
steps of a refresh.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.store.db import current_seq

log = logging.getLogger(__name__)

F16 = np.dtype("<f2")

# Above this many vectors a model's index is an HNSW graph; at or below, exact search.
# Measured on the 2-core dev VM (AMD EPYC, shared with other work, so +-30%), 512-d
# clustered vectors, one query at a time as `similar` asks (candidates re-checked
# against the catalog), through this module with the settings below
# (`bench/similar_latency.py --sweep`; 1M: the full run). p50 exact / HNSW, and
# HNSW's recall@10 against exact:
#      1,000: 0.5 / 0.7 ms (1.00)       50,000:  4.6 / 4.3 ms (0.96)
#      5,000: 0.7 / 0.9 ms (0.99)      100,000:  7-13 / 5-6 ms (0.97)
#     10,000: 1.9 / 2.9 ms (0.96)      200,000: 12-13 / 7 ms (0.97)
#     20,000: 1.9 / 2.6 ms (0.93)    1,000,000: 77-122 / 6-15 ms (0.96)
# They cross between 50,000 and 100,000. Up to the top of that range exact costs at most
# a few ms more, finds every true neighbour (HNSW misses 3-7%), needs no graph build
# (16 s at 100,000) and no file; past it, exact soon leaves the 20 ms budget.
HNSW_THRESHOLD = 100_000

# HNSW build and search settings, tuned on 1,000,000 512-d vectors, 2 cores
# (bench/similar_latency.py). i8 storage: a quarter of float32's memory (630 MB file,
# ~740 MB resident at 1M), and the build ~1.6x faster than bfloat16 (VNNI dot products;
# 38 vs 62 s at 100,000) at the same recall once candidates are re-scored exactly
# (0.953 vs 0.957 at ef 256). Cosine, not inner product: usearch's i8 inner product is
# not on the cosine scale. Connectivity 16 and expansion_add 64 keep the 1M build at
# ~10 min (617 s; 811 CPU-s). The search makes up for the lighter graph with a wide
# beam; at 1M, re-scored, recall@10 / warm p50: ef 256 0.946 / 5.2 ms, 384 0.948 /
# 5.7 ms, 512 0.959 / 6.0 ms, 768 0.974 / 11 ms (the budget is 20 ms).
HNSW_DTYPE = "i8"
HNSW_CONNECTIVITY = 16
HNSW_EXPANSION_ADD = 64
HNSW_EXPANSION_SEARCH = 512
HNSW_FORMAT = 1  # bump when the saved index's layout or meaning changes

# With a connection, HNSW fetches this many times `k` candidates and re-scores them
# exactly from the catalog (one indexed read of 40 rows for k=10: ~2 ms warm, ~4 ms
# cold at 1M): it lifts recall@10 by ~1-3 points over the graph's own int8 ranking.
RERANK_FACTOR = 4

# Rows read from the catalog per step of a refresh (about 20 MB of 512-d vectors);
# searches may run between steps.
PAGE_ROWS = 20_000
# Rows scored per numpy block in exact search without usearch (4 MB of float32 at
# 512-d), and the extra candidates exact search re-scores in float32.
EXACT_BLOCK_ROWS = 2_048
EXACT_MARGIN = 8

# How often (at most) a refresh counts the model's rows to find deletions, when no
# search has met a deleted vector (55-240 ms at 1,000,000 rows, by the machine's load;
# searches with a connection never return a deleted vector anyway).
DELETION_CHECK_S = 30.0

# An HNSW index is saved again after this many changes (or a tenth of its size, if
# more) since the last save; changes not yet saved are caught up from the catalog
# after a restart, so saving less often only costs a longer catch-up.
SAVE_EVERY_CHANGES = 10_000

_MAX_ID = (1 << 63) - 1

# The tables a VectorIndex can serve, with their key column: `vectors` holds one vector
# per item (images), `text_vectors` one per passage of a document's text (key =
# item_id << CHUNK_BITS | chunk number, see engine/search/textvectors.py).
VECTOR_TABLES: dict[str, str] = {"vectors": "item_id", "text_vectors": "key"}

# What `VectorIndex._rebuild` swaps in from the index built on the side.
_STATE = ("_dim", "_seq", "_matrix", "_ids", "_n", "_pos", "_hnsw", "_hnsw_size", "_removed")


class ItemNotFoundError(LookupError):
    """The item asked about is not in the catalog."""


class NoEmbeddingError(LookupError):
    """The item exists but has no stored vector (its embed job has not run yet)."""


# -- encoding and storage --------------------------------------------------------------


def encode_vector(v: npt.ArrayLike) -> bytes:
    """`v` L2-normalised as float16 little-endian bytes (the `vectors.vector` format)."""
    a = np.asarray(v, dtype=np.float32).reshape(-1)
    if a.size == 0:
        raise ValueError("cannot store an empty vector")
    norm = float(np.linalg.norm(a))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("cannot store a vector whose length is zero or not finite")
    return (a / norm).astype(F16).tobytes()


def decode_vector(b: bytes, dim: int) -> npt.NDArray[np.float32]:
    """A stored vector as float32 (a new array)."""
    if len(b) != 2 * dim:
        raise ValueError(f"a {dim}-d vector takes {2 * dim} bytes, not {len(b)}")
    return np.frombuffer(b, dtype=F16).astype(np.float32)


def store_vectors(
    conn: sqlite3.Connection,
    rows: Sequence[tuple[int, str, npt.ArrayLike, str]],
    seq: int,
) -> None:
    """Upsert (item_id, model, vector, digest) rows inside the caller's write transaction.

    `seq` is that transaction's `next_seq`. Vectors of other models stay (results keep
    serving from the old model during a re-index; `delete_other_models` drops them).
    All vectors of one model must have the same dimension.
    """
    if not rows:
        return
    encoded: list[tuple[int, str, int, bytes, str, int]] = []
    dims: dict[str, int] = {}
    for item_id, model, vector, digest in rows:
        blob = encode_vector(vector)
        dim = len(blob) // 2
        if dims.setdefault(model, dim) != dim:
            raise ValueError(f"vectors of {model} differ in size ({dims[model]} and {dim})")
        encoded.append((int(item_id), model, dim, blob, digest, seq))
    for model, dim in dims.items():
        row = conn.execute("SELECT dim FROM vectors WHERE model = ? LIMIT 1", (model,)).fetchone()
        if row is not None and int(row[0]) != dim:
            raise ValueError(
                f"{model} vectors in the catalog have {int(row[0])} dimensions, not {dim}"
            )
    conn.executemany(
        """INSERT INTO vectors (item_id, model, dim, vector, digest, seq)
           VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (item_id, model) DO UPDATE SET
               dim = excluded.dim, vector = excluded.vector,
               digest = excluded.digest, seq = excluded.seq""",
        encoded,
    )


def delete_other_models(conn: sqlite3.Connection, item_ids: Sequence[int], model: str) -> int:
    """Drop these items' vectors of every model but `model` (after a re-index has
    reached them); inside the caller's write transaction, which takes a `next_seq` as
    every write does, so the indexes notice. Returns how many rows went."""
    deleted = 0
    ids = [int(i) for i in item_ids]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        cur = conn.execute(
            f"DELETE FROM vectors WHERE model != ? AND item_id IN ({marks})", (model, *chunk)
        )
        deleted += cur.rowcount
    return deleted


def item_models(conn: sqlite3.Connection, item_id: int) -> list[str]:
    """The models an item has a vector for, by name."""
    return [
        str(r[0])
        for r in conn.execute(
            "SELECT model FROM vectors WHERE item_id = ? ORDER BY model", (item_id,)
        )
    ]


def model_counts(conn: sqlite3.Connection, models: Sequence[str]) -> dict[str, int]:
    """How many vectors each model has (a scan of the `vectors_model_seq` index)."""
    return {
        m: int(conn.execute("SELECT count(*) FROM vectors WHERE model = ?", (m,)).fetchone()[0])
        for m in models
    }


@contextlib.contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A read transaction (one consistent view), or the caller's transaction."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def _plain(conn: sqlite3.Connection) -> sqlite3.Cursor:
    """A cursor returning plain tuples (sqlite3.Row costs ~0.4 µs a row)."""
    cur = conn.cursor()
    cur.row_factory = None
    return cur


def safe_name(model: str) -> str:
    """A file name for a model spec: readable, and distinct for distinct specs."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._")[:80]
    return f"{readable}-{hashlib.sha256(model.encode()).hexdigest()[:10]}"


# -- the index --------------------------------------------------------------------------


def _exact_top(
    matrix: npt.NDArray[np.float16], q: npt.NDArray[np.float32], count: int
) -> npt.NDArray[np.int64]:
    """Rows of the `count` best dot products with `q` (unordered, maybe a few extra).

    usearch's brute-force kernel reads float16 directly (SIMD): ~7x faster than numpy,
    which must convert each block to float32 first (measured 4.1 vs 33 ms at 30,000
    512-d rows). numpy is the fallback where usearch is not installed.
    """
    n = matrix.shape[0]
    count = min(count, n)
    if _USEARCH_EXACT:
        from usearch.index import search as brute_force

        found: Any = brute_force(matrix, q, count, "ip", exact=True, threads=0)
        return np.asarray(found.keys, dtype=np.int64).reshape(-1)[:count]
    scores = np.empty(n, dtype=np.float32)
    block = np.empty((min(EXACT_BLOCK_ROWS, n), q.size), dtype=np.float32)
    for start in range(0, n, EXACT_BLOCK_ROWS):
        stop = min(n, start + EXACT_BLOCK_ROWS)
        part = block[: stop - start]
        np.copyto(part, matrix[start:stop])
        np.dot(part, q, out=scores[start:stop])
    if count >= n:
        return np.arange(n, dtype=np.int64)
    return np.argpartition(-scores, count - 1)[:count].astype(np.int64)


def _usearch_available() -> bool:
    try:
        import usearch.index  # noqa: F401
    except ImportError:
        return False
    return True


_USEARCH_EXACT = _usearch_available()


class VectorIndex:
    """One model's vectors, searchable; `refresh(conn)` catches up with the catalog.

    Exact below `threshold` vectors, HNSW above. With `background`, a graph is built
    on a thread of its own while exact search keeps answering (for long-lived
    processes: the GUI, the worker host); without, the refresh that crosses the
    threshold builds it (`shoebox similar` in a fresh library waits for it once).
    """

    def __init__(
        self,
        model: str,
        directory: Path | None = None,
        *,
        threshold: int = HNSW_THRESHOLD,
        background: bool = False,
        connectivity: int = HNSW_CONNECTIVITY,
        expansion_add: int = HNSW_EXPANSION_ADD,
        expansion_search: int = HNSW_EXPANSION_SEARCH,
        dtype: str = HNSW_DTYPE,
        table: str = "vectors",
    ) -> None:
        if table not in VECTOR_TABLES:
            raise ValueError(f"unknown vector table {table!r}")
        self.model = model
        self.table = table
        self._key = VECTOR_TABLES[table]
        self.directory = directory
        self.threshold = threshold
        self.background = background
        self.connectivity = connectivity
        self.expansion_add = expansion_add
        self.dtype = dtype
        self.metric = "cos" if dtype == "i8" else "ip"  # on unit vectors the same order
        self._expansion_search = expansion_search
        # One refresh (or save) at a time; reentrant: saving and an inline graph build
        # run inside the refresh that started them.
        self._refresh_lock = threading.RLock()
        self._lock = threading.RLock()  # guards the searchable state
        self._dim: int | None = None
        self._seq = -1  # catalog seq this index is complete up to; -1: nothing loaded
        # exact store (also what a graph is built from)
        self._matrix: npt.NDArray[np.float16] = np.empty((0, 0), dtype=F16)
        self._ids: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self._n = 0
        self._pos: dict[int, int] = {}
        # HNSW
        self._hnsw: Any = None
        self._hnsw_size = 0
        self._removed = 0  # removals since the graph was built (they leave tombstones)
        self._builder: threading.Thread | None = None
        self._dirty: set[int] | None = None  # ids changed while a graph is being built
        self.build_error: str | None = None  # why the last graph build failed
        self._unsaved = 0  # changes since the index was last saved
        self._built = False  # a graph was built since the last save: save it
        self._checked_at = -float("inf")  # when deletions were last looked for
        self._stale = False  # a search met a vector that is gone: look for deletions
        self.last_load_s: float | None = None  # how long loading the saved index took
        self.last_build_s: float | None = None  # the last full read (+ inline graph build)
        self.last_graph_s: float | None = None  # the last graph build

    # -- facts ---------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """The search in use: "hnsw", or "exact" (also while a graph is being built)."""
        return "hnsw" if self._hnsw is not None else "exact"

    @property
    def dim(self) -> int | None:
        return self._dim

    @property
    def watermark(self) -> int:
        """The catalog seq this index has caught up to (-1 before the first refresh)."""
        return self._seq

    def __len__(self) -> int:
        with self._lock:
            return self._hnsw_size if self._hnsw is not None else self._n

    @property
    def expansion_search(self) -> int:
        return self._expansion_search

    @expansion_search.setter
    def expansion_search(self, value: int) -> None:
        with self._lock:
            self._expansion_search = value
            if self._hnsw is not None:
                self._hnsw.expansion_search = value

    def ids(self) -> npt.NDArray[np.int64]:
        """The item ids in the index (a copy), in no particular order."""
        with self._lock:
            if self._hnsw is not None:
                return np.asarray(self._hnsw.keys, dtype=np.int64).copy()
            return self._ids[: self._n].copy()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait for a background graph build; returns whether none is running."""
        builder = self._builder
        if builder is not None:
            builder.join(timeout)
            return not builder.is_alive()
        return True

    # -- catching up ---------------------------------------------------------------------

    def refresh(self, conn: sqlite3.Connection, *, deletions: bool | None = None) -> bool:
        """Catch up with the catalog: rows written since the watermark, then deletions.

        Costs one indexed read when nothing changed since the last refresh, a read of
        the new rows when some did. Deletions are found by counting the model's rows
        (~0.1 s at 1,000,000): with `deletions=None` that count runs after a search
        met a vector that is gone, and otherwise at most every `DELETION_CHECK_S`;
        True counts now, False not. Returns whether the index changed (a load from
        disk counts).
        """
        with self._refresh_lock:
            seq = current_seq(conn)
            if seq == self._seq and not (self._stale or deletions):
                return False
            if seq < self._seq:  # catalog rolled back (power cut, restored copy)
                log.warning("catalog seq went back (%d < %d): rebuilding", seq, self._seq)
                self.wait_ready()
                self._reset()
            changed = False
            if self._seq < 0 and self.directory is not None:
                changed = self._load_saved(seq)
            if self._seq < 0:
                self._full_build(conn)
                changed = True
                deletions = True  # rows deleted after the build read their page
            if deletions is None:
                deletions = self._stale or (time.monotonic() - self._checked_at >= DELETION_CHECK_S)
            changed = self._catch_up(conn, deletions) or changed
            if self._hnsw is not None and self._removed > max(self._hnsw_size, 1000):
                # As many removals as vectors (a re-embedding with new weights under
                # the same spec): usearch reuses the slots, but the graph degrades
                # (measured: recall 0.86 -> 0.79 after every vector was replaced once).
                log.info("%s: %d removals since the build: rebuilding", self.model, self._removed)
                self._rebuild(conn)
            if self._hnsw is not None and (
                self._built or self._unsaved >= max(SAVE_EVERY_CHANGES, self._hnsw_size // 10)
            ):
                self._save()
            return changed

    def _reset(self) -> None:
        with self._lock:
            self._dim = None
            self._seq = -1
            self._matrix = np.empty((0, 0), dtype=F16)
            self._ids = np.empty(0, dtype=np.int64)
            self._n = 0
            self._pos = {}
            self._hnsw = None
            self._hnsw_size = 0
            self._removed = 0
            self._dirty = None
            self._unsaved = 0
            self._built = False

    def _rebuild(self, conn: sqlite3.Connection) -> None:
        """A new index built on the side (inline, even with `background`) while this
        one keeps answering, then swapped in."""
        self.wait_ready()
        fresh = VectorIndex(
            self.model,
            None,
            threshold=self.threshold,
            connectivity=self.connectivity,
            expansion_add=self.expansion_add,
            expansion_search=self._expansion_search,
            dtype=self.dtype,
        )
        fresh._full_build(conn)
        fresh._catch_up(conn, True)
        with self._lock:
            for name in _STATE:
                setattr(self, name, getattr(fresh, name))
            self._dirty = None
            self._built = self._hnsw is not None
        self.last_build_s = fresh.last_build_s
        self.last_graph_s = fresh.last_graph_s

    def _full_build(self, conn: sqlite3.Connection) -> None:
        """Every vector of the model, read in pages by item id (no long read
        transaction); rows written meanwhile are caught up afterwards."""
        self.wait_ready()  # the builder needs only `_lock`: no deadlock
        started = time.perf_counter()
        with _snapshot(conn):
            start_seq = current_seq(conn)
            total = self._count(conn)
            row = conn.execute(
                f"SELECT dim FROM {self.table} WHERE model = ? LIMIT 1", (self.model,)
            ).fetchone()
        self._reset()
        if row is not None:
            self._dim = int(row[0])
        if self._dim is not None and total > self.threshold and not self.background:
            # Straight into the graph: no float16 copy of everything on the side.
            self._hnsw = self._new_hnsw(self._dim)
            self._built = True
        after = 0
        while True:
            with _snapshot(conn):
                # `+model`: walk the primary key from `after`; the (model, seq) index
                # would sort every remaining row of the model for each page.
                page = (
                    _plain(conn)
                    .execute(
                        f"""SELECT {self._key}, dim, vector FROM {self.table}
                           WHERE +model = ? AND {self._key} > ? ORDER BY {self._key} LIMIT ?""",
                        (self.model, after, PAGE_ROWS),
                    )
                    .fetchall()
                )
            if not page:
                break
            after = int(page[-1][0])
            self._apply(page)
            if len(page) < PAGE_ROWS:
                break
        self._seq = start_seq
        self.last_build_s = time.perf_counter() - started
        if self._hnsw is not None:
            self.last_graph_s = self.last_build_s
        log.info(
            "%s: read %d vectors into a %s index in %.1f s",
            self.model,
            len(self),
            self.mode,
            self.last_build_s,
        )

    def _catch_up(self, conn: sqlite3.Connection, deletions: bool) -> bool:
        """Rows with seq above the watermark, in (seq, item_id) pages; the last page,
        the count (with `deletions`) and the new watermark come from one snapshot, so
        a count below the index's size means rows were deleted."""
        cursor = (self._seq, _MAX_ID)
        changed = False
        count, seq_now = 0, self._seq
        while True:
            with _snapshot(conn):
                # A row value: SQLite seeks the (model, seq) index to the cursor (with
                # `seq >= ? AND (seq > ? OR ...)` it read every row of the last seq).
                page = (
                    _plain(conn)
                    .execute(
                        f"""SELECT {self._key}, dim, vector, seq FROM {self.table}
                           WHERE model = ? AND (seq, {self._key}) > (?, ?)
                           ORDER BY seq, {self._key} LIMIT ?""",
                        (self.model, cursor[0], cursor[1], PAGE_ROWS),
                    )
                    .fetchall()
                )
                last = len(page) < PAGE_ROWS
                if last:
                    if deletions:
                        count = self._count(conn)
                    seq_now = current_seq(conn)
            if page:
                cursor = (int(page[-1][3]), int(page[-1][0]))
                if self._dim is None:
                    self._dim = int(page[0][1])
                self._apply(page)
                changed = True
            if last:
                break
        if deletions:
            self._checked_at, self._stale = time.monotonic(), False
            if count < len(self):
                self._remove_deleted(conn)
                changed = True
        self._seq = seq_now
        return changed

    def _apply(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Upsert (item_id, dim, vector, ...) rows (distinct ids)."""
        dim = self._dim
        assert dim is not None
        good = [r for r in rows if int(r[1]) == dim and len(r[2]) == 2 * dim]
        if len(good) != len(rows):
            log.warning("%s: %d vectors skipped (not %d-d)", self.model, len(rows) - len(good), dim)
        if not good:
            return
        ids = np.fromiter((int(r[0]) for r in good), dtype=np.int64, count=len(good))
        vectors = np.frombuffer(b"".join(r[2] for r in good), dtype=F16).reshape(-1, dim)
        with self._lock:  # a background build may swap the graph in at any moment
            live = self._hnsw is not None
            if not live:
                self._exact_upsert(ids, vectors)
        if live:  # once live, a graph stays (only a refresh resets)
            self._hnsw_upsert(ids, vectors)
        elif self._n > self.threshold and self._builder is None and self.build_error is None:
            self._start_graph()
        self._unsaved += len(good)

    def _exact_upsert(self, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float16]) -> None:
        dim = vectors.shape[1]
        with self._lock:
            if self._dirty is not None:
                self._dirty.update(ids.tolist())
            fresh: list[int] = []
            for row, item_id in enumerate(ids.tolist()):
                at = self._pos.get(item_id)
                if at is None:
                    fresh.append(row)
                else:
                    self._matrix[at] = vectors[row]
            if not fresh:
                return
            need = self._n + len(fresh)
            if need > self._matrix.shape[0] or self._matrix.shape[1] != dim:
                # New arrays (never resized in place): a graph build may be reading
                # the old ones.
                cap = max(need, 2 * self._matrix.shape[0], 1024)
                matrix = np.empty((cap, dim), dtype=F16)
                grown_ids = np.empty(cap, dtype=np.int64)
                if self._n:
                    matrix[: self._n] = self._matrix[: self._n]
                    grown_ids[: self._n] = self._ids[: self._n]
                self._matrix, self._ids = matrix, grown_ids
            take = np.asarray(fresh, dtype=np.int64)
            self._matrix[self._n : need] = vectors[take]
            self._ids[self._n : need] = ids[take]
            for offset, item_id in enumerate(ids[take].tolist()):
                self._pos[item_id] = self._n + offset
            self._n = need

    def _new_hnsw(self, dim: int) -> Any:
        from usearch.index import Index

        return Index(
            ndim=dim,
            metric=self.metric,
            dtype=self.dtype,
            connectivity=self.connectivity,
            expansion_add=self.expansion_add,
            expansion_search=self._expansion_search,
        )

    def _hnsw_upsert(
        self, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float16], graph: Any = None
    ) -> None:
        """Into the live graph (under the lock, in slices so that searches get it in
        between), or into `graph` while it is being built (no lock: private)."""
        keys = ids.astype(np.uint64)
        live = graph is None
        for start in range(0, len(keys), 4096):
            k, v = keys[start : start + 4096], vectors[start : start + 4096]
            with self._lock if live else contextlib.nullcontext():
                g = self._hnsw if live else graph
                present = np.asarray(g.contains(k), dtype=bool).reshape(-1)
                if present.any():
                    g.remove(k[present])
                    if live:
                        self._removed += int(present.sum())
                g.add(k, v, threads=0)
                if live:
                    self._hnsw_size = len(g)

    def _start_graph(self) -> None:
        """The exact store grew past the threshold: build a graph from it, on a thread
        of its own if `background` (exact search answers meanwhile)."""
        with self._lock:
            self._dirty = set()
        if not self.background:
            self._build_graph()
            return
        self._builder = threading.Thread(
            target=self._build_graph, name=f"vector-index {self.model}", daemon=True
        )
        self._builder.start()

    def _build_graph(self) -> None:
        assert self._dim is not None
        started = time.perf_counter()
        try:
            with self._lock:
                ids, matrix, n = self._ids, self._matrix, self._n
            graph = self._new_hnsw(self._dim)
            for start in range(0, n, PAGE_ROWS):
                stop = min(n, start + PAGE_ROWS)
                graph.add(ids[start:stop].astype(np.uint64), matrix[start:stop], threads=0)
            with self._lock:
                # What changed while the graph was built (rows read half-written
                # included): brought over from the exact store, then the swap. Only
                # `_lock`: every change to the exact store is made under it, and a
                # refresh may be waiting for this thread.
                dirty = sorted(self._dirty or ())
                self._dirty = None
                if self._dim == graph.ndim:
                    back = [i for i in dirty if i in self._pos]
                    if back:
                        rows = np.asarray([self._pos[i] for i in back], dtype=np.int64)
                        self._hnsw_upsert(
                            np.asarray(back, dtype=np.int64), self._matrix[rows], graph
                        )
                    gone = [i for i in dirty if i not in self._pos]
                    if gone:
                        keys = np.asarray(gone, dtype=np.uint64)
                        present = np.asarray(graph.contains(keys), dtype=bool).reshape(-1)
                        if present.any():
                            graph.remove(keys[present])
                    self._hnsw, self._hnsw_size, self._removed = graph, len(graph), 0
                    self._matrix = np.empty((0, 0), dtype=F16)
                    self._ids = np.empty(0, dtype=np.int64)
                    self._n, self._pos = 0, {}
                    self._built = True
                    self._unsaved = self._hnsw_size
                self.last_graph_s = time.perf_counter() - started
                log.info(
                    "%s: HNSW graph of %d vectors built in %.1f s",
                    self.model,
                    self._hnsw_size,
                    self.last_graph_s,
                )
            # Saved now if no refresh is running, else at the end of that refresh.
            if self.background and self._refresh_lock.acquire(blocking=False):
                try:
                    if self._hnsw is graph:
                        self._save()
                finally:
                    self._refresh_lock.release()
        except Exception as exc:  # exact search keeps answering
            log.exception("%s: HNSW graph build failed", self.model)
            with self._lock:
                self._dirty = None
            self.build_error = str(exc) or type(exc).__name__
        finally:
            if threading.current_thread() is self._builder:
                self._builder = None

    def _remove_deleted(self, conn: sqlite3.Connection) -> None:
        present = np.fromiter(
            (
                r[0]
                for r in _plain(conn).execute(
                    f"SELECT {self._key} FROM {self.table} WHERE model = ?", (self.model,)
                )
            ),
            dtype=np.int64,
        )
        with self._lock:
            if self._hnsw is not None:
                keys = np.asarray(self._hnsw.keys, dtype=np.int64)
                gone = np.setdiff1d(keys, present, assume_unique=True)
                if gone.size:
                    self._hnsw.remove(gone.astype(np.uint64))
                    self._removed += int(gone.size)
                    self._unsaved += int(gone.size)
                self._hnsw_size = len(self._hnsw)
            else:
                ids = self._ids[: self._n]
                keep = np.isin(ids, present)
                if self._dirty is not None:
                    self._dirty.update(ids[~keep].tolist())
                self._unsaved += self._n - int(keep.sum())
                # New arrays, not compacted in place: a graph build may be reading.
                self._matrix = self._matrix[: self._n][keep]
                self._ids = ids[keep]
                self._n = len(self._ids)
                self._pos = {item_id: i for i, item_id in enumerate(self._ids.tolist())}

    def sample(
        self, conn: sqlite3.Connection, count: int, seed: int = 0
    ) -> npt.NDArray[np.float32]:
        """Up to `count` of the index's vectors chosen at random (float32 rows): a
        background to judge one query's scores against (engine/search/hybrid.py)."""
        with self._lock:
            if self._hnsw is None:
                n = self._n
                if n == 0:
                    return np.empty((0, self._dim or 0), dtype=np.float32)
                rng = np.random.default_rng(seed)
                rows = rng.choice(n, size=min(count, n), replace=False)
                return self._matrix[np.sort(rows)].astype(np.float32)
            keys = np.asarray(self._hnsw.keys, dtype=np.int64)
        if keys.size == 0:
            return np.empty((0, self._dim or 0), dtype=np.float32)
        rng = np.random.default_rng(seed)
        chosen = rng.choice(keys, size=min(count, keys.size), replace=False).tolist()
        blobs: list[bytes] = []
        for start in range(0, len(chosen), 500):
            chunk = chosen[start : start + 500]
            marks = ",".join("?" * len(chunk))
            blobs += [
                bytes(r[0])
                for r in _plain(conn).execute(
                    f"SELECT vector FROM {self.table} WHERE model = ? AND {self._key} IN ({marks})",
                    (self.model, *chunk),
                )
            ]
        dim = self._dim or 0
        blobs = [b for b in blobs if len(b) == 2 * dim]
        if not blobs:
            return np.empty((0, dim), dtype=np.float32)
        return np.frombuffer(b"".join(blobs), dtype=F16).reshape(-1, dim).astype(np.float32)

    def _count(self, conn: sqlite3.Connection) -> int:
        """The model's rows in the catalog (a scan of the (model, seq) index)."""
        sql = f"SELECT count(*) FROM {self.table} WHERE model = ?"
        return int(conn.execute(sql, (self.model,)).fetchone()[0])

    # -- searching -----------------------------------------------------------------------

    def search(
        self,
        query: npt.ArrayLike,
        k: int,
        exclude: Collection[int] = frozenset(),
        *,
        conn: sqlite3.Connection | None = None,
    ) -> list[tuple[int, float]]:
        """The `k` nearest items to `query` as (item_id, cosine), best first.

        Scores are float32 dot products of the stored float16 vectors. With `conn`, the
        candidates are checked against the catalog: re-scored from its vectors, and
        ones whose vector is gone (deleted since the last refresh) dropped, which has
        the next refresh look for deletions. Without, HNSW mode gives the graph's
        approximate (int8) scores.
        """
        if k <= 0:
            return []
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(q))
        if not np.isfinite(norm) or norm == 0.0:
            raise ValueError("the query vector's length is zero or not finite")
        q = q / norm
        with self._lock:
            if self._dim is not None and q.size != self._dim:
                raise ValueError(f"{self.model} vectors have {self._dim} dimensions, not {q.size}")
            if self._hnsw is None:
                hits = self._exact_search(q, k + (EXACT_MARGIN if conn is not None else 0), exclude)
            elif self._hnsw_size == 0:
                return []
            else:
                want = (RERANK_FACTOR * k if conn is not None else k) + len(exclude)
                found = self._hnsw.search(q, want)
                keys = np.asarray(found.keys, dtype=np.int64).reshape(-1).tolist()
                dists = np.asarray(found.distances, dtype=np.float64).reshape(-1).tolist()
                hits = [
                    (key, 1.0 - d) for key, d in zip(keys, dists, strict=True) if key not in exclude
                ]
        if conn is not None and hits:
            checked = self._rescore(conn, q, [h[0] for h in hits])
            if len(checked) < len(hits):
                self._stale = True
            hits = checked
        return hits[:k]

    def _exact_search(
        self, q: npt.NDArray[np.float32], k: int, exclude: Collection[int]
    ) -> list[tuple[int, float]]:
        n = self._n
        if n == 0:
            return []
        skip = {at for item_id in exclude if (at := self._pos.get(item_id)) is not None}
        # A few extra candidates, re-scored in float32: the kernel's float16 query
        # rounding cannot change the top k.
        rows = _exact_top(self._matrix[:n], q, k + len(skip) + EXACT_MARGIN)
        rows = np.asarray([r for r in rows.tolist() if r not in skip], dtype=np.int64)
        if rows.size == 0:
            return []
        scores = self._matrix[rows].astype(np.float32) @ q
        ids = self._ids[rows]
        order = np.lexsort((ids, -scores))[:k]
        return [
            (int(i), float(s))
            for i, s in zip(ids[order].tolist(), scores[order].tolist(), strict=True)
        ]

    def _rescore(
        self, conn: sqlite3.Connection, q: npt.NDArray[np.float32], ids: list[int]
    ) -> list[tuple[int, float]]:
        if not ids:
            return []
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows += (
                _plain(conn)
                .execute(
                    f"SELECT {self._key}, vector FROM {self.table}"
                    f" WHERE model = ? AND {self._key} IN ({marks})",
                    (self.model, *chunk),
                )
                .fetchall()
            )
        rows = [r for r in rows if len(r[1]) == 2 * q.size]
        if not rows:
            return []
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=F16).reshape(-1, q.size)
        scores = matrix.astype(np.float32) @ q
        found = np.asarray([r[0] for r in rows], dtype=np.int64)
        order = np.lexsort((found, -scores))
        return [(int(found[i]), float(scores[i])) for i in order.tolist()]

    # -- saving and loading --------------------------------------------------------------

    def _sidecar(self) -> Path:
        assert self.directory is not None
        return self.directory / f"{self.table}-{safe_name(self.model)}.json"

    def _settings(self) -> dict[str, Any]:
        return {
            "format": HNSW_FORMAT,
            "model": self.model,
            "dim": self._dim,
            "dtype": self.dtype,
            "metric": self.metric,
            "connectivity": self.connectivity,
            "expansion_add": self.expansion_add,
        }

    def save(self, *, only_if_changed: bool = False) -> bool:
        """Write the HNSW index and its sidecar (exact indexes are not saved: reading
        them from the catalog is as quick). Returns whether anything was written."""
        with self._refresh_lock:
            if only_if_changed and not (self._unsaved or self._built):
                return False
            return self._save()

    def _save(self) -> bool:
        with self._lock:
            graph, size, seq, removed = self._hnsw, self._hnsw_size, self._seq, self._removed
        if self.directory is None or graph is None or seq < 0:
            return False
        started = time.perf_counter()
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = f"{self.table}-{safe_name(self.model)}"
        name = f"{stem}.{uuid.uuid4().hex[:12]}.usearch"
        path = self.directory / name
        try:
            graph.save(str(path))  # only reads the graph; the refresh lock keeps writers out
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
            meta = {
                **self._settings(),
                "seq": seq,
                "count": size,
                "removed": removed,
                "file": name,
                "bytes": path.stat().st_size,
                "saved_at": time.time(),
            }
            tmp = self.directory / f"{stem}.json.tmp"
            tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
            os.replace(tmp, self._sidecar())
        except OSError as exc:  # a cache: the next save or a rebuild will do
            log.warning("%s: could not save the index: %s", self.model, exc)
            with contextlib.suppress(OSError):
                path.unlink()
            return False
        for old in self.directory.glob(f"{stem}.*.usearch"):
            if old.name != name:
                with contextlib.suppress(OSError):
                    old.unlink()
        self._unsaved = 0
        self._built = False
        log.info("%s: saved %d vectors in %.1f s", self.model, size, time.perf_counter() - started)
        return True

    def _load_saved(self, catalog_seq: int) -> bool:
        """The saved index, if it matches this model, these settings and this catalog."""
        try:
            meta = json.loads(self._sidecar().read_text(encoding="utf-8"))
            if not isinstance(meta, dict):
                raise ValueError("not a JSON object")
        except FileNotFoundError:
            return False
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable index sidecar (%s): rebuilding", self.model, exc)
            return False
        expected = self._settings()
        expected.pop("dim")
        problems = [key for key, value in expected.items() if meta.get(key) != value]
        if not isinstance(meta.get("seq"), int) or meta["seq"] > catalog_seq:
            problems.append("seq")
        assert self.directory is not None
        path = self.directory / str(meta.get("file", ""))
        if not path.name.endswith(".usearch") or not path.is_file():
            problems.append("file")
        elif path.stat().st_size != meta.get("bytes"):
            problems.append("bytes")
        if problems:
            log.info("%s: saved index does not match (%s): rebuilding", self.model, problems)
            return False
        started = time.perf_counter()
        try:
            from usearch.index import Index

            graph: Any = Index.restore(str(path))
        except Exception as exc:  # a damaged file: it is only a cache
            log.warning("%s: saved index unreadable (%s): rebuilding", self.model, exc)
            return False
        if graph is None or graph.ndim != meta.get("dim") or len(graph) != meta.get("count"):
            log.warning("%s: saved index does not match its sidecar: rebuilding", self.model)
            return False
        graph.expansion_search = self._expansion_search
        with self._lock:
            self._reset()
            self._dim = int(meta["dim"])
            self._hnsw, self._hnsw_size = graph, len(graph)
            self._removed = int(meta.get("removed", 0))
            self._seq = int(meta["seq"])
        self.last_load_s = time.perf_counter() - started
        log.info(
            "%s: loaded %d vectors (seq %d) in %.1f s",
            self.model,
            self._hnsw_size,
            self._seq,
            self.last_load_s,
        )
        return True


class VectorIndexes:
    """A library's vector indexes, one per model, kept for the life of the process."""

    def __init__(
        self,
        root: Path | None,
        *,
        threshold: int = HNSW_THRESHOLD,
        background: bool = False,
        table: str = "vectors",
    ) -> None:
        self.directory = Path(root) / "index" if root is not None else None
        self.table = table
        self.threshold = threshold
        self.background = background
        self._indexes: dict[str, VectorIndex] = {}
        self._lock = threading.Lock()

    def get(self, model: str) -> VectorIndex:
        with self._lock:
            index = self._indexes.get(model)
            if index is None:
                index = VectorIndex(
                    model,
                    self.directory,
                    threshold=self.threshold,
                    background=self.background,
                    table=self.table,
                )
                self._indexes[model] = index
            return index

    def models_for_item(self, conn: sqlite3.Connection, item_id: int) -> list[str]:
        return item_models(conn, item_id)

    def save(self) -> None:
        """Save every HNSW index that changed since it was last saved."""
        with self._lock:
            indexes = list(self._indexes.values())
        for index in indexes:
            index.save(only_if_changed=True)

    def close(self) -> None:
        """Save what changed and forget the indexes (a background build finishes first)."""
        with self._lock:
            indexes = list(self._indexes.values())
        for index in indexes:
            index.wait_ready()
        self.save()
        with self._lock:
            self._indexes.clear()


# -- similar --------------------------------------------------------------------------------


def choose_model(
    conn: sqlite3.Connection, models: Sequence[str], preferred_model: str | None = None
) -> str:
    """`preferred_model` if among `models`, else the one with the most vectors in the
    catalog (during a re-index that is the old model until the new one overtakes it)."""
    if not models:
        raise ValueError("no models to choose from")
    if preferred_model and preferred_model in models:
        return preferred_model
    if len(models) == 1:
        return models[0]
    counts = model_counts(conn, models)
    return max(sorted(models), key=lambda m: counts[m])


def similar(
    conn: sqlite3.Connection,
    indexes: VectorIndexes,
    item_id: int,
    limit: int = 20,
    preferred_model: str | None = None,
) -> list[dict[str, Any]]:
    """Items that look like `item_id`, best first: {"id", "paths", "kind", "score"}.

    `paths` are the item's existing paths (as `shoebox items` lists them); `score` is
    the cosine similarity rounded to 4 places. Raises ItemNotFoundError or
    NoEmbeddingError (both LookupError) with a sentence for the user.
    """
    from engine.queries import items

    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    if conn.execute("SELECT 1 FROM items WHERE id = ?", (item_id,)).fetchone() is None:
        raise ItemNotFoundError(f"There is no item {item_id}.")
    stored = {
        str(r[0]): (int(r[1]), bytes(r[2]))
        for r in conn.execute(
            "SELECT model, dim, vector FROM vectors WHERE item_id = ?", (item_id,)
        )
    }
    if not stored:
        raise NoEmbeddingError(f"Item {item_id} has no embedding yet.")
    model = choose_model(conn, sorted(stored), preferred_model)
    dim, blob = stored[model]
    index = indexes.get(model)
    index.refresh(conn)
    hits = index.search(decode_vector(blob, dim), limit, exclude={item_id}, conn=conn)
    found = {r["id"]: r for r in items(conn, [h[0] for h in hits])} if hits else {}
    return [
        {
            "id": hit_id,
            "paths": list(found[hit_id]["paths"]),
            "kind": found[hit_id]["kind"],
            "score": round(score, 4),
        }
        for hit_id, score in hits
        if hit_id in found
    ]
