"""Task jobs: work about no single item ("train label 7", "rescore all for label 7").

One ledger row per (task stage, key), with the same durability as item jobs.
Asking again coalesces: while the task is queued, nothing changes; while it runs,
it is marked to run once more when it finishes (ten requests while one runs make
one more run, not ten); once it has ended, it is queued again.
"""

from __future__ import annotations

import sqlite3
import time

from engine.config import Settings
from engine.pipeline.registry import StageRegistry
from engine.store.db import next_seq


def request_task(
    conn: sqlite3.Connection,
    registry: StageRegistry,
    settings: Settings,
    stage_name: str,
    key: str,
    *,
    now: float | None = None,
    delay_s: float = 0.0,
) -> str:
    """Ask for a task run; returns what happened: queued | coalesced | rerun. Inside a
    write transaction. `delay_s` debounces: the run starts no sooner than that after
    the latest request (a burst of decisions trains once, after the last)."""
    if not registry.is_task(stage_name):
        raise KeyError(f"no task stage {stage_name!r}")
    task = registry.task(stage_name)
    now = time.time() if now is None else now
    not_before = now + delay_s if delay_s > 0 else 0.0
    seq = next_seq(conn)
    row = conn.execute(
        "SELECT id, state FROM jobs WHERE item_id IS NULL AND stage = ? AND task_key = ?",
        (stage_name, key),
    ).fetchone()
    if row is None:
        conn.execute(
            """INSERT INTO jobs (item_id, task_key, stage, version, lane, state, max_attempts,
                                 not_before, created_at, seq)
               VALUES (NULL, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)""",
            (key, stage_name, task.version, task.lane, settings.max_attempts, not_before, now, seq),
        )
        return "queued"
    job_id, state = int(row[0]), str(row[1])
    if state == "queued":
        if not_before:  # not yet handed to a worker: push the start back
            conn.execute(
                """UPDATE jobs SET not_before = MAX(not_before, ?)
                   WHERE id = ? AND dispatched = 0 AND attempts = 0""",
                (not_before, job_id),
            )
        return "coalesced"
    if state == "running":
        conn.execute("UPDATE jobs SET rerun = 1, seq = ? WHERE id = ?", (seq, job_id))
        return "rerun"
    conn.execute(
        """UPDATE jobs SET state = 'queued', version = ?, lane = ?, attempts = 0, crashes = 0,
                           error = NULL, not_before = ?, dispatched = 0, suspect = 0,
                           finished_at = NULL, rerun = 0, created_at = ?, seq = ?
           WHERE id = ?""",
        (task.version, task.lane, not_before, now, seq, job_id),
    )
    return "queued"
