"""Read models: the JSON shapes `status`, `items` and the GUI show. Keep keys stable."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.jobs.ledger import STATES
from engine.progress import lane_counts

# A photo with no date of its own gets its file's modification time: shown as what it
# is (a guess: copying a folder changes it), never as "taken".
GUESSED_DATE_SOURCE = "file-mtime"
LIVE_HOST_S = 30.0  # a host whose heartbeat is this recent is running


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
        "workers": remote_workers(conn),
        "background": host_background(conn),
    }


def host_background(conn: sqlite3.Connection, now: float | None = None) -> dict[str, Any] | None:
    """What the library's running worker host says of its background mode (its
    heartbeat, engine/jobs/throttle.py): mode, workers of, throttled, why, running,
    priority, rate_limited_s. None when no host is running."""
    now = time.time() if now is None else now
    for (info,) in conn.execute(
        """SELECT info FROM hosts WHERE stopped_at IS NULL AND heartbeat_at > ?
           ORDER BY heartbeat_at DESC""",
        (now - LIVE_HOST_S,),
    ):
        try:
            found = json.loads(info or "{}").get("background")
        except (ValueError, AttributeError):
            continue
        if isinstance(found, dict):
            return found
    return None


def remote_workers(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """The enrolled worker hosts on other machines, from their last heartbeat (the
    owner writes it): name, host, device, slots, lanes, current jobs, jobs done, errors."""
    import json

    running: dict[str, int] = {
        str(owner)[len("remote:") :]: int(n)
        for owner, n in conn.execute(
            """SELECT owner, count(*) FROM jobs INDEXED BY jobs_running
               WHERE state = 'running' AND owner LIKE 'remote:%' GROUP BY owner"""
        )
    }
    out = []
    for name, last_seen, done, errors, info in conn.execute(
        """SELECT name, last_seen_at, jobs_done, errors, info FROM workers
           WHERE revoked_at IS NULL ORDER BY name"""
    ):
        details = json.loads(info or "{}")
        out.append(
            {
                "name": name,
                "host": details.get("host"),
                "device": details.get("device"),
                "slots": details.get("slots"),
                "lanes": details.get("lanes"),
                "current_jobs": running.get(str(name), 0),
                "last_heartbeat": last_seen,
                "jobs_done": done,
                "errors": errors,
            }
        )
    return out


def tags_for(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """Each item's tags, best first: `{"tag", "score", "source"}` (a tag found by two
    sources appears once per source)."""
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for chunk in _chunks(ids, 500):
        marks = ",".join("?" * len(chunk))
        for r in conn.execute(
            f"""SELECT item_id, tag, score, source FROM item_tags WHERE item_id IN ({marks})
                ORDER BY item_id, score DESC, tag""",
            chunk,
        ):
            out[r[0]].append({"tag": r[1], "score": round(float(r[2]), 4), "source": r[3]})
    return out


def detections_for(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """Each item's detected objects, best first: `{"label", "score", "box"}`, the box
    `[x0, y0, x1, y1]` in pixels of the upright image."""
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for chunk in _chunks(ids, 500):
        marks = ",".join("?" * len(chunk))
        for r in conn.execute(
            f"""SELECT item_id, label, score, x0, y0, x1, y1 FROM detections
                WHERE item_id IN ({marks}) ORDER BY item_id, score DESC, id""",
            chunk,
        ):
            out[r[0]].append(
                {
                    "label": r[1],
                    "score": round(float(r[2]), 4),
                    "box": [round(float(v), 1) for v in r[3:7]],
                }
            )
    return out


def embeddings_for(
    conn: sqlite3.Connection, ids: Sequence[int], preferred_model: str | None = None
) -> dict[int, dict[str, Any] | None]:
    """Which embedding each item has (`{"model", "dim", "digest"}`, never the vector):
    the preferred model's when it has one, else another's (during a re-index)."""
    out: dict[int, dict[str, Any] | None] = dict.fromkeys(ids)
    for chunk in _chunks(ids, 500):
        marks = ",".join("?" * len(chunk))
        for r in conn.execute(
            f"SELECT item_id, model, dim, digest FROM vectors WHERE item_id IN ({marks})", chunk
        ):
            if out[r[0]] is None or r[1] == preferred_model:
                out[r[0]] = {"model": r[1], "dim": int(r[2]), "digest": r[3]}
    return out


def items(
    conn: sqlite3.Connection,
    item_ids: Sequence[int] | None = None,
    *,
    root: Path | None = None,
    embed_model: str | None = None,
) -> list[dict[str, Any]]:
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
    tags = tags_for(conn, ids)
    detections = detections_for(conn, ids)
    embeddings = embeddings_for(conn, ids, embed_model)
    from engine.learning.labels import labels_for

    labels = labels_for(conn, ids)
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
                "taken_at_source": r["taken_at_source"],
                # From the file's modification time, not the camera: a guess, never "taken".
                "taken_at_guess": r["taken_at_source"] == GUESSED_DATE_SOURCE,
                "thumbnails": thumbs[r["id"]],
                "thumbnail": (
                    str(root / thumbs[r["id"]]["thumb"])
                    if root is not None and "thumb" in thumbs[r["id"]]
                    else thumbs[r["id"]].get("thumb")
                ),
                "stages": stages[r["id"]],
                "tags": tags[r["id"]],
                "labels": labels[r["id"]],
                "detections": detections[r["id"]],
                "embedding": embeddings[r["id"]],
            }
        )
    return out


def _chunks(seq: Sequence[int], n: int) -> list[Sequence[int]]:
    return [seq[i : i + n] for i in range(0, len(seq), n)]
