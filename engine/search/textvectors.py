"""Passage vectors of documents' text (`text_vectors`), one per chunk of ~256 tokens.

A long contract gets several vectors, so a query matches the passage that answers it,
not the average of forty pages. Keys pack the item and the passage number into one
integer, so the vector index (engine/vectors.py) serves passages as it serves items.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.vectors import encode_vector

CHUNK_BITS = 12
MAX_CHUNKS = 1 << CHUNK_BITS  # passages kept per document (~1,000 pages of text)


def chunk_key(item_id: int, chunk: int) -> int:
    if not 0 <= chunk < MAX_CHUNKS:
        raise ValueError(f"passage number {chunk} is out of range")
    return (int(item_id) << CHUNK_BITS) | chunk


def key_item(key: int) -> int:
    return int(key) >> CHUNK_BITS


@dataclass(frozen=True)
class Passage:
    """Where a passage vector came from: page number and character span in its text."""

    page: int
    start: int
    end: int


def store_text_vectors(
    conn: sqlite3.Connection,
    item_id: int,
    model: str,
    passages: Sequence[Passage],
    vectors: npt.NDArray[np.float32],
    digest: str,
    seq: int,
) -> None:
    """Replace the item's passage vectors (every model's: a re-index has reached it)
    inside the caller's write transaction."""
    if len(passages) != len(vectors):
        raise ValueError(f"{len(passages)} passages but {len(vectors)} vectors")
    conn.execute("DELETE FROM text_vectors WHERE item_id = ?", (item_id,))
    rows = []
    for n, (passage, vector) in enumerate(zip(passages[:MAX_CHUNKS], vectors, strict=False)):
        blob = encode_vector(vector)
        rows.append(
            (
                chunk_key(item_id, n),
                model,
                item_id,
                len(blob) // 2,
                blob,
                digest,
                seq,
                passage.page,
                passage.start,
                passage.end,
            )
        )
    conn.executemany(
        """INSERT INTO text_vectors
           (key, model, item_id, dim, vector, digest, seq, page, start, "end")
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        rows,
    )


def passages_for(conn: sqlite3.Connection, keys: Sequence[int], model: str) -> dict[int, Passage]:
    out: dict[int, Passage] = {}
    for start in range(0, len(keys), 500):
        chunk = [int(k) for k in keys[start : start + 500]]
        marks = ",".join("?" * len(chunk))
        for r in conn.execute(
            f"""SELECT key, page, start, "end" FROM text_vectors
                WHERE model = ? AND key IN ({marks})""",
            (model, *chunk),
        ):
            out[int(r[0])] = Passage(int(r[1]), int(r[2]), int(r[3]))
    return out
