"""Read models: the JSON shapes `status`, `items` and the GUI show. Keep keys stable."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from engine.jobs.ledger import STATES
from engine.progress import lane_counts


def status(conn: sqlite3.Connection) -> dict[str, Any]:
    """`shoebox status --json` without `queue` (keys in `engine.cli.STABLE_JSON_KEYS`);
    `lanes` is `engine.progress.lane_counts`, the jobs panel's numbers."""
    items = int(conn.execute("SELECT count(*) FROM items").fetchone()[0])
    stages: dict[str, dict[str, int]] = {}
    for stage, state, count in conn.execute(
        "SELECT stage, state, sum(n) FROM job_counts GROUP BY stage, state HAVING sum(n) > 0"
    ):
        stages.setdefault(stage, {s: 0 for s in STATES})[state] = count
    lanes = {lane: c.as_dict() for lane, c in lane_counts(conn).items()}
    missing = int(conn.execute("SELECT count(*) FROM items WHERE missing = 1").fetchone()[0])
    return {
        "items": items,
        "missing_items": missing,
        "stages": stages,
        "lanes": lanes,
        "seq": int(conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0]),
    }


def items(conn: sqlite3.Connection, item_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    where, params = "", ()  # type: tuple[str, tuple[int, ...]]
    if item_ids is not None:
        where = f"WHERE i.id IN ({','.join('?' * len(item_ids))})"
        params = tuple(item_ids)
    rows = conn.execute(f"SELECT * FROM items i {where} ORDER BY i.id", params).fetchall()
    ids = [r["id"] for r in rows]
    paths: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    stages: dict[int, dict[str, dict[str, Any]]] = {i: {} for i in ids}
    thumbs: dict[int, dict[str, str]] = {i: {} for i in ids}
    for chunk in _chunks(ids, 500):
        marks = ",".join("?" * len(chunk))
        for p in conn.execute(
            f"SELECT item_id, display, missing FROM paths WHERE item_id IN ({marks}) ORDER BY id",
            chunk,
        ):
            paths[p[0]].append({"path": p[1], "missing": bool(p[2])})
        for j in conn.execute(
            f"""SELECT item_id, stage, state, error, attempts, version FROM jobs
                WHERE item_id IN ({marks})""",
            chunk,
        ):
            stages[j[0]][j[1]] = {
                "state": j[2],
                "error": j[3] if j[2] != "done" else None,
                "attempts": j[4],
                "version": j[5],
            }
        for t in conn.execute(
            f"SELECT item_id, size, path FROM thumbnails WHERE item_id IN ({marks})", chunk
        ):
            thumbs[t[0]][t[1]] = t[2]
    out = []
    for r in rows:
        metadata = json.loads(r["metadata"]) if r["metadata"] else None
        out.append(
            {
                "id": r["id"],
                "hash": r["hash"],
                "kind": r["kind"],
                "format": r["format"],
                "size": r["size"],
                "paths": [p["path"] for p in paths[r["id"]] if not p["missing"]],
                "missing_paths": [p["path"] for p in paths[r["id"]] if p["missing"]],
                "metadata": metadata,
                "taken_at": r["taken_at"],
                "thumbnails": thumbs[r["id"]],
                "stages": stages[r["id"]],
            }
        )
    return out


def _chunks(seq: Sequence[int], n: int) -> list[Sequence[int]]:
    return [seq[i : i + n] for i in range(0, len(seq), n)]
