"""The ledger: every unit of work is a row in `jobs` before anything runs.

State machine (DESIGN.md, "Jobs"):

    queued ──claim──▶ running ──▶ done
       ▲                 │
       └── transient ────┤ (backoff with jitter, attempts < max)
                         ├──▶ failed    permanent error: bad input, reason shown
                         └──▶ dead      out of attempts (incl. crashes): retryable
    queued ──cancel──▶ cancelled        (retry puts failed/dead/cancelled back to queued)
    queued ──requirement failed──▶ skipped   (retried together with the requirement)

A job is ready when it is queued, not dispatched, not in backoff, and `blocked`
(its requirements on the same item that have no result yet) is zero. The
attempt is counted when a job is claimed, so a file that kills the worker
process is seen as "started N times, never finished" and ends dead. Each
dispatch bumps `token`; only the message carrying the current token may claim
the job, so a stale or duplicated message runs nothing.

Recovery, suspects and leases live in `engine.jobs.recovery`; re-indexing after
a version change in `engine.jobs.reindex`; task jobs in `engine.jobs.tasks`.
"""

from __future__ import annotations

import heapq
import random
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from engine.config import Settings
from engine.errors import OFFLINE_SUFFIX
from engine.pipeline.registry import StageRegistry
from engine.store.db import next_seq

STATES = ("queued", "running", "waiting", "done", "failed", "dead", "cancelled", "skipped")
TERMINAL = ("done", "failed", "dead", "cancelled", "skipped")
RETRYABLE = ("failed", "dead", "skipped")

# {n}: attempts that ended with the host dying (not transient failures).
CRASH_REASON = (
    "Shoebox stopped unexpectedly while working on this file ({n} of its attempts ended "
    "that way; it may crash the decoder). Retry it from the jobs panel or with `shoebox retry`."
)
SQL_CHUNK = 500  # ids per `IN (...)`: well under SQLite's variable limit


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    item_id: int | None
    stage: str
    version: str
    lane: str
    attempts: int
    max_attempts: int
    token: int
    task_key: str | None = None
    result_version: str | None = None
    crashes: int = 0
    batch_n: int = 1
    session_id: int | None = None


_CLAIM_RETURNING = """RETURNING id, item_id, stage, version, lane, attempts, max_attempts, token,
                     task_key, result_version, crashes, batch_n, session_id"""


def chunks(seq: Sequence[int], n: int = SQL_CHUNK) -> Iterable[Sequence[int]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def marks(n: int) -> str:
    return ",".join("?" * n)


# -- creating jobs ---------------------------------------------------------------


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
    """Queue every registered stage that applies to the item.

    A job that exists for the current version is kept as it is; one for another
    version that has ended is queued again for this one."""
    satisfied: dict[str, bool] = {}
    ended: set[str] = set()  # requirements that ended without a result
    for r in conn.execute(
        "SELECT stage, result_version, state FROM jobs WHERE item_id = ?", (item_id,)
    ):
        satisfied[str(r[0])] = r[1] is not None
        if r[1] is None and r[2] in ("failed", "dead", "cancelled", "skipped"):
            ended.add(str(r[0]))
    added = 0
    for stage in registry.for_kind(kind):
        blocked = sum(1 for req in stage.requires if not satisfied.get(req, False))
        dead_end = next((req for req in stage.requires if req in ended), None)
        cur = conn.execute(
            """INSERT INTO jobs (item_id, stage, version, lane, session_id, state, max_attempts,
                                 created_at, seq, blocked)
               VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)
               ON CONFLICT (item_id, stage) DO UPDATE SET
                   version = excluded.version, state = 'queued', lane = excluded.lane,
                   session_id = excluded.session_id, attempts = 0, crashes = 0, error = NULL,
                   not_before = 0, dispatched = 0, suspect = 0, finished_at = NULL,
                   blocked = excluded.blocked, seq = excluded.seq
               WHERE jobs.version != excluded.version
                 AND jobs.state IN ('done', 'failed', 'dead', 'skipped', 'waiting')""",
            (
                item_id,
                stage.name,
                stage.version,
                stage.lane,
                session_id,
                settings.max_attempts,
                now,
                seq,
                blocked,
            ),
        )
        added += cur.rowcount
        existed = stage.name in satisfied
        satisfied.setdefault(stage.name, False)
        if cur.rowcount and existed:  # an ended job queued again, not a new one
            ended.discard(stage.name)  # queued again (a new version): it may yet finish
            revived = _revive_dependents(conn, registry, item_id, stage.name, seq)
            if revived:
                added += revived
                recompute_blocked(conn, registry, [item_id], seq)
        if dead_end is not None:  # it would wait forever for a requirement that ended
            ended.add(stage.name)
            conn.execute(
                """UPDATE jobs SET state = 'skipped', error = ?, finished_at = ?, seq = ?
                   WHERE item_id = ? AND stage = ? AND state = 'queued' AND blocked > 0""",
                (f"Skipped: needs {dead_end}, which did not finish.", now, seq, item_id,
                 stage.name),
            )  # fmt: skip
    return added


def _revive_dependents(
    conn: sqlite3.Connection, registry: StageRegistry, item_id: int, stage: str, seq: int
) -> int:
    """A requirement queued again: the jobs skipped because it had failed wait for it."""
    dependents = registry.all_dependents(stage)
    if not dependents:
        return 0
    return conn.execute(
        f"""UPDATE jobs SET state = 'queued', error = NULL, attempts = 0, crashes = 0,
                            not_before = 0, finished_at = NULL, seq = ?
            WHERE item_id = ? AND stage IN ({marks(len(dependents))}) AND state = 'skipped'""",
        (seq, item_id, *dependents),
    ).rowcount


# -- feeding -----------------------------------------------------------------------


@dataclass(frozen=True)
class ReadyJob:
    id: int
    stage: str
    priority: int


def paused_sessions(conn: sqlite3.Connection) -> list[int]:
    return [int(r[0]) for r in conn.execute("SELECT id FROM sessions WHERE paused = 1")]


def ready_jobs(
    conn: sqlite3.Connection,
    lane: str,
    limit: int,
    now: float,
    paused: Sequence[int] | None = None,
) -> list[ReadyJob]:
    """Up to `limit` jobs of a lane ready to dispatch, in priority order (read only).

    Walks the partial index of ready jobs. When import sessions are paused, their
    jobs may lead the queue: then each running session is read on its own index
    range and the results merged, so paused rows are never walked."""
    if limit <= 0:
        return []
    paused = paused_sessions(conn) if paused is None else paused
    base = """SELECT id, stage, priority FROM jobs INDEXED BY {index}
              WHERE lane = ? AND state = 'queued' AND dispatched = 0 AND blocked = 0
                AND suspect = 0 AND not_before <= ?{extra}
              ORDER BY priority, id LIMIT ?"""
    if not paused:
        rows = conn.execute(
            base.format(index="jobs_ready", extra=""), (lane, now, limit)
        ).fetchall()
        return [ReadyJob(int(r[0]), str(r[1]), int(r[2])) for r in rows]
    paused_set = set(paused)
    sessions = [
        int(r[0])
        for r in conn.execute(
            """SELECT DISTINCT session_id FROM job_counts
               WHERE lane = ? AND state = 'queued' AND n > 0""",
            (lane,),
        )
        if int(r[0]) not in paused_set
    ]
    streams = []
    for session in sessions:
        if session == 0:  # job_counts' stand-in for "no session"
            sql = base.format(index="jobs_ready_session", extra=" AND session_id IS NULL")
            params: tuple[object, ...] = (lane, now, limit)
        else:
            sql = base.format(index="jobs_ready_session", extra=" AND session_id = ?")
            params = (lane, now, session, limit)
        streams.append(
            [ReadyJob(int(r[0]), str(r[1]), int(r[2])) for r in conn.execute(sql, params)]
        )
    merged = heapq.merge(*streams, key=lambda j: (j.priority, j.id))
    return [job for _, job in zip(range(limit), merged, strict=False)]


def mark_dispatched(conn: sqlite3.Connection, job_ids: Sequence[int]) -> list[tuple[int, int]]:
    """Inside a write transaction: take the jobs still ready; returns (job id, new token)."""
    taken: list[tuple[int, int]] = []
    for part in chunks(job_ids):
        rows = conn.execute(
            f"""UPDATE jobs SET dispatched = 1, token = token + 1
                WHERE id IN ({marks(len(part))}) AND state = 'queued' AND dispatched = 0
                RETURNING id, token""",
            tuple(part),
        ).fetchall()
        taken.extend((int(r[0]), int(r[1])) for r in rows)
    order = {job_id: i for i, job_id in enumerate(job_ids)}
    taken.sort(key=lambda t: order[t[0]])
    return taken


def take_for_dispatch(
    conn: sqlite3.Connection, lane: str, limit: int, now: float
) -> list[tuple[int, int]]:
    """Mark up to `limit` ready jobs of a lane as dispatched; returns (job id, token)."""
    return mark_dispatched(conn, [j.id for j in ready_jobs(conn, lane, limit, now)])


def undispatch(conn: sqlite3.Connection, pairs: Sequence[tuple[int, int]]) -> int:
    """Messages that will not run (host stopping, handler failed): the feeder sends
    these jobs again later. The token moves on, so if such a message does turn up (a
    shared broker keeps its messages), it runs nothing."""
    n = 0
    for job_id, token in pairs:
        n += conn.execute(
            """UPDATE jobs SET dispatched = 0, token = token + 1
               WHERE id = ? AND token = ? AND state = 'queued' AND dispatched = 1""",
            (job_id, token),
        ).rowcount
    return n


def prioritize(conn: sqlite3.Connection, item_ids: Sequence[int]) -> int:
    """Move the items' waiting jobs to the interactive lane (the user is looking at them)."""
    if not item_ids:
        return 0
    seq = next_seq(conn)
    moved = 0
    for part in chunks(item_ids):
        # `+state` keeps the planner on the (item_id, stage) index: with the state
        # index it walked every queued job (25 ms at 300k under the write lock).
        moved += conn.execute(
            f"""UPDATE jobs SET lane = 'interactive', seq = ?
                WHERE item_id IN ({marks(len(part))}) AND +state = 'queued'
                  AND dispatched = 0 AND lane != 'interactive'""",
            (seq, *part),
        ).rowcount
    return moved


# -- running -----------------------------------------------------------------------


def claim(
    conn: sqlite3.Connection,
    job_id: int,
    token: int,
    owner: str,
    now: float,
    lease_s: float,
    batch_n: int = 1,
    seq: int | None = None,
) -> ClaimedJob | None:
    """Start a job if this message may run it; counts the attempt. Inside a write txn
    (`seq`: that transaction's change number, when it already took one)."""
    seq = next_seq(conn) if seq is None else seq
    row = conn.execute(
        f"""UPDATE jobs SET state = 'running', attempts = attempts + 1, owner = ?,
                            started_at = ?, lease_until = ?, dispatched = 0, seq = ?,
                            batch_n = ?, cancel_requested = 0,
                            progress_done = NULL, progress_total = NULL, progress_note = NULL
            WHERE id = ? AND token = ? AND state = 'queued'
              AND NOT EXISTS (SELECT 1 FROM lanes l WHERE l.name = jobs.lane AND l.paused = 1)
              AND NOT EXISTS (SELECT 1 FROM sessions s
                              WHERE s.id = jobs.session_id AND s.paused = 1)
            {_CLAIM_RETURNING}""",
        (owner, now, now + lease_s, seq, batch_n, job_id, token),
    ).fetchone()
    if row is None:
        # Paused since dispatch (or stale message): let the feeder send it again later.
        conn.execute(
            "UPDATE jobs SET dispatched = 0 WHERE id = ? AND token = ? AND state = 'queued'",
            (job_id, token),
        )
        return None
    return ClaimedJob(*row)


def claim_many(
    conn: sqlite3.Connection,
    pairs: Sequence[tuple[int, int]],
    owner: str,
    now: float,
    lease_s: float,
) -> list[ClaimedJob]:
    """Claim a batch in one transaction; each member records the batch's size, so a
    crash mid-batch can be blamed by bisection rather than on every member."""
    jobs = []
    for job_id, token in pairs:
        job = claim(conn, job_id, token, owner, now, lease_s, batch_n=len(pairs))
        if job is not None:
            jobs.append(job)
    if jobs and len(jobs) != len(pairs):  # some were paused or stale: record the real size
        for part in chunks([j.id for j in jobs]):
            conn.execute(
                f"UPDATE jobs SET batch_n = ? WHERE id IN ({marks(len(part))})",
                (len(jobs), *part),
            )
        jobs = [replace(j, batch_n=len(jobs)) for j in jobs]
    return jobs


def finish_done(
    conn: sqlite3.Connection,
    job: ClaimedJob,
    seq: int,
    now: float,
    *,
    version: str | None = None,
    registry: StageRegistry | None = None,
) -> bool:
    """Mark the job done with the result of `version` (the code that ran); unblock the
    stages that were waiting for it. A task job asked again while running is queued
    once more instead."""
    version = version or job.version
    cur = conn.execute(
        """UPDATE jobs SET
               state = CASE WHEN rerun = 1 THEN 'queued' ELSE 'done' END,
               attempts = CASE WHEN rerun = 1 THEN 0 ELSE attempts END,
               rerun = 0, error = NULL, finished_at = ?, owner = NULL, lease_until = NULL,
               suspect = 0, crashes = 0, version = ?, result_version = ?, seq = ?,
               progress_done = NULL, progress_total = NULL, progress_note = NULL
           WHERE id = ? AND state = 'running' AND token = ?""",
        (now, version, version, seq, job.id, job.token),
    )
    if cur.rowcount != 1:
        return False
    if job.item_id is not None and job.result_version not in (None, version):
        # The old version's result served until now: replaced, it goes.
        conn.execute(
            "DELETE FROM results WHERE item_id = ? AND stage = ? AND version != ?",
            (job.item_id, job.stage, version),
        )
    if job.item_id is not None and job.result_version is None and registry is not None:
        dependents = [s.name for s in registry.dependents(job.stage)]
        if dependents:
            conn.execute(
                f"""UPDATE jobs SET blocked = blocked - 1, seq = ?
                    WHERE item_id = ? AND stage IN ({marks(len(dependents))}) AND blocked > 0""",
                (seq, job.item_id, *dependents),
            )
    return True


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
    registry: StageRegistry | None = None,
) -> str:
    """Record a failure; returns the new state (failed, queued for retry, or dead).
    Stages that needed this one's result are skipped with the reason."""
    seq = next_seq(conn)
    if permanent:
        state, not_before = "failed", 0.0
    elif job.attempts >= job.max_attempts:
        state, not_before = "dead", 0.0
        reason = f"{reason} (gave up after {job.attempts} attempts)"
    else:
        state, not_before = "queued", now + backoff_delay(job.attempts, settings)
    # A task asked for again while it ran still gets its run, even if this one failed.
    cur = conn.execute(
        """UPDATE jobs SET
               state = CASE WHEN rerun = 1 AND ? != 'queued' THEN 'queued' ELSE ? END,
               attempts = CASE WHEN rerun = 1 AND ? != 'queued' THEN 0 ELSE attempts END,
               rerun = CASE WHEN ? = 'queued' THEN rerun ELSE 0 END,
               error = ?, not_before = ?, finished_at = ?, owner = NULL,
               lease_until = NULL, dispatched = 0, suspect = 0, seq = ?,
               progress_done = NULL, progress_total = NULL, progress_note = NULL
           WHERE id = ? AND state = 'running' AND token = ?
           RETURNING state""",
        (state, state, state, state, reason, not_before, now, seq, job.id, job.token),
    ).fetchone()
    if cur is None:
        return ""  # not ours any more (handed back, timed out, recovered): nothing written
    state = str(cur[0])
    if state != "queued" and job.item_id is not None and registry:
        skip_dependents(conn, registry, job.item_id, job.stage, reason, seq, now)
    return state


def finish_cancelled(
    conn: sqlite3.Connection, job: ClaimedJob, now: float, registry: StageRegistry | None = None
) -> bool:
    seq = next_seq(conn)
    done = (
        conn.execute(
            """UPDATE jobs SET state = 'cancelled', error = 'Cancelled.', finished_at = ?,
                               owner = NULL, lease_until = NULL, dispatched = 0, suspect = 0,
                               rerun = 0, seq = ?
               WHERE id = ? AND state = 'running' AND token = ?""",
            (now, seq, job.id, job.token),
        ).rowcount
        == 1
    )
    if done and job.item_id is not None and job.result_version is None and registry:
        skip_dependents(conn, registry, job.item_id, job.stage, "cancelled", seq, now)
    return done


def park(conn: sqlite3.Connection, job: ClaimedJob, reason: str, now: float) -> bool:
    """The job cannot run yet (its model is not here): `waiting`, its attempt refunded,
    with `reason` saying what to do. Nothing is skipped: it runs when it can."""
    seq = next_seq(conn)
    return (
        conn.execute(
            """UPDATE jobs SET state = 'waiting', attempts = max(attempts - 1, 0), error = ?,
                               owner = NULL, lease_until = NULL, dispatched = 0, suspect = 0,
                               finished_at = ?, seq = ?, progress_done = NULL,
                               progress_total = NULL, progress_note = NULL
               WHERE id = ? AND state = 'running' AND token = ?""",
            (reason, now, seq, job.id, job.token),
        ).rowcount
        == 1
    )


def park_stage(
    conn: sqlite3.Connection, registry: StageRegistry, stage: str, reason: str, now: float
) -> int:
    """Every queued job of `stage`, and every job blocked on one of them, waits too:
    no point claiming jobs whose model is known to be missing, and a job waiting for
    a waiting requirement is not work left to do (an import finishes without them)."""
    seq = next_seq(conn)
    n = conn.execute(
        """UPDATE jobs SET state = 'waiting', error = ?, dispatched = 0, finished_at = ?, seq = ?
           WHERE +stage = ? AND state = 'queued'""",
        (reason, now, seq, stage),
    ).rowcount
    dependents = registry.all_dependents(stage) if stage in registry else []
    if dependents:
        n += conn.execute(
            f"""UPDATE jobs SET state = 'waiting', error = ?, dispatched = 0, finished_at = ?,
                                seq = ?
                WHERE state = 'queued' AND blocked > 0 AND stage IN ({marks(len(dependents))})
                  AND item_id IN (SELECT item_id FROM jobs WHERE state = 'waiting'
                                  AND +stage = ?)""",
            (f"Waits for {stage}: {reason}", now, seq, *dependents, stage),
        ).rowcount
    return n


def wake(conn: sqlite3.Connection, registry: StageRegistry, stage: str) -> int:
    """The stage can run again: its waiting jobs, and those waiting for them, are queued."""
    seq = next_seq(conn)
    names = [stage, *(registry.all_dependents(stage) if stage in registry else [])]
    return conn.execute(
        f"""UPDATE jobs SET state = 'queued', error = NULL, not_before = 0, finished_at = NULL,
                            dispatched = 0, seq = ?
            WHERE state = 'waiting' AND stage IN ({marks(len(names))}) AND {_NOT_OFFLINE}""",
        (seq, *names, OFFLINE_SUFFIX),
    ).rowcount


# Jobs waiting for their item's folder (engine/jobs/offline.py) are not a stage's wait:
# waking a stage leaves them waiting, and they do not make a stage look parked.
_NOT_OFFLINE = f"substr(coalesce(error, ''), -{len(OFFLINE_SUFFIX)}) != ?"


def waiting_stages(conn: sqlite3.Connection) -> dict[str, tuple[int, str]]:
    """Stages with jobs waiting for the stage (its model): {stage: (count, a reason)}."""
    return {
        str(r[0]): (int(r[1]), str(r[2] or ""))
        for r in conn.execute(
            f"""SELECT stage, count(*), max(error) FROM jobs
                WHERE state = 'waiting' AND {_NOT_OFFLINE} GROUP BY stage""",
            (OFFLINE_SUFFIX,),
        )
    }


def hand_back(conn: sqlite3.Connection, jobs: Sequence[ClaimedJob]) -> int:
    """A graceful stop: running jobs go back to the queue without costing an attempt.
    The token moves on, so a result that arrives after this is discarded."""
    if not jobs:
        return 0
    seq = next_seq(conn)
    n = 0
    for job in jobs:
        n += conn.execute(
            """UPDATE jobs SET state = 'queued', attempts = max(attempts - 1, 0), owner = NULL,
                               lease_until = NULL, dispatched = 0, token = token + 1, seq = ?,
                               progress_done = NULL, progress_total = NULL, progress_note = NULL
               WHERE id = ? AND state = 'running' AND token = ?""",
            (seq, job.id, job.token),
        ).rowcount
    return n


def record_progress(
    conn: sqlite3.Connection, job: ClaimedJob, done: int, total: int | None, note: str
) -> None:
    seq = next_seq(conn)
    conn.execute(
        """UPDATE jobs SET progress_done = ?, progress_total = ?, progress_note = ?, seq = ?
           WHERE id = ? AND state = 'running' AND token = ?""",
        (done, total, note[:200] or None, seq, job.id, job.token),
    )


def skip_dependents(
    conn: sqlite3.Connection,
    registry: StageRegistry,
    item_id: int,
    stage: str,
    reason: str,
    seq: int,
    now: float,
) -> int:
    """Jobs waiting (directly or not) for a stage that ended without a result."""
    dependents = registry.all_dependents(stage)
    if not dependents:
        return 0
    return conn.execute(
        f"""UPDATE jobs SET state = 'skipped', error = ?, dispatched = 0, suspect = 0,
                            finished_at = ?, seq = ?
            WHERE item_id = ? AND stage IN ({marks(len(dependents))})
              AND state IN ('queued', 'waiting') AND blocked > 0""",
        (f"Skipped: needs {stage}, which did not finish ({reason})", now, seq, item_id,
         *dependents),
    ).rowcount  # fmt: skip


def recompute_blocked(
    conn: sqlite3.Connection, registry: StageRegistry, item_ids: Sequence[int], seq: int
) -> None:
    """Count again, for queued jobs of these items, the requirements still without result."""
    for stage in registry.stages():
        if not stage.requires:
            continue
        reqs = list(stage.requires)
        for part in chunks(item_ids):
            # Requirements with a result, counted down from all: a requirement with no
            # job row yet is not satisfied either.
            conn.execute(
                f"""UPDATE jobs SET seq = ?, blocked = ? -
                        (SELECT count(*) FROM jobs r WHERE r.item_id = jobs.item_id
                           AND r.stage IN ({marks(len(reqs))}) AND r.result_version IS NOT NULL)
                    WHERE item_id IN ({marks(len(part))}) AND stage = ? AND state = 'queued'""",
                (seq, len(reqs), *reqs, *part, stage.name),
            )


# -- control ---------------------------------------------------------------------------


def retry(
    conn: sqlite3.Connection,
    *,
    states: Iterable[str] = RETRYABLE,
    item_ids: Sequence[int] | None = None,
    job_ids: Sequence[int] | None = None,
    registry: StageRegistry | None = None,
) -> int:
    """Put failed/dead/skipped (or cancelled) jobs back in the queue with a fresh attempt
    count; jobs skipped because of them come back with them."""
    seq = next_seq(conn)
    states = tuple(states)
    where = [f"state IN ({marks(len(states))})"]
    params: list[object] = [*states]
    if item_ids is not None:
        where.append(f"item_id IN ({marks(len(item_ids))})")
        params.extend(item_ids)
    if job_ids is not None:
        where.append(f"id IN ({marks(len(job_ids))})")
        params.extend(job_ids)
    rows = conn.execute(
        f"SELECT id, item_id, stage FROM jobs WHERE {' AND '.join(where)}", params
    ).fetchall()
    ids = {int(r[0]) for r in rows}
    items = sorted({int(r[1]) for r in rows if r[1] is not None})
    if registry is not None:
        for _, item_id, stage in rows:
            dependents = registry.all_dependents(str(stage)) if item_id is not None else []
            if dependents:
                ids.update(
                    int(r[0])
                    for r in conn.execute(
                        f"""SELECT id FROM jobs WHERE item_id = ? AND state = 'skipped'
                              AND stage IN ({marks(len(dependents))})""",
                        (item_id, *dependents),
                    )
                )
    count = 0
    ordered = sorted(ids)
    for part in chunks(ordered):
        count += conn.execute(
            f"""UPDATE jobs SET state = 'queued', attempts = 0, crashes = 0, error = NULL,
                                not_before = 0, dispatched = 0, suspect = 0, finished_at = NULL,
                                seq = ?
                WHERE id IN ({marks(len(part))})""",
            (seq, *part),
        ).rowcount
    if registry is not None and items:
        recompute_blocked(conn, registry, items, seq)
    return count


def fail_waiting_jobs(conn: sqlite3.Connection, item_id: int, reason: str, now: float) -> int:
    """The item's content is gone (its file was edited): its queued jobs cannot run."""
    seq = next_seq(conn)
    return conn.execute(
        """UPDATE jobs SET state = 'failed', error = ?, dispatched = 0, suspect = 0,
                           finished_at = ?, seq = ?
           WHERE item_id = ? AND +state IN ('queued', 'waiting')""",
        (reason, now, seq, item_id),
    ).rowcount


def cancel_session(
    conn: sqlite3.Connection,
    session_id: int,
    now: float,
    registry: StageRegistry | None = None,
) -> int:
    seq = next_seq(conn)
    conn.execute("UPDATE sessions SET state = 'cancelled', seq = ? WHERE id = ?", (seq, session_id))
    conn.execute(
        "UPDATE jobs SET cancel_requested = 1 WHERE session_id = ? AND state = 'running'",
        (session_id,),
    )
    rows = conn.execute(
        """UPDATE jobs SET state = 'cancelled', error = 'Import cancelled.', dispatched = 0,
                           suspect = 0, finished_at = ?, seq = ?
           WHERE session_id = ? AND state IN ('queued', 'waiting')
           RETURNING item_id, result_version""",
        (now, seq, session_id),
    ).fetchall()
    if registry is not None:
        skip_stranded(conn, registry, [int(r[0]) for r in rows if r[0] and r[1] is None], seq, now)
    return len(rows)


def skip_stranded(
    conn: sqlite3.Connection,
    registry: StageRegistry,
    item_ids: Sequence[int],
    seq: int,
    now: float,
) -> int:
    """Queued jobs of these items waiting for a requirement that ended without a result
    (cancelled, dead in a crash): they would wait forever. In stage order, so a chain
    of dependents is skipped through."""
    if not item_ids:
        return 0
    ids = sorted(set(item_ids))
    n = 0
    for stage in registry.stages():
        if not stage.requires:
            continue
        reqs = list(stage.requires)
        for part in chunks(ids):
            n += conn.execute(
                f"""UPDATE jobs SET state = 'skipped', dispatched = 0, suspect = 0,
                        finished_at = ?, seq = ?,
                        error = 'Skipped: a stage it needs did not finish.'
                    WHERE item_id IN ({marks(len(part))}) AND stage = ?
                      AND state IN ('queued', 'waiting') AND blocked > 0
                      AND EXISTS (SELECT 1 FROM jobs r WHERE r.item_id = jobs.item_id
                        AND r.stage IN ({marks(len(reqs))}) AND r.result_version IS NULL
                        AND r.state IN ('failed', 'dead', 'cancelled', 'skipped'))""",
                (now, seq, *part, stage.name, *reqs),
            ).rowcount
    return n


def cancel_jobs(
    conn: sqlite3.Connection,
    job_ids: Sequence[int],
    now: float,
    registry: StageRegistry | None = None,
) -> int:
    """Cancel queued jobs at once; ask running ones to stop (they check cooperatively)."""
    seq = next_seq(conn)
    stranded: list[int] = []
    n = 0
    for part in chunks(job_ids):
        conn.execute(
            f"""UPDATE jobs SET cancel_requested = 1, seq = ?
                WHERE id IN ({marks(len(part))}) AND state = 'running'""",
            (seq, *part),
        )
        rows = conn.execute(
            f"""UPDATE jobs SET state = 'cancelled', error = 'Cancelled.', dispatched = 0,
                                suspect = 0, finished_at = ?, seq = ?
                WHERE id IN ({marks(len(part))}) AND state IN ('queued', 'waiting')
                RETURNING item_id, result_version""",
            (now, seq, *part),
        ).fetchall()
        n += len(rows)
        stranded.extend(int(r[0]) for r in rows if r[0] and r[1] is None)
    if registry is not None:
        skip_stranded(conn, registry, stranded, seq, now)
    return n


def set_lane_paused(conn: sqlite3.Connection, lanes: Iterable[str], paused: bool) -> None:
    for lane in lanes:
        conn.execute("UPDATE lanes SET paused = ? WHERE name = ?", (int(paused), lane))


def set_session_paused(conn: sqlite3.Connection, session_id: int, paused: bool) -> None:
    seq = next_seq(conn)
    conn.execute(
        "UPDATE sessions SET paused = ?, seq = ? WHERE id = ?", (int(paused), seq, session_id)
    )


# -- questions -----------------------------------------------------------------------


def pending_work(conn: sqlite3.Connection, session_id: int | None = None) -> int:
    """How many jobs still need a worker: running, or queued in a running lane and session.
    Read from the trigger-kept counters: the same cost at a million jobs as at ten."""
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


def has_pending_work(conn: sqlite3.Connection, session_id: int | None = None) -> bool:
    """Is any job still to run, or a re-index not yet finished?"""
    if pending_work(conn, session_id) > 0:
        return True
    # Until it is marked done (by the host's next housekeeping tick), a re-index is
    # pending: a host that stopped on "idle" before that would leave it "processing".
    sql = """SELECT 1 FROM sessions WHERE kind = 'reindex' AND state = 'processing'
               AND paused = 0
               AND NOT EXISTS (SELECT 1 FROM lanes WHERE name = 'batch' AND paused = 1)"""
    params: tuple[object, ...] = ()
    if session_id is not None:
        sql += " AND id = ?"
        params = (session_id,)
    return conn.execute(sql + " LIMIT 1", params).fetchone() is not None


def now_s() -> float:
    return time.time()
