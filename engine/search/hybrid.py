"""One search over everything: exact words (FTS5), documents by meaning (the text model
over their passages), photos by meaning (CLIP's text tower), merged, filtered, with a
floor so that a query matching nothing returns nothing.

Each source gives a ranked list; the lists are merged by reciprocal rank fusion (the
choice and the evaluation behind it: docs/architecture.md, "Search"). A meaning list
keeps only hits that stand out from the query's own background: the query is scored
against a fixed random sample of the library's vectors, and a hit must lie `Z_FLOOR`
standard deviations above that sample's mean and above an absolute floor per model
family. A flat cutoff fails because good and bad cosines overlap across queries
(Immich #5996); measured against the query's own distribution they do not.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from engine.learning.names import label_key
from engine.search import fts
from engine.search.query import Query, fts_match, parse
from engine.search.textvectors import key_item, passages_for
from engine.vectors import VectorIndex, VectorIndexes

if TYPE_CHECKING:
    from engine.config import Settings

log = logging.getLogger(__name__)

# Reciprocal rank fusion: score = sum over lists of weight / (RRF_K + rank), rank from 1.
# k = 60 as in Cormack et al. (SIGIR 2009) and Elastic/LanceDB.
RRF_K = 60.0
# Meaning lists weigh a little less than exact words: on a tie of ranks (an exact hit
# the meaning floor dropped, against a meaning-only hit) the words win. Measured on the
# evaluation set: exact-word nDCG@10 0.956 -> 1.0 at 0.9, nothing else changes.
MEANING_WEIGHT = 0.9
# When no item has every word, items with some of them (not stopwords) come after all
# the meaning hits: at weight 0.5 "pay" (every bill) pushed meaning hits down
# (paraphrase nDCG@10 0.745), at 0.1 they still reorder them (0.745); at 0.01 they only
# fill the tail (0.760; without them 0.727).
FALLBACK_WEIGHT = 0.01

# Candidates taken from each list before merging and filtering.
FTS_CANDIDATES = 200
FTS_RANKED_MAX = 20_000  # matches ranked by bm25 (the newest: see _fts_query)
PASSAGE_CANDIDATES = 400
PHOTO_CANDIDATES = 200
FILTERED_FACTOR = 5  # with filters, vector lists look this much deeper

# The meaning floor (see the module docstring). Text: from bench/search_quality.py
# (MiniLM: relevant passages score 0.20-0.61, 1.3-5.5 sigma over the background;
# real-word nonsense tops at 0.14-0.31, 1.7-4.0 sigma). Photo: not measured (no CLIP
# weights offline), from CLIP's published text-image cosines (matches ~0.25-0.35).
Z_FLOOR = {"text": 2.0, "photo": 3.0}
MIN_SIGMA = 0.03  # the sample's spread is never taken as tighter than this
ABS_FLOOR = {"text": 0.28, "photo": 0.20}
# Hits more than this below the list's best are dropped too (a clear winner).
MAX_GAP = {"text": 0.30, "photo": 0.10}
BACKGROUND_SAMPLE = 1024
MIN_BACKGROUND = 32  # fewer stored vectors than this: the absolute floor alone

SOURCES = ("words", "text-meaning", "photo-meaning")
SNIPPET_TOKENS = 12
PASSAGE_EXCERPT_CHARS = 140
QUERY_CACHE = 256
# Query vectors are made on threads of their own with one torch thread each, both models
# at once and while the full-text query runs. A query is a few tokens: a second intra-op
# thread gains ~20% on an idle 2-core machine, and makes each encode 4-20x slower when
# the other core is busy (the worker host embedding an import; bench/search_latency.py).
ENCODE_THREADS = 2


@dataclass
class Hit:
    id: int
    kind: str
    paths: list[str]
    score: float
    why: str
    sources: list[str] = field(default_factory=list)  # "words", "text-meaning", "photo-meaning"
    page: int | None = None  # the page the snippet or passage is on (0-based)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "paths": self.paths,
            "kind": self.kind,
            "score": round(self.score, 6),
            "why": self.why,
        }


@dataclass
class SearchResult:
    query: Query
    hits: list[Hit]
    notes: list[str] = field(default_factory=list)  # what could not be searched, and why
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class _Ranked:
    """One source's hits, best first: item id -> (score, why, page)."""

    name: str
    weight: float
    hits: list[tuple[int, float, str, int | None]]


class Searcher:
    """A library's search, kept for the life of a process (the GUI, the CLI's one query).

    Query encoders load on first use; query vectors are cached (typing repeats them).
    Safe to call from one thread at a time per instance (the GUI runs searches in turn).
    """

    def __init__(
        self,
        root: Path,
        settings: Settings,
        *,
        image_indexes: VectorIndexes | None = None,
        background: bool = False,
        fusion: str = "rrf",
    ) -> None:
        self.root = Path(root)
        self.settings = settings
        self.image_indexes = image_indexes or VectorIndexes(self.root, background=background)
        self.text_indexes = VectorIndexes(self.root, background=background, table="text_vectors")
        self.fusion = fusion
        self._text_model: Any = None
        self._photo_model: Any = None
        self._cache: OrderedDict[tuple[str, str], npt.NDArray[np.float32]] = OrderedDict()
        self._background: dict[tuple[str, str], tuple[int, npt.NDArray[np.float32]]] = {}
        self._lock = threading.RLock()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[tuple[str, str], Future[npt.NDArray[np.float32]]] = {}

    # -- encoders ------------------------------------------------------------------------

    def _text_encoder(self) -> tuple[Any, str | None]:
        """The document text model, or why it cannot be used."""
        spec = self.settings.models.text
        if not spec:
            return None, "no text model is set (models.text)"
        if self._text_model is None:
            from models.text import create_text_embedder

            self._text_model = create_text_embedder(spec, self.settings.device)
            self._text_model.allow_download = self.settings.models.download
        why = self._text_model.availability()
        return (self._text_model, None) if why is None else (None, why)

    def _photo_encoder(self) -> tuple[Any, str | None]:
        spec = self.settings.models.embed
        if not spec:
            return None, "no image model is set (models.embed)"
        if self._photo_model is None:
            from models.embed import create_embedder

            self._photo_model = create_embedder(spec, self.settings.device)
            self._photo_model.allow_download = self.settings.models.download
        model = self._photo_model
        if not model.has_text:
            return None, (
                f"{model.spec.display} has no text encoder; set models.embed to a CLIP model"
            )
        why = model.availability()
        return (model, None) if why is None else (None, why)

    def _encode(self, which: str, model: Any, text: str) -> npt.NDArray[np.float32]:
        key = (which + "|" + str(model.spec.text), text)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        future = self._pending.pop(key, None) or self._submit(model, text)
        vector = future.result()
        self._cache[key] = vector
        while len(self._cache) > QUERY_CACHE:
            self._cache.popitem(last=False)
        return vector

    def _submit(self, model: Any, text: str) -> Future[npt.NDArray[np.float32]]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                ENCODE_THREADS, thread_name_prefix="query-encoder", initializer=_one_torch_thread
            )
        return self._pool.submit(_embed_one, model, text)

    def warm_up(self) -> Future[bool]:
        """Load the query text model in the background, so that the first search by
        meaning does not wait for torch's import and the weights (seconds, cold). Only
        weights already on this machine: a start-up never downloads. True if loaded."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                ENCODE_THREADS, thread_name_prefix="query-encoder", initializer=_one_torch_thread
            )
        return self._pool.submit(self._warm_text_model)

    def _warm_text_model(self) -> bool:
        from models import weights as weights_mod

        with self._lock:
            model, _ = self._text_encoder()
        if model is None or weights_mod.find_local(model.spec) is None:
            return False
        try:
            model.load()
        except Exception:  # the first real search reports it, with its reason
            log.info("warming the text model failed", exc_info=True)
            return False
        return True

    def _prefetch(self, conn: sqlite3.Connection, q: Query, sources: Sequence[str]) -> None:
        """Start the query encoders whose index has vectors (not cached yet), so that
        they run together and while the full-text query does."""
        self._pending.clear()
        sides = (
            ("text", "text-meaning", self._text_encoder, self.text_indexes),
            ("photo", "photo-meaning", self._photo_encoder, self.image_indexes),
        )
        for which, source, encoder, indexes in sides:
            if source not in sources:
                continue
            model, _ = encoder()
            if model is None:
                continue
            key = (which + "|" + str(model.spec.text), q.text)
            if key in self._cache:
                continue
            index = indexes.get(str(model.spec.text))
            index.refresh(conn)
            if len(index):
                self._pending[key] = self._submit(model, q.text)

    # -- the search ----------------------------------------------------------------------

    def search(
        self,
        conn: sqlite3.Connection,
        text: str,
        *,
        kind: str | None = None,
        tags: Sequence[str] = (),
        after: date | None = None,
        before: date | None = None,
        folders: Sequence[str] = (),
        labels: Sequence[str] = (),
        limit: int = 50,
        typing: bool = False,
        sources: Sequence[str] = SOURCES,
    ) -> SearchResult:
        """Items matching `text` (words, "phrases", inline filters) and the filters
        given as arguments, best first. Raises QueryError for a filter it cannot read.
        `sources` picks the lists merged (the evaluation compares them alone)."""
        started = time.perf_counter()
        q = parse(text, typing=typing)
        if kind:
            q.kind = kind
        q.tags += list(tags)
        q.labels += list(labels)
        q.after = after or q.after
        q.before = before or q.before
        q.folders += list(folders)
        timings: dict[str, float] = {}
        notes: list[str] = []
        with self._lock:
            if not q.has_text:
                hits = self._filtered_only(conn, q, limit) if q.has_filters else []
                timings["total"] = _ms(started)
                return SearchResult(q, hits, notes, timings)
            lists: list[_Ranked] = []
            self._prefetch(conn, q, sources)
            step = time.perf_counter()
            fallback: list[_Ranked] = []
            if "words" in sources:
                strict, fallback = self._words(conn, q)
                lists += strict
            timings["fts"] = _ms(step)
            if "text-meaning" in sources:
                step = time.perf_counter()
                ranked, note = self._documents_by_meaning(conn, q)
                if ranked is not None:
                    lists.append(ranked)
                if note:
                    notes.append(f"Documents are not searched by meaning: {note}")
                timings["text_meaning"] = _ms(step)
            if "photo-meaning" in sources:
                step = time.perf_counter()
                ranked, note = self._photos_by_meaning(conn, q)
                if ranked is not None:
                    lists.append(ranked)
                if note:
                    notes.append(f"Photos are not searched by meaning: {note}")
                timings["photo_meaning"] = _ms(step)
            lists += fallback
            step = time.perf_counter()
            hits = self._merge(conn, lists, limit)
            timings["merge"] = _ms(step)
        timings["total"] = _ms(started)
        return SearchResult(q, hits, notes, timings)

    # -- exact words ---------------------------------------------------------------------

    def _words(self, conn: sqlite3.Connection, q: Query) -> tuple[list[_Ranked], list[_Ranked]]:
        """Items with every word, and (when there are none) items with some of them."""
        if fts.pending(conn):
            _flush(conn)
        match = fts_match(q)
        if match is None:
            return [], []
        where, params = filter_sql(q)
        hits = self._fts_query(conn, match, where, params)
        if hits or len(q.words) < 2:
            return [_Ranked("words", 1.0, hits)], []
        loose = fts_match(q, any_word=True)
        if loose is None or loose == match:
            return [], []
        some = self._fts_query(conn, loose, where, params)
        return [], [_Ranked("words", FALLBACK_WEIGHT, some)]

    def _fts_query(
        self, conn: sqlite3.Connection, match: str, where: str, params: list[Any]
    ) -> list[tuple[int, float, str, int | None]]:
        # bm25 weights: a word in the file name or a tag says more than one in a page.
        # Ranked first without the snippet and highlights (as result columns of one
        # sorted query, SQLite makes them for every match before sorting), among the
        # newest FTS_RANKED_MAX matches only: bm25 costs ~1.3 us a match, 0.8 s for a
        # word that half of a 1,000,000-item library has (bench/search_latency.py).
        ranking = f"""
            SELECT rowid, rank FROM (
                SELECT s.rowid AS rowid, bm25(search_text, 6.0, 3.0, 4.0, 1.0) AS rank
                FROM search_text s JOIN items i ON i.id = s.rowid
                WHERE search_text MATCH ? {where}
                ORDER BY s.rowid DESC LIMIT {FTS_RANKED_MAX})
            ORDER BY rank LIMIT {FTS_CANDIDATES}"""
        try:
            ranked = [(int(r[0]), float(r[1])) for r in conn.execute(ranking, [match, *params])]
            marked = _marked_columns(conn, match, [item for item, _ in ranked])
        except sqlite3.OperationalError as exc:  # a query FTS5 cannot parse
            log.info("FTS query %r failed: %s", match, exc)
            return []
        out: list[tuple[int, float, str, int | None]] = []
        for item, rank in ranked:
            if item not in marked:
                continue
            body, name, folders, tags = marked[item]
            if "[" in body:
                why = " ".join(body.split())
            elif "[" in name:
                why = "file name: " + _marked_part(name)
            elif "[" in tags:
                why = "tag: " + _marked_part(tags)
            elif "[" in folders:
                why = "folder: " + _marked_part(folders)
            else:
                why = "matches the words"
            out.append((item, -rank, why, None))
        return out

    # -- meaning -------------------------------------------------------------------------

    def _documents_by_meaning(
        self, conn: sqlite3.Connection, q: Query
    ) -> tuple[_Ranked | None, str | None]:
        model, why = self._text_encoder()
        if model is None:
            return None, why
        spec = str(model.spec.text)
        index = self.text_indexes.get(spec)
        index.refresh(conn)
        if len(index) == 0:
            return None, None
        vector = self._encode("text", model, q.text)
        want = PASSAGE_CANDIDATES * (FILTERED_FACTOR if q.has_filters else 1)
        # No catalog re-check: the graph's int8 scores are close enough for a floor and
        # a rank, and re-reading 4 x want float16 rows cost 40 ms (230 with filters).
        found = index.search(vector, want)
        floor = self._floor(conn, index, vector, "text", [s for _, s in found])
        best: dict[int, tuple[int, float]] = {}
        for key, score in found:
            if score < floor:
                break
            item = key_item(key)
            if item not in best:
                best[item] = (key, score)
        allowed = _allowed(conn, q, list(best))
        passages = passages_for(conn, [k for k, _ in best.values()], spec)
        texts = _passage_texts(conn, passages)
        hits: list[tuple[int, float, str, int | None]] = []
        for item, (key, score) in best.items():
            if item not in allowed:
                continue
            passage = passages.get(key)
            excerpt = texts.get(key, "")
            why = "similar in meaning"
            if excerpt:
                why += f": “{excerpt}”"
            hits.append((item, score, why, passage.page if passage else None))
        return _Ranked("text-meaning", MEANING_WEIGHT, hits), None

    def _photos_by_meaning(
        self, conn: sqlite3.Connection, q: Query
    ) -> tuple[_Ranked | None, str | None]:
        model, why = self._photo_encoder()
        if model is None:
            return None, why
        spec = str(model.spec.text)
        index = self.image_indexes.get(spec)
        index.refresh(conn)
        if len(index) == 0:
            return None, None
        vector = self._encode("photo", model, q.text)
        want = PHOTO_CANDIDATES * (FILTERED_FACTOR if q.has_filters else 1)
        # No catalog re-check: the graph's int8 scores are close enough for a floor and
        # a rank, and re-reading 4 x want float16 rows cost 40 ms (230 with filters).
        found = index.search(vector, want)
        floor = self._floor(conn, index, vector, "photo", [s for _, s in found])
        kept = [(i, s) for i, s in found if s >= floor]
        allowed = _allowed(conn, q, [i for i, _ in kept])
        hits: list[tuple[int, float, str, int | None]] = [
            (i, s, "similar in meaning", None) for i, s in kept if i in allowed
        ]
        return _Ranked("photo-meaning", MEANING_WEIGHT, hits), None

    def _floor(
        self,
        conn: sqlite3.Connection,
        index: VectorIndex,
        vector: npt.NDArray[np.float32],
        family: str,
        scores: Sequence[float],
    ) -> float:
        """The lowest score kept for this query (see the module docstring)."""
        floor = ABS_FLOOR[family]
        sample = self._sample(conn, index)
        if len(sample) >= MIN_BACKGROUND:
            q = vector / max(float(np.linalg.norm(vector)), 1e-12)
            bg = sample @ q
            floor = max(floor, float(bg.mean()) + Z_FLOOR[family] * max(float(bg.std()), MIN_SIGMA))
        if scores:
            floor = max(floor, scores[0] - MAX_GAP[family])
        return floor

    def _sample(self, conn: sqlite3.Connection, index: VectorIndex) -> npt.NDArray[np.float32]:
        """A fixed random sample of the index's vectors (re-drawn when it grew by 20%)."""
        key = (index.table, index.model)
        size = len(index)
        cached = self._background.get(key)
        if cached is not None and cached[0] * 1.2 >= size >= cached[0] / 1.2:
            return cached[1]
        sample = index.sample(conn, BACKGROUND_SAMPLE)
        self._background[key] = (size, sample)
        return sample

    # -- merging -------------------------------------------------------------------------

    def _merge(self, conn: sqlite3.Connection, lists: list[_Ranked], limit: int) -> list[Hit]:
        fused: dict[int, float] = {}
        why: dict[int, tuple[int, str, int | None]] = {}  # item -> (priority, text, page)
        sources: dict[int, list[str]] = {}
        priority = {"words": 0, "text-meaning": 1, "photo-meaning": 2}
        for ranked in lists:
            if self.fusion == "weighted":
                contributions = _normalised(ranked)
            else:
                contributions = [
                    ranked.weight / (RRF_K + rank) for rank in range(1, len(ranked.hits) + 1)
                ]
            for (item, _, reason, page), add in zip(ranked.hits, contributions, strict=True):
                fused[item] = fused.get(item, 0.0) + add
                sources.setdefault(item, []).append(ranked.name)
                p = priority.get(ranked.name, 9)
                if item not in why or p < why[item][0]:
                    why[item] = (p, reason, page)
        order = sorted(fused, key=lambda i: (-fused[i], i))[:limit]
        meta = _kinds_and_paths(conn, order)
        hits = []
        for item in order:
            if item not in meta:
                continue
            kind, paths = meta[item]
            _, reason, page = why[item]
            hits.append(Hit(item, kind, paths, fused[item], reason, sources[item], page))
        return hits

    def _filtered_only(self, conn: sqlite3.Connection, q: Query, limit: int) -> list[Hit]:
        """No words, only filters: the matching items, newest first."""
        where, params = filter_sql(q)
        rows = conn.execute(
            f"""SELECT i.id FROM items i WHERE 1 {where}
                ORDER BY i.taken_at IS NULL, i.taken_at DESC, i.id DESC LIMIT ?""",
            [*params, limit],
        ).fetchall()
        ids = [int(r[0]) for r in rows]
        meta = _kinds_and_paths(conn, ids)
        return [
            Hit(i, meta[i][0], meta[i][1], 1.0, "matches the filters", ["filters"])
            for i in ids
            if i in meta
        ]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.text_indexes.close()


# -- helpers ---------------------------------------------------------------------------------


def _one_torch_thread() -> None:
    # torch's thread count is the process's: fine in the GUI and the CLI, where the
    # searcher is torch's only user (the worker host, which embeds, is another process).
    import torch

    torch.set_num_threads(1)


def _embed_one(model: Any, text: str) -> npt.NDArray[np.float32]:
    model.load()
    return np.asarray(model.embed_texts([text])[0], dtype=np.float32)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000.0, 2)


def _flush(conn: sqlite3.Connection) -> None:
    """Bring the full-text rows up to date before searching them."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:  # someone else is writing: search what is there
        return
    try:
        fts.flush(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _marked_columns(
    conn: sqlite3.Connection, match: str, ids: Sequence[int]
) -> dict[int, tuple[str, str, str, str]]:
    """Snippet of the body and highlighted name, folders and tags of these matches.

    One scan of the match between the lowest and highest id, the ids picked by SQLite
    (`+rowid`): given to FTS5 as `rowid IN (...)`, it would run the match again for
    each id (~3 ms each for a prefix, 0.8 s for 200 of them)."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"""SELECT rowid, snippet(search_text, 3, '[', ']', '…', {SNIPPET_TOKENS}),
                   highlight(search_text, 0, '[', ']'), highlight(search_text, 1, '[', ']'),
                   highlight(search_text, 2, '[', ']')
            FROM search_text
            WHERE search_text MATCH ? AND rowid BETWEEN ? AND ? AND +rowid IN ({marks})""",
        [match, min(ids), max(ids), *ids],
    )
    return {int(r[0]): (str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows}


def _marked_part(text: str) -> str:
    """The marked words of a highlighted column, with a few words around them."""
    words = text.split()
    marked = [i for i, w in enumerate(words) if "[" in w or "]" in w]
    if not marked:
        return " ".join(words[:8])
    lo, hi = max(0, marked[0] - 3), min(len(words), marked[-1] + 4)
    return ("… " if lo else "") + " ".join(words[lo:hi]) + (" …" if hi < len(words) else "")


def _normalised(ranked: _Ranked) -> list[float]:
    """Scores scaled to 0..1 within the list (for the weighted combination)."""
    scores = [s for _, s, _, _ in ranked.hits]
    if not scores:
        return []
    hi, lo = max(scores), min(scores)
    span = hi - lo
    return [ranked.weight * ((s - lo) / span if span > 0 else 1.0) for s in scores]


def filter_sql(q: Query) -> tuple[str, list[Any]]:
    """` AND …` conditions on `items i` for the query's filters, and their parameters."""
    where: list[str] = []
    params: list[Any] = []
    if q.kind:
        where.append("i.kind = ?")
        params.append(q.kind)
    if q.after:
        where.append("i.taken_at >= ?")
        params.append(q.after.isoformat())
    if q.before:
        where.append("i.taken_at < ?")
        params.append(q.before.isoformat())
    for tag in q.tags:
        where.append(
            "EXISTS (SELECT 1 FROM item_tags t WHERE t.item_id = i.id AND t.tag = ? COLLATE NOCASE)"
        )
        params.append(tag)
    for label in q.labels:
        where.append(
            """EXISTS (SELECT 1 FROM labels l WHERE l.key = ? AND (
                   EXISTS (SELECT 1 FROM label_decisions d WHERE d.label_id = l.id
                           AND d.item_id = i.id AND d.verdict > 0)
                   OR EXISTS (SELECT 1 FROM item_labels a WHERE a.label_id = l.id
                              AND a.item_id = i.id)))"""
        )
        params.append(label_key(label))
    for folder in q.folders:
        where.append(
            "EXISTS (SELECT 1 FROM paths p WHERE p.item_id = i.id AND p.missing = 0"
            " AND p.display LIKE ? ESCAPE '\\')"
        )
        params.append(_folder_pattern(folder))
    return "".join(f" AND {w}" for w in where), params


def _folder_pattern(folder: str) -> str:
    """A LIKE pattern: under a path (`/home/me/Scans`), or in a folder of that name."""
    import os

    text = os.path.expanduser(folder)
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if os.path.isabs(text):
        return escaped.rstrip("/") + "/%"
    return "%/" + escaped.strip("/") + "/%"


def _allowed(conn: sqlite3.Connection, q: Query, ids: Sequence[int]) -> set[int]:
    """The ids that pass the query's filters."""
    if not ids:
        return set()
    if not q.has_filters:
        return set(ids)
    where, params = filter_sql(q)
    out: set[int] = set()
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        out.update(
            int(r[0])
            for r in conn.execute(
                f"SELECT i.id FROM items i WHERE i.id IN ({marks}) {where}", [*chunk, *params]
            )
        )
    return out


def _kinds_and_paths(
    conn: sqlite3.Connection, ids: Sequence[int]
) -> dict[int, tuple[str, list[str]]]:
    out: dict[int, tuple[str, list[str]]] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        for r in conn.execute(f"SELECT id, kind FROM items WHERE id IN ({marks})", chunk):
            out[int(r[0])] = (str(r[1]), [])
        for r in conn.execute(
            f"""SELECT item_id, display FROM paths WHERE item_id IN ({marks}) AND missing = 0
                ORDER BY id""",
            chunk,
        ):
            if int(r[0]) in out:
                out[int(r[0])][1].append(str(r[1]))
    return out


def _passage_texts(conn: sqlite3.Connection, passages: dict[int, Any]) -> dict[int, str]:
    """A short excerpt of each passage, from its page's text."""
    pages: dict[tuple[int, int], str] = {}
    wanted = {(key_item(k), p.page) for k, p in passages.items()}
    for item, page in wanted:
        row = conn.execute(
            "SELECT text FROM ocr_pages WHERE item_id = ? AND page = ?", (item, page)
        ).fetchone()
        if row is not None:
            pages[(item, page)] = str(row[0])
    out: dict[int, str] = {}
    for key, p in passages.items():
        text = pages.get((key_item(key), p.page), "")[p.start : p.end]
        text = " ".join(text.split())
        if len(text) > PASSAGE_EXCERPT_CHARS:
            text = text[:PASSAGE_EXCERPT_CHARS].rsplit(" ", 1)[0] + "…"
        out[key] = text
    return out
