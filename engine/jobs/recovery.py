"""After a crash: orphaned jobs, suspects run apart, and leases.

A job is `running` with an `owner` and a `lease_until` that its host renews while
it runs. A job is an orphan when its host is known dead (recovery at start: the
library's host lock proves that no other host on this machine is alive) or when
its lease has expired (a host elsewhere that stopped renewing).

Orphans become suspects: the crash may have been caused by one of them. A job
claimed alone is charged the attempt (after `max_attempts` crashes it is dead).
Members of a batch are not all charged for one crash: the attempt is given back
and they run again in batches half the size, with nothing else in flight, until
the culprit runs alone and is charged.
"""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Sequence

from engine.jobs.ledger import CRASH_REASON, marks, skip_stranded
from engine.pipeline.registry import StageRegistry
from engine.store.db import next_seq


def local_owner_prefix() -> str:
    return f"{socket.gethostname()}:"


def _orphan_filter(
    now: float, owner_prefix: str | None, keep_prefix: str | None = None
) -> tuple[str, list[object]]:
    where, params = "", []
    if owner_prefix is not None:
        # Ours (same machine, we hold the library's lock) or anyone's whose lease ran out.
        where = " AND (owner LIKE ? ESCAPE '\\' OR lease_until < ?)"
        params = [_like_prefix(owner_prefix), now]
    if keep_prefix is not None:  # remote workers' jobs: their leases decide, not our start
        where += " AND owner NOT LIKE ? ESCAPE '\\'"
        params.append(_like_prefix(keep_prefix))
    return where, params


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def recover(
    conn: sqlite3.Connection,
    now: float,
    owner_prefix: str | None = None,
    registry: StageRegistry | None = None,
    keep_prefix: str | None = None,
) -> dict[str, int]:
    """Put orphaned running jobs back (or dead-letter them), forget dispatches.

    `owner_prefix=None` treats every running job as an orphan (a private library
    whose lock we hold); otherwise jobs of owners starting with the prefix, and
    any job whose lease has expired. Jobs of owners starting with `keep_prefix` (remote
    workers, "remote:") are left to their leases."""
    seq = next_seq(conn)
    where, params = _orphan_filter(now, owner_prefix, keep_prefix)
    counts = _requeue_orphans(conn, where, params, seq, now, registry)
    # Token moves on: a message still in a shared broker from before runs nothing.
    counts["undispatched"] = conn.execute(
        "UPDATE jobs INDEXED BY jobs_dispatched SET dispatched = 0, token = token + 1"
        " WHERE dispatched = 1 AND state = 'queued'"
    ).rowcount
    return counts


def expire_leases(
    conn: sqlite3.Connection,
    now: float,
    except_owner: str,
    registry: StageRegistry | None = None,
    keep_prefix: str | None = None,
) -> dict[str, int]:
    """Running jobs of other hosts whose lease ran out: those hosts are gone. Owners
    starting with `keep_prefix` ("remote:") are expired by their dispatcher instead."""
    where = " AND owner != ? AND lease_until < ?"
    params: list[object] = [except_owner, now]
    if keep_prefix is not None:
        where += " AND owner NOT LIKE ? ESCAPE '\\'"
        params.append(_like_prefix(keep_prefix))
    if (
        conn.execute(
            f"SELECT 1 FROM jobs INDEXED BY jobs_running WHERE state = 'running'{where} LIMIT 1",
            params,
        ).fetchone()
        is None
    ):
        return {"dead": 0, "requeued": 0, "refunded": 0}
    seq = next_seq(conn)
    return _requeue_orphans(conn, where, params, seq, now, registry)


def _requeue_orphans(
    conn: sqlite3.Connection,
    where: str,
    params: list[object],
    seq: int,
    now: float,
    registry: StageRegistry | None = None,
) -> dict[str, int]:
    running = "FROM jobs INDEXED BY jobs_running WHERE state = 'running'"
    # Batch members: the crash cannot be blamed on any one of them. Give the attempt
    # back and bisect: next time they run in batches of half the size.
    refunded = conn.execute(
        f"""UPDATE jobs SET state = 'queued', attempts = max(attempts - 1, 0), owner = NULL,
                            lease_until = NULL, dispatched = 0, suspect = max(batch_n / 2, 1),
                            error = 'Interrupted; will run again.', seq = ?
            WHERE id IN (SELECT id {running} AND batch_n > 1{where})""",
        (seq, *params),
    ).rowcount
    # Claimed alone: this attempt ended in a crash.
    dead_rows = conn.execute(
        f"""UPDATE jobs SET state = 'dead', crashes = crashes + 1,
                            error = replace(?, '{{n}}', crashes + 1), owner = NULL,
                            lease_until = NULL, dispatched = 0, suspect = 0, finished_at = ?,
                            seq = ?
            WHERE id IN (SELECT id {running} AND attempts >= max_attempts{where})
            RETURNING item_id, result_version""",
        (CRASH_REASON, now, seq, *params),
    ).fetchall()
    dead = len(dead_rows)
    if registry is not None:  # what waited for them would wait forever
        skip_stranded(conn, registry, [int(r[0]) for r in dead_rows if r[0] and r[1] is None],
                      seq, now)  # fmt: skip
    requeued = conn.execute(
        f"""UPDATE jobs SET state = 'queued', crashes = crashes + 1, owner = NULL,
                            lease_until = NULL, dispatched = 0, suspect = 1,
                            error = 'Interrupted; will run again.', seq = ?
            WHERE id IN (SELECT id {running}{where})""",
        (seq, *params),
    ).rowcount
    return {"dead": dead, "requeued": requeued, "refunded": refunded}


def _active_filter(lanes: Sequence[str]) -> str:
    return f"""AND j.lane IN ({marks(len(lanes))})
               AND NOT EXISTS (SELECT 1 FROM sessions s
                               WHERE s.id = j.session_id AND s.paused = 1)"""


def has_suspects(conn: sqlite3.Connection, lanes: Sequence[str]) -> bool:
    """Suspects that could run now: in a running lane and session (pauses honoured
    exactly as `take_suspects` honours them, or a paused suspect would keep the
    host waiting for it forever)."""
    if not lanes:
        return False
    row = conn.execute(
        f"""SELECT 1 FROM jobs j INDEXED BY jobs_suspect
            WHERE j.suspect > 0 AND j.state IN ('queued', 'running') {_active_filter(lanes)}
            LIMIT 1""",
        tuple(lanes),
    ).fetchone()
    return row is not None


def take_suspects(
    conn: sqlite3.Connection,
    lanes: Sequence[str],
    now: float,
    batch_limit: dict[str, int],
    owner: str | None = None,
) -> tuple[str, list[tuple[int, int]]] | None:
    """Dispatch the next group of suspects, to run with nothing else in flight.

    Only when nothing else runs or waits in Huey: if it crashes the host again,
    only its members are blamed. With `owner` (a host sharing its broker), only
    that host's own running jobs count: other hosts' work cannot crash this one.
    Returns (lane, [(job id, token)])."""
    if owner is None:
        busy = (
            conn.execute(
                "SELECT 1 FROM jobs INDEXED BY jobs_running WHERE state = 'running' LIMIT 1"
            ).fetchone()
            or conn.execute(
                "SELECT 1 FROM jobs INDEXED BY jobs_dispatched WHERE dispatched = 1 LIMIT 1"
            ).fetchone()
        )
    else:
        busy = conn.execute(
            """SELECT 1 FROM jobs INDEXED BY jobs_running
               WHERE state = 'running' AND owner = ? LIMIT 1""",
            (owner,),
        ).fetchone()
    if busy or not lanes:
        return None
    first = conn.execute(
        f"""SELECT j.id, j.lane, j.stage, j.suspect FROM jobs j INDEXED BY jobs_suspect
            WHERE j.suspect > 0 AND j.state = 'queued' AND j.dispatched = 0
              AND j.not_before <= ? {_active_filter(lanes)}
            ORDER BY j.id LIMIT 1""",
        (now, *lanes),
    ).fetchone()
    if first is None:
        return None
    lane, stage, size = str(first[1]), str(first[2]), int(first[3])
    size = max(1, min(size, batch_limit.get(stage, 1)))
    # The group: the first and the next of its stage and lane, with the same filters
    # (a paused suspect taken here would be handed back by claim on every tick).
    ids = [
        int(r[0])
        for r in conn.execute(
            f"""SELECT j.id FROM jobs j INDEXED BY jobs_suspect
                WHERE j.suspect > 0 AND j.state = 'queued' AND j.dispatched = 0 AND j.stage = ?
                  AND j.not_before <= ? AND j.id >= ? {_active_filter([lane])}
                ORDER BY j.id LIMIT ?""",
            (stage, now, int(first[0]), lane, size),
        )
    ]
    taken = []
    for job_id in ids:
        row = conn.execute(
            """UPDATE jobs SET dispatched = 1, token = token + 1 WHERE id = ?
               RETURNING token""",
            (job_id,),
        ).fetchone()
        taken.append((job_id, int(row[0])))
    return lane, taken


def renew_leases(conn: sqlite3.Connection, owner: str, until: float) -> int:
    return conn.execute(
        """UPDATE jobs INDEXED BY jobs_running SET lease_until = ?
           WHERE state = 'running' AND owner = ?""",
        (until, owner),
    ).rowcount


def cancel_requests(conn: sqlite3.Connection, owner: str) -> list[int]:
    """Running jobs of this host that someone asked to cancel."""
    return [
        int(r[0])
        for r in conn.execute(
            """SELECT id FROM jobs INDEXED BY jobs_running
               WHERE state = 'running' AND owner = ? AND cancel_requested = 1""",
            (owner,),
        )
    ]
