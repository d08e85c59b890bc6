"""Per-item waits for a source folder that is not there (an unplugged drive).

A model that is missing stops a whole stage (`ledger.park_stage`); a folder that is
missing stops only the items in it: jobs of items on the internal disk keep running.
A job whose stage found its item's folder gone (`engine.errors.SourceOfflineError`)
is `waiting` with a reason ending in `OFFLINE_SUFFIX`; the item's other queued jobs
that would need the file (they read the original, or wait for a requirement) wait
with it, so `work --until-idle` and an import end instead of holding them queued.

The host's periodic wake check (`returned`, then `wake`) looks, for each distinct
offline reason (one per missing folder, so a few), at the paths of one item that
waits for it: when that item's folder is back, every job waiting with that reason
is queued again. One that is still unavailable (a deeper folder still gone) parks
again, with the folder it now finds missing; one whose file is gone from a folder
that is back fails "moved or deleted", as it would have without the wait.
"""

from __future__ import annotations

import os
import sqlite3

from engine.errors import OFFLINE_SUFFIX, is_offline_reason
from engine.jobs.ledger import ClaimedJob, marks
from engine.pipeline.media import offline_folder
from engine.pipeline.registry import StageRegistry
from engine.store.db import next_seq

__all__ = ["is_offline_reason", "offline_reasons", "park_item", "returned", "wake"]

# SQL: the job's error ends with the suffix (substr with a negative start).
_IS_OFFLINE = f"substr(coalesce(error, ''), -{len(OFFLINE_SUFFIX)}) = ?"


def park_item(
    conn: sqlite3.Connection, registry: StageRegistry, job: ClaimedJob, reason: str, now: float
) -> int:
    """After `ledger.park(job)`: the item's queued jobs that need its file, or wait for
    a requirement, wait with it (same reason). Others of the item (a model reading
    the preview already made) keep running."""
    if job.item_id is None:
        return 0
    needs_file = [s.name for s in registry.stages() if getattr(s, "reads_original", True)]
    seq = next_seq(conn)
    return conn.execute(
        f"""UPDATE jobs SET state = 'waiting', error = ?, dispatched = 0, finished_at = ?,
                            seq = ?
            WHERE item_id = ? AND +state = 'queued'
              AND (blocked > 0 OR stage IN ({marks(len(needs_file))}))""",
        (reason, now, seq, job.item_id, *needs_file),
    ).rowcount


def offline_reasons(conn: sqlite3.Connection) -> list[str]:
    """The distinct reasons of jobs waiting for a folder (one per missing folder)."""
    return [
        str(r[0])
        for r in conn.execute(
            f"SELECT DISTINCT error FROM jobs WHERE state = 'waiting' AND {_IS_OFFLINE}",
            (OFFLINE_SUFFIX,),
        )
    ]


def _back(conn: sqlite3.Connection, reason: str) -> bool:
    """Is the folder of an item waiting with `reason` there again (or its file)?"""
    row = conn.execute(
        "SELECT item_id FROM jobs WHERE state = 'waiting' AND error = ? LIMIT 1", (reason,)
    ).fetchone()
    if row is None or row[0] is None:
        return False
    paths = [
        os.fsdecode(bytes(r[0]))
        for r in conn.execute("SELECT raw FROM paths WHERE item_id = ?", (row[0],))
    ]
    if not paths:
        return True  # nothing to wait for: let the job end with its own reason
    return any(os.path.isfile(p) or offline_folder(p) is None for p in paths)


def returned(conn: sqlite3.Connection) -> list[str]:
    """Read only: the offline reasons whose folder is back (none: nothing to write)."""
    return [r for r in offline_reasons(conn) if _back(conn, r)]


def wake(conn: sqlite3.Connection, reasons: list[str]) -> int:
    """Inside a write transaction: queue again the jobs waiting with these reasons."""
    if not reasons:
        return 0
    seq = next_seq(conn)
    return sum(
        conn.execute(
            """UPDATE jobs SET state = 'queued', error = NULL, not_before = 0,
                               finished_at = NULL, dispatched = 0, seq = ?
               WHERE state = 'waiting' AND error = ?""",
            (seq, reason),
        ).rowcount
        for reason in reasons
    )
