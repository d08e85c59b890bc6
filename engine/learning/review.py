"""What the review queue shows: the suggestions a label's active version chose, most
useful first, each with the labelled examples that explain it."""

from __future__ import annotations

import json
import sqlite3
from typing import Any


def review_queue(
    conn: sqlite3.Connection, label_id: int | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """`shoebox review --json`: `[{"id", "label", "score", "why", "reason"}]`. With no
    label, the labels' queues are interleaved by rank (each label's best first)."""
    where = "" if label_id is None else "WHERE s.label_id = ?"
    params: tuple[Any, ...] = () if label_id is None else (label_id,)
    rows = conn.execute(
        f"""SELECT s.item_id, l.name, s.score, s.why, s.reason, s.rank, s.label_id
            FROM label_suggestions s JOIN labels l ON l.id = s.label_id {where}
            ORDER BY s.rank, l.key LIMIT ?""",
        (*params, limit),
    ).fetchall()
    return [
        {
            "id": int(r[0]),
            "label": str(r[1]),
            "score": round(float(r[2]), 4),
            "why": [int(i) for i in json.loads(r[3])],
            "reason": str(r[4]),
            "label_id": int(r[6]),
        }
        for r in rows
    ]


REASON_WORDS = {
    "neighbour": "like your examples",
    "threshold": "near the line: your answer teaches the most",
    "audit": "a check of an automatic label",
    "below": "a check from below the line",
}
