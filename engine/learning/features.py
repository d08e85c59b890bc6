"""The embeddings a label learns from, read from the catalog.

An item's features are two blocks, each L2-normalised: its image embedding
(`vectors`, the embed model) and, for documents with text, the mean of its passage
vectors (`text_vectors`, the text model). A photo's text block is zero; an item
with text but no image vector has a zero image block. The classifier sees the
concatenation [image | text]; scoring the library never builds that whole matrix:
it is one matmul per block (float16 kept, converted in chunks).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

CHUNK = 16384
# Scoring keeps a float32 copy of the image block when it is at most this big (200 MB
# at 100,000 CLIP vectors): a rescore is then one BLAS call, not a float16 conversion
# per chunk (10x slower). A larger library converts chunk by chunk, bounded memory.
FLOAT32_COPY_BYTES = 512 << 20


@dataclass(frozen=True)
class Space:
    """Which models' vectors make the features, and their widths (0: block absent)."""

    image_model: str
    text_model: str
    image_dim: int
    text_dim: int

    @property
    def blocks(self) -> tuple[int, ...]:
        return tuple(d for d in (self.image_dim, self.text_dim) if d)

    @property
    def dim(self) -> int:
        return self.image_dim + self.text_dim

    def as_json(self) -> dict[str, object]:
        return {
            "image_model": self.image_model,
            "text_model": self.text_model,
            "image_dim": self.image_dim,
            "text_dim": self.text_dim,
        }


def _dim(conn: sqlite3.Connection, table: str, model: str) -> int:
    if not model:
        return 0
    row = conn.execute(f"SELECT dim FROM {table} WHERE model = ? LIMIT 1", (model,)).fetchone()
    return 0 if row is None else int(row[0])


def space_for(conn: sqlite3.Connection, image_model: str, text_model: str) -> Space:
    image_dim = _dim(conn, "vectors", image_model)
    text_dim = _dim(conn, "text_vectors", text_model)
    return Space(
        image_model if image_dim else "", text_model if text_dim else "", image_dim, text_dim
    )


@dataclass
class LibraryFeatures:
    """Every item with features in a space: ids ascending; `image` rows align with
    `ids`; `text` rows belong to `ids[text_rows]`."""

    space: Space
    ids: npt.NDArray[np.int64]
    image: npt.NDArray[np.float16]  # (n, image_dim); zero rows for items without one
    text_rows: npt.NDArray[np.int64]
    text: npt.NDArray[np.float16]  # (m, text_dim)
    stamp: tuple[int, ...] = field(default=())
    _image32: npt.NDArray[np.float32] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def positions(self, item_ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Row of each item id (-1: no features)."""
        wanted = np.asarray(item_ids, dtype=np.int64)
        pos = np.searchsorted(self.ids, wanted)
        pos = np.minimum(pos, max(len(self.ids) - 1, 0))
        ok = (
            (len(self.ids) > 0) & (self.ids[pos] == wanted)
            if len(self.ids)
            else np.zeros(wanted.shape, dtype=bool)
        )
        return np.where(ok, pos, -1).astype(np.int64)

    def dense(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """The concatenated [image | text] float32 features of these rows."""
        out = np.zeros((len(rows), self.space.dim), dtype=np.float32)
        if self.space.image_dim:
            out[:, : self.space.image_dim] = self.image[rows]
        if self.space.text_dim and len(self.text_rows):
            where = np.searchsorted(self.text_rows, rows)
            where = np.minimum(where, len(self.text_rows) - 1)
            has = self.text_rows[where] == rows
            out[np.flatnonzero(has), self.space.image_dim :] = self.text[where[has]]
        return out

    def logits(self, w: npt.NDArray[np.float32], b: float) -> npt.NDArray[np.float32]:
        """X @ w + b for every item, one block at a time, in chunks (bounded memory)."""
        out = np.full(len(self.ids), b, dtype=np.float32)
        d1 = self.space.image_dim
        if d1 and self.image.nbytes * 2 <= FLOAT32_COPY_BYTES:
            if self._image32 is None:  # once per read of the library, then one BLAS call
                self._image32 = self.image.astype(np.float32)
            out += self._image32 @ w[:d1].astype(np.float32)
        elif d1:
            w1 = w[:d1].astype(np.float32)
            for start in range(0, len(self.ids), CHUNK):
                block = self.image[start : start + CHUNK].astype(np.float32)
                out[start : start + CHUNK] += block @ w1
        if self.space.text_dim and len(self.text_rows):
            w2 = w[d1:].astype(np.float32)
            for start in range(0, len(self.text_rows), CHUNK):
                block = self.text[start : start + CHUNK].astype(np.float32)
                out[self.text_rows[start : start + CHUNK]] += block @ w2
        return out


def _stamp(conn: sqlite3.Connection, space: Space) -> tuple[int, ...]:
    """Changes when the vectors of the space change (new, replaced or deleted rows)."""
    parts: list[int] = []
    for table, model in (("vectors", space.image_model), ("text_vectors", space.text_model)):
        if model:
            row = conn.execute(
                f"SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM {table} WHERE model = ?", (model,)
            ).fetchone()
            parts += [int(row[0]), int(row[1])]
    return tuple(parts)


def _normalised(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: npt.NDArray[np.float32] = (x / norms).astype(np.float32, copy=False)
    return out


def load_library(
    conn: sqlite3.Connection, space: Space, cached: LibraryFeatures | None = None
) -> LibraryFeatures:
    """All items' features in the space; `cached` is returned as it is when nothing
    changed since it was read (a training after every few clicks re-reads nothing)."""
    stamp = _stamp(conn, space)
    if cached is not None and cached.space == space and cached.stamp == stamp:
        return cached
    image_ids = np.zeros(0, dtype=np.int64)
    image = np.zeros((0, space.image_dim), dtype=np.float16)
    if space.image_model:
        rows = conn.execute(
            "SELECT item_id, vector FROM vectors WHERE model = ? AND dim = ? ORDER BY item_id",
            (space.image_model, space.image_dim),
        ).fetchall()
        image_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        image = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float16).reshape(
            len(rows), space.image_dim
        )
    text_ids = np.zeros(0, dtype=np.int64)
    text = np.zeros((0, space.text_dim), dtype=np.float16)
    if space.text_model:
        rows = conn.execute(
            """SELECT item_id, vector FROM text_vectors WHERE model = ? AND dim = ?
               ORDER BY item_id, key""",
            (space.text_model, space.text_dim),
        ).fetchall()
        if rows:
            owners = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            passages = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float16).reshape(
                len(rows), space.text_dim
            )
            starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
            text_ids = owners[starts]
            sums = np.add.reduceat(passages.astype(np.float32), starts, axis=0)
            text = _normalised(sums).astype(np.float16)
    ids = np.union1d(image_ids, text_ids).astype(np.int64)
    if len(image_ids) == len(ids):
        full_image = image
    else:
        full_image = np.zeros((len(ids), space.image_dim), dtype=np.float16)
        if len(image_ids):
            full_image[np.searchsorted(ids, image_ids)] = image
    text_rows = np.searchsorted(ids, text_ids).astype(np.int64)
    return LibraryFeatures(space, ids, full_image, text_rows, text, stamp)


def load_items(conn: sqlite3.Connection, space: Space, item_ids: list[int]) -> LibraryFeatures:
    """The features of a few items (a batch of new ones), same shape as the library's."""
    ids = np.array(sorted(set(item_ids)), dtype=np.int64)
    image = np.zeros((len(ids), space.image_dim), dtype=np.float16)
    marks = ",".join("?" * len(ids))
    if space.image_model and len(ids):
        for item_id, blob in conn.execute(
            f"SELECT item_id, vector FROM vectors WHERE model = ? AND dim = ? "
            f"AND item_id IN ({marks})",
            (space.image_model, space.image_dim, *ids.tolist()),
        ):
            image[np.searchsorted(ids, item_id)] = np.frombuffer(blob, dtype=np.float16)
    text_rows: list[int] = []
    texts: list[npt.NDArray[np.float32]] = []
    if space.text_model and len(ids):
        sums: dict[int, npt.NDArray[np.float32]] = {}
        for item_id, blob in conn.execute(
            f"SELECT item_id, vector FROM text_vectors WHERE model = ? AND dim = ? "
            f"AND item_id IN ({marks})",
            (space.text_model, space.text_dim, *ids.tolist()),
        ):
            v = np.frombuffer(blob, dtype=np.float16).astype(np.float32)
            sums[int(item_id)] = sums.get(int(item_id), 0) + v
        for item_id in sorted(sums):
            text_rows.append(int(np.searchsorted(ids, item_id)))
            texts.append(sums[item_id])
    text = (
        _normalised(np.stack(texts)).astype(np.float16)
        if texts
        else np.zeros((0, space.text_dim), dtype=np.float16)
    )
    return LibraryFeatures(space, ids, image, np.array(text_rows, dtype=np.int64), text)
