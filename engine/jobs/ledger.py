"""The ledger: every unit of work is a row in `jobs` before anything runs.

State machine (DESIGN.md, "Jobs"):

    queued ──claim──▶ running ──▶ done
       ▲                 │
       └── transient ────┤ (backoff with jitter, attempts < max)
                         ├──▶ failed    permanent error: bad input, reason shown
                         └──▶ dead      out of attempts (incl. crashes): retryable
    queued ──cancel──▶ cancelled        (retry puts failed/dead/cancelled back to queued)

The attempt is counted when a job is claimed, so a file that kills the worker
process is seen as "started N times, never finished" and ends dead.
Each dispatch bumps `token`; only the message carrying the current token may
claim the job, so a stale or duplicated message runs nothing.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from engine.config import Settings
from engine.pipeline.registry import StageRegistry
from engine.store.db import next_seq

STATES = ("queued", "running", "done", "failed", "dead", "cancelled")
TERMINAL = ("done", "failed", "dead", "cancelled")

CRASH_REASON = (
    "Shoebox stopped unexpectedly {n} times while working on this file "
    "(it may crash the decoder). Retry it from the jobs panel or with `shoebox retry`."
)


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    item_id: int
    stage: str
    version: str
    lane: str
    attempts: int
    max_attempts: int
    token: int


def add_jobs_for_item(
    conn: sqlite3.Connection,
    registry: StageRegistry,
    settings: Settings,
    item_id: int,
    kind: str,
    session_id: int | None,
    seq: int,
    now: float,
) -> int:
    """Queue every registered stage that applies to the item (existing jobs are kept)."""
    added = 0
    for stage in registry.for_kind(kind):
        cur = conn.execute(
            """INSERT INTO jobs (item_id, stage, version, lane, session_id, state, max_attempts,
                                 created_at, seq)
               VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?)
               ON CONFLICT (item_id, stage) DO NOTHING""",
            (
                item_id,
                stage.name,
                stage.version,
                stage.lane,
                session_id,
                settings.max_attempts,
                now,
                seq,
            ),
        )
        added += cur.rowcount
    return added


def ready_jobs(conn: sqlite3.Connection, lane: str, limit: int, now: float) -> list[int]:
    """Ids of up to `limit` jobs of a lane ready to dispatch, in priority order (read only)."""
    if limit <= 0:
        return []
    rows = conn.execute(
        """SELECT j.id FROM jobs j
           WHERE j.lane = ? AND j.state = 'queued' AND j.dispatched = 0 AND j.not_before <= ?
             AND j.suspect = 0
             AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = j.session_id AND s.paused = 1)
           ORDER BY j.priority, j.id LIMIT ?""",
        (lane, now, limit),
    ).fetchall()
    return [int(r[0]) for r in rows]


def mark_dispatched(conn: sqlite3.Connection, job_ids: Sequence[int]) -> list[tuple[int, int]]:
    """Inside a write transaction: take the jobs still ready; returns (job id, new token)."""
    taken: list[tuple[int, int]] = []
    for job_id in job_ids:
        row = conn.execute(
            """UPDATE jobs SET dispatched = 1, token = token + 1
               WHERE id = ? AND state = 'queued' AND dispatched = 0 RETURNING token""",
            (job_id,),
        ).fetchone()
        if row is not None:
            taken.append((job_id, int(row[0])))
    return taken


def take_for_dispatch(
    conn: sqlite3.Connection, lane: str, limit: int, now: float
) -> list[tuple[int, int]]:
    """Mark up to `limit` ready jobs of a lane as dispatched; returns (job id, token)."""
    return mark_dispatched(conn, ready_jobs(conn, lane, limit, now))


def prioritize(conn: sqlite3.Connection, item_ids: Sequence[int]) -> int:
    """Move the items' waiting jobs to the interactive lane (the user is looking at them)."""
    if not item_ids:
        return 0
    seq = next_seq(conn)
    marks = ",".join("?" * len(item_ids))
    return conn.execute(
        f"""UPDATE jobs SET lane = 'interactive', seq = ?
            WHERE item_id IN ({marks}) AND state = 'queued' AND dispatched = 0
              AND lane != 'interactive'""",
        (seq, *item_ids),
    ).rowcount


def take_suspect(
    conn: sqlite3.Connection, lanes: Sequence[str], now: float
) -> tuple[str, int, int] | None:
    """Dispatch one job that was running when a host died, to run alone.

    Only when nothing else runs or waits in Huey: if it crashes the host again,
    it alone is blamed, and innocent neighbours are not dead-lettered with it.
    Returns (lane, job id, token).
    """
    busy = conn.execute(
        """SELECT 1 FROM jobs
           WHERE state = 'running' OR (state = 'queued' AND dispatched = 1) LIMIT 1"""
    ).fetchone()
    if busy:
        return None
    placeholders = ",".join("?" * len(lanes))
    row = conn.execute(
        f"""SELECT j.id, j.lane FROM jobs j
            WHERE j.suspect = 1 AND j.state = 'queued' AND j.dispatched = 0 AND j.not_before <= ?
              AND j.lane IN ({placeholders})
              AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = j.session_id AND s.paused = 1)
            ORDER BY j.id LIMIT 1""",
        (now, *lanes),
    ).fetchone()
    if row is None:
        return None
    token = conn.execute(
        "UPDATE jobs SET dispatched = 1, token = token + 1 WHERE id = ? RETURNING token", (row[0],)
    ).fetchone()[0]
    return str(row[1]), int(row[0]), int(token)


def has_suspects(conn: sqlite3.Connection) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM jobs WHERE suspect = 1 AND state IN ('queued', 'running') LIMIT 1"
        ).fetchone()
        is not None
    )


def claim(
    conn: sqlite3.Connection, job_id: int, token: int, owner: str, now: float, lease_s: float
) -> ClaimedJob | None:
    """Start a job if this message may run it; counts the attempt. Inside a write txn."""
    seq = next_seq(conn)
    row = conn.execute(
        """UPDATE jobs SET state = 'running', attempts = attempts + 1, owner = ?, started_at = ?,
                           lease_until = ?, dispatched = 0, seq = ?
           WHERE id = ? AND token = ? AND state = 'queued'
             AND NOT EXISTS (SELECT 1 FROM lanes l WHERE l.name = jobs.lane AND l.paused = 1)
             AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = jobs.session_id AND s.paused = 1)
           RETURNING id, item_id, stage, version, lane, attempts, max_attempts, token""",
        (owner, now, now + lease_s, seq, job_id, token),
    ).fetchone()
    if row is None:
        # Paused since dispatch (or stale message): let the feeder send it again later.
        conn.execute(
            "UPDATE jobs SET dispatched = 0 WHERE id = ? AND token = ? AND state = 'queued'",
            (job_id, token),
        )
        return None
    return ClaimedJob(*row)


def finish_done(conn: sqlite3.Connection, job: ClaimedJob, seq: int, now: float) -> bool:
    cur = conn.execute(
        """UPDATE jobs SET state = 'done', error = NULL, finished_at = ?, owner = NULL,
                           lease_until = NULL, suspect = 0, seq = ?
           WHERE id = ? AND state = 'running' AND token = ?""",
        (now, seq, job.id, job.token),
    )
    return cur.rowcount == 1


def backoff_delay(attempts: int, settings: Settings, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter, capped."""
    rng = rng or random.Random()
    ceiling = min(settings.retry_cap_s, settings.retry_base_s * (2 ** max(attempts - 1, 0)))
    return float(ceiling / 2 + rng.uniform(0, ceiling / 2))


def finish_error(
    conn: sqlite3.Connection,
    job: ClaimedJob,
    reason: str,
    *,
    permanent: bool,
    settings: Settings,
    now: float,
) -> str:
    """Record a failure; returns the new state (failed, queued for retry, or dead)."""
    seq = next_seq(conn)
    if permanent:
        state, not_before = "failed", 0.0
    elif job.attempts >= job.max_attempts:
        state, not_before = "dead", 0.0
        reason = f"{reason} (gave up after {job.attempts} attempts)"
    else:
        state, not_before = "queued", now + backoff_delay(job.attempts, settings)
    conn.execute(
        """UPDATE jobs SET state = ?, error = ?, not_before = ?, finished_at = ?, owner = NULL,
                           lease_until = NULL, dispatched = 0, suspect = 0, seq = ?
           WHERE id = ? AND state = 'running' AND token = ?""",
        (state, reason, not_before, now, seq, job.id, job.token),
    )
    return state


def recover(
    conn: sqlite3.Connection, now: float, owners: Sequence[str] | None = None
) -> dict[str, int]:
    """After a crash: put orphaned running jobs back (or dead-letter them), forget dispatches.

    `owners=None` means every running job is an orphan: true for the embedded host,
    which holds the library's host lock. Remote hosts will pass expired leases.
    """
    seq = next_seq(conn)
    owner_filter = ""
    params: list[object] = []
    if owners is not None:
        owner_filter = f" AND owner IN ({','.join('?' * len(owners))})"
        params = list(owners)
    dead = conn.execute(
        f"""UPDATE jobs SET state = 'dead', error = replace(?, '{{n}}', attempts), owner = NULL,
                            lease_until = NULL, dispatched = 0, finished_at = ?, seq = ?
            WHERE state = 'running' AND attempts >= max_attempts{owner_filter}""",
        (CRASH_REASON, now, seq, *params),
    ).rowcount
    requeued = conn.execute(
        f"""UPDATE jobs SET state = 'queued', owner = NULL, lease_until = NULL, dispatched = 0,
                            suspect = 1, error = 'Interrupted; will run again.', seq = ?
            WHERE state = 'running'{owner_filter}""",
        (seq, *params),
    ).rowcount
    undispatched = conn.execute(
        "UPDATE jobs SET dispatched = 0 WHERE state = 'queued' AND dispatched = 1"
    ).rowcount
    return {"dead": dead, "requeued": requeued, "undispatched": undispatched}


def retry(
    conn: sqlite3.Connection,
    *,
    states: Iterable[str] = ("failed", "dead"),
    item_ids: Sequence[int] | None = None,
    job_ids: Sequence[int] | None = None,
) -> int:
    """Put failed/dead (or cancelled) jobs back in the queue with a fresh attempt count."""
    seq = next_seq(conn)
    states = tuple(states)
    where = [f"state IN ({','.join('?' * len(states))})"]
    params: list[object] = [*states]
    if item_ids is not None:
        where.append(f"item_id IN ({','.join('?' * len(item_ids))})")
        params.extend(item_ids)
    if job_ids is not None:
        where.append(f"id IN ({','.join('?' * len(job_ids))})")
        params.extend(job_ids)
    cur = conn.execute(
        f"""UPDATE jobs SET state = 'queued', attempts = 0, error = NULL, not_before = 0,
                            dispatched = 0, suspect = 0, finished_at = NULL, seq = ?
            WHERE {" AND ".join(where)}""",
        (seq, *params),
    )
    return cur.rowcount


def cancel_session(conn: sqlite3.Connection, session_id: int, now: float) -> int:
    seq = next_seq(conn)
    conn.execute("UPDATE sessions SET state = 'cancelled', seq = ? WHERE id = ?", (seq, session_id))
    return conn.execute(
        """UPDATE jobs SET state = 'cancelled', error = 'Import cancelled.', dispatched = 0,
                           finished_at = ?, seq = ?
           WHERE session_id = ? AND state = 'queued'""",
        (now, seq, session_id),
    ).rowcount


def set_lane_paused(conn: sqlite3.Connection, lanes: Iterable[str], paused: bool) -> None:
    for lane in lanes:
        conn.execute("UPDATE lanes SET paused = ? WHERE name = ?", (int(paused), lane))


def set_session_paused(conn: sqlite3.Connection, session_id: int, paused: bool) -> None:
    seq = next_seq(conn)
    conn.execute(
        "UPDATE sessions SET paused = ?, seq = ? WHERE id = ?", (int(paused), seq, session_id)
    )


def has_pending_work(conn: sqlite3.Connection, session_id: int | None = None) -> bool:
    """Is any job still to run? Stops at the first one (cheap at any ledger size)."""
    session = "" if session_id is None else " AND j.session_id = ?"
    params: tuple[object, ...] = () if session_id is None else (session_id,)
    running = conn.execute(
        f"SELECT 1 FROM jobs j WHERE j.state = 'running'{session} LIMIT 1", params
    ).fetchone()
    if running:
        return True
    queued = conn.execute(
        f"""SELECT 1 FROM jobs j WHERE j.state = 'queued'{session}
              AND NOT EXISTS (SELECT 1 FROM lanes l WHERE l.name = j.lane AND l.paused = 1)
              AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = j.session_id AND s.paused = 1)
            LIMIT 1""",
        params,
    ).fetchone()
    return queued is not None


def pending_work(conn: sqlite3.Connection, session_id: int | None = None) -> int:
    """How many jobs still need a worker: running, or queued in a running lane and session."""
    sql = """SELECT coalesce(sum(c.n), 0) FROM job_counts c
             WHERE (c.state = 'running' OR (c.state = 'queued'
                    AND NOT EXISTS (SELECT 1 FROM lanes l WHERE l.name = c.lane AND l.paused = 1)
                    AND NOT EXISTS (SELECT 1 FROM sessions s
                                    WHERE s.id = c.session_id AND s.paused = 1)))"""
    params: tuple[object, ...] = ()
    if session_id is not None:
        sql += " AND c.session_id = ?"
        params = (session_id,)
    return int(conn.execute(sql, params).fetchone()[0])


def now_s() -> float:
    return time.time()
