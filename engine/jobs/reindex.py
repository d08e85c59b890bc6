"""Re-indexing after a version change: a session in the batch lane, created in chunks.

When a stage's version (its code, or the model it is set to use) differs from
the one the library's jobs were last brought to (`stage_versions`), or a stage is
new, a re-index session starts. It never updates a million rows in one
transaction: the feeder calls `advance` whenever the session has few queued jobs
left, and each call creates or re-queues the jobs of the next `CHUNK` items (by
item id, a cursor in the session row). Old results keep serving until each new
one replaces it (`upsert_result` removes older versions of the same item).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass

from engine.config import Settings
from engine.jobs.ledger import marks, recompute_blocked
from engine.pipeline.registry import StageRegistry
from engine.pipeline.types import Stage
from engine.store.db import next_seq

CHUNK = 2000
LOW_WATER = 2 * CHUNK  # queued jobs left in the session before the next chunk


@dataclass(frozen=True)
class Reindex:
    session_id: int
    stage: str
    version: str
    cursor: int


def sync_versions(
    conn: sqlite3.Connection, registry: StageRegistry, now: float | None = None
) -> list[int]:
    """Start a re-index for every stage whose version changed; returns new session ids.
    Inside a write transaction."""
    now = time.time() if now is None else now
    recorded = {str(r[0]): str(r[1]) for r in conn.execute("SELECT * FROM stage_versions")}
    started = []
    for stage in registry.stages():
        old = recorded.get(stage.name)
        if old == stage.version:
            continue
        conn.execute(
            """INSERT INTO stage_versions (stage, version) VALUES (?, ?)
               ON CONFLICT (stage) DO UPDATE SET version = excluded.version""",
            (stage.name, stage.version),
        )
        if old is None and (
            conn.execute("SELECT 1 FROM items LIMIT 1").fetchone() is None
            or conn.execute(
                "SELECT 1 FROM job_counts WHERE stage = ? AND n > 0 LIMIT 1", (stage.name,)
            ).fetchone()
        ):
            continue  # a new library, or jobs made before it was recorded: imports did it
        started.append(start(conn, stage, old, now))
    return started


def start(conn: sqlite3.Connection, stage: Stage, old: str | None, now: float) -> int:
    seq = next_seq(conn)
    # A re-index of the same stage still running is superseded by this one.
    conn.execute(
        """UPDATE sessions SET state = 'done', scanned_at = ?, seq = ?
           WHERE kind = 'reindex' AND stage = ? AND state = 'processing'""",
        (now, seq, stage.name),
    )
    kinds = sorted(stage.kinds)
    planned = int(
        conn.execute(
            f"SELECT count(*) FROM items WHERE kind IN ({marks(len(kinds))})", kinds
        ).fetchone()[0]
    )
    what = f"{stage.name} {old} → {stage.version}" if old else f"{stage.name} (new)"
    return int(
        conn.execute(
            """INSERT INTO sessions (roots, state, started_at, seq, kind, planned, stage,
                                     target_version, cursor)
               VALUES (?, 'processing', ?, ?, 'reindex', ?, ?, ?, 0) RETURNING id""",
            (json.dumps([f"Re-index: {what}"]), now, seq, planned, stage.name, stage.version),
        ).fetchone()[0]
    )


def active(conn: sqlite3.Connection) -> list[Reindex]:
    return [
        Reindex(int(r[0]), str(r[1]), str(r[2]), int(r[3] or 0))
        for r in conn.execute(
            """SELECT id, stage, target_version, cursor FROM sessions
               WHERE kind = 'reindex' AND state = 'processing' AND scanned_at IS NULL
                 AND paused = 0
               ORDER BY id"""
        )
    ]


def get(conn: sqlite3.Connection, session_id: int) -> Reindex | None:
    """The re-index session if it still has jobs to create."""
    return next((r for r in active(conn) if r.session_id == session_id), None)


def needs_chunk(conn: sqlite3.Connection, reindex: Reindex) -> bool:
    queued = conn.execute(
        "SELECT coalesce(sum(n), 0) FROM job_counts WHERE session_id = ? AND state = 'queued'",
        (reindex.session_id,),
    ).fetchone()[0]
    return int(queued) < LOW_WATER


def advance(
    conn: sqlite3.Connection,
    registry: StageRegistry,
    settings: Settings,
    reindex: Reindex,
    now: float,
    chunk: int = CHUNK,
) -> int:
    """Create or re-queue the jobs of the next chunk of items; returns how many.
    Inside a write transaction."""
    seq = next_seq(conn)
    if reindex.stage not in registry or registry.is_task(reindex.stage):
        conn.execute(
            "UPDATE sessions SET scanned_at = ?, state = 'done', seq = ? WHERE id = ?",
            (now, seq, reindex.session_id),
        )
        return 0
    stage = registry.get(reindex.stage)
    kinds = sorted(stage.kinds)
    ids = [
        int(r[0])
        for r in conn.execute(
            f"""SELECT id FROM items WHERE id > ? AND kind IN ({marks(len(kinds))})
                ORDER BY id LIMIT ?""",
            (reindex.cursor, *kinds, chunk),
        )
    ]
    if not ids:
        conn.execute(
            "UPDATE sessions SET scanned_at = ?, cursor = NULL, seq = ? WHERE id = ?",
            (now, seq, reindex.session_id),
        )
        return 0
    reqs = list(stage.requires)
    # Requirements with a result, counted down from all: one whose job does not exist
    # yet (a stage new in the same release, its own re-index behind) is not satisfied.
    blocked = (
        f"""({len(reqs)} - (SELECT count(*) FROM jobs r WHERE r.item_id = i.id
               AND r.stage IN ({marks(len(reqs))}) AND r.result_version IS NOT NULL))"""
        if reqs
        else "0"
    )
    cur = conn.execute(
        f"""INSERT INTO jobs (item_id, stage, version, lane, session_id, state, max_attempts,
                              created_at, seq, blocked)
            SELECT i.id, ?, ?, 'batch', ?, 'queued', ?, ?, ?, {blocked}
            FROM items i WHERE i.id >= ? AND i.id <= ? AND i.kind IN ({marks(len(kinds))})
            ON CONFLICT (item_id, stage) DO UPDATE SET
                version = excluded.version, state = 'queued', lane = 'batch',
                session_id = excluded.session_id, attempts = 0, crashes = 0, error = NULL,
                not_before = 0, suspect = 0, finished_at = NULL, blocked = excluded.blocked,
                seq = excluded.seq
            WHERE jobs.version != excluded.version AND jobs.state != 'running'""",
        (
            stage.name,
            stage.version,
            reindex.session_id,
            settings.max_attempts,
            now,
            seq,
            *reqs,
            ids[0],
            ids[-1],
            *kinds,
        ),
    )
    created = int(cur.rowcount)
    dependents = registry.all_dependents(stage.name)
    if dependents and created:  # skipped because this stage had failed: they wait for it again
        revived = conn.execute(
            f"""UPDATE jobs SET state = 'queued', error = NULL, attempts = 0, crashes = 0,
                                not_before = 0, finished_at = NULL, seq = ?
                WHERE item_id >= ? AND item_id <= ? AND stage IN ({marks(len(dependents))})
                  AND state = 'skipped'
                RETURNING item_id""",
            (seq, ids[0], ids[-1], *dependents),
        ).fetchall()
        if revived:
            recompute_blocked(conn, registry, sorted({int(r[0]) for r in revived}), seq)
    if reqs:  # waiting for a requirement that already ended without a result: never ready
        conn.execute(
            f"""UPDATE jobs SET state = 'skipped', finished_at = ?, seq = ?,
                    error = 'Skipped: a stage it needs did not finish.'
                WHERE session_id = ? AND stage = ? AND state = 'queued' AND blocked > 0
                  AND item_id >= ? AND item_id <= ?
                  AND EXISTS (SELECT 1 FROM jobs r WHERE r.item_id = jobs.item_id
                                AND r.stage IN ({marks(len(reqs))}) AND r.result_version IS NULL
                                AND r.state IN ('failed', 'dead', 'cancelled', 'skipped'))""",
            (now, seq, reindex.session_id, stage.name, ids[0], ids[-1], *reqs),
        )
    conn.execute(
        "UPDATE sessions SET cursor = ?, seq = ? WHERE id = ?",
        (ids[-1], seq, reindex.session_id),
    )
    return created


def sessions_to_finish(conn: sqlite3.Connection) -> bool:
    """Read only: is any re-index fully created and possibly finished?"""
    return (
        conn.execute(
            """SELECT 1 FROM sessions WHERE kind = 'reindex' AND state = 'processing'
                 AND scanned_at IS NOT NULL LIMIT 1"""
        ).fetchone()
        is not None
    )


def finish_sessions(conn: sqlite3.Connection, now: float) -> int:
    """Re-index sessions whose jobs are all created and ended are done."""
    seq = None
    n = 0
    for row in conn.execute(
        """SELECT id FROM sessions WHERE kind = 'reindex' AND state = 'processing'
             AND scanned_at IS NOT NULL"""
    ).fetchall():
        left = conn.execute(
            """SELECT coalesce(sum(n), 0) FROM job_counts
               WHERE session_id = ? AND state IN ('queued', 'running')""",
            (row[0],),
        ).fetchone()[0]
        if int(left) == 0:
            seq = seq or next_seq(conn)
            conn.execute("UPDATE sessions SET state = 'done', seq = ? WHERE id = ?", (seq, row[0]))
            n += 1
    return n
