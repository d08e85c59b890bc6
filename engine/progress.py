"""Progress read models for the jobs panel, the imports list and the status bar.

Everything here is a read over `catalog.db` (no writes, no Qt): counts come from
the trigger-kept `job_counts` table, so they cost the same at a million jobs as at
ten; lists (running now, failed and dead) are bounded by `limit`.

Rates are "jobs finished per second over a sliding window" (default 30 s), read
from `jobs.finished_at`. A `ProgressTracker` remembers which change-sequence
number was current a window ago, so that query reads only the rows changed since
(`jobs_seq` index) instead of the whole ledger; the stateless functions work
without one (they then scan once).

Time is injectable (`now=`) so tests need no sleeping or patching.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from engine.config import LANES
from engine.jobs.ledger import STATES, pending_work

WINDOW_S = 30.0
"""Default sliding window for rates."""

MIN_SPAN_S = 1.0
"""A rate is never computed over less than this, so the first job does not read as 1000/s."""

"""Finishes may commit slightly out of clock order (two writers); look this far past."""

PROBLEM_STATES = ("failed", "dead")
FINISHED_STATES = ("done", "failed", "dead")  # what counts towards a rate (not cancelled)


# -- lanes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LaneCounts:
    lane: str
    paused: bool
    queued: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    dead: int = 0
    cancelled: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The shape of one lane in `shoebox status --json` ("lanes")."""
        data = asdict(self)
        del data["lane"]
        return data


def lane_counts(conn: sqlite3.Connection) -> dict[str, LaneCounts]:
    """Jobs per lane and state, and whether the lane is paused (lanes in priority order)."""
    paused = {str(r[0]): bool(r[1]) for r in conn.execute("SELECT name, paused FROM lanes")}
    counts: dict[str, dict[str, int]] = {lane: {} for lane in LANES}
    for lane, state, n in conn.execute(
        "SELECT lane, state, sum(n) FROM job_counts GROUP BY lane, state HAVING sum(n) > 0"
    ):
        counts.setdefault(str(lane), {})[str(state)] = int(n)
    return {
        lane: LaneCounts(
            lane,
            paused.get(lane, False),
            **{s: by_state.get(s, 0) for s in STATES},
        )
        for lane, by_state in counts.items()
    }


# -- rates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Recent:
    finished: int
    first_start: float | None


def _recent_finished(
    conn: sqlite3.Connection, now: float, window_s: float, seq_floor: int = 0
) -> dict[int, _Recent]:
    """Jobs finished in the window, per session id (0 = no session), with the earliest
    start among them (so a window that began before the work did is not diluted).

    Reads only the jobs finished in the window, through the `jobs_finished` index: the
    cost does not depend on the size of the ledger, nor on how many rows one transaction
    touched (walking the change sequence read all 200,000 jobs of a "retry all").
    `seq_floor` is accepted for callers that track it; the index makes it unnecessary.
    """
    marks = ",".join("?" * len(FINISHED_STATES))
    rows = conn.execute(
        f"""SELECT coalesce(session_id, 0), count(*), min(coalesce(started_at, finished_at))
            FROM jobs WHERE finished_at >= ? AND finished_at <= ? AND +state IN ({marks})
            GROUP BY 1""",
        (now - window_s, now, *FINISHED_STATES),
    ).fetchall()
    return {int(sid): _Recent(int(n), float(start)) for sid, n, start in rows}


def _rate(recent: _Recent | None, now: float, window_s: float) -> float:
    if recent is None or recent.finished == 0:
        return 0.0
    start = now - window_s
    if recent.first_start is not None:
        start = max(start, recent.first_start)
    return recent.finished / max(now - start, MIN_SPAN_S)


def _eta(remaining: int, rate: float, paused: bool) -> float | None:
    if remaining <= 0:
        return 0.0
    if paused or rate <= 0:
        return None
    return remaining / rate


# -- import sessions ---------------------------------------------------------------------


@dataclass(frozen=True)
class SessionProgress:
    id: int
    roots: list[str]
    state: str  # scanning | processing | done | cancelled
    paused: bool  # the session itself is paused
    lane_paused: bool  # the import lane is paused (nothing of it starts either)
    started_at: float
    files: int  # files the scan catalogued (new, duplicate, unchanged, re-linked)
    items_new: int
    total: int  # jobs of this import
    finished: int  # done + failed + dead + cancelled
    queued: int
    running: int
    done: int
    failed: int
    dead: int
    cancelled: int
    rate: float  # jobs finished per second over the window
    eta_s: float | None  # None: unknown (paused, or nothing finished lately)

    @property
    def remaining(self) -> int:
        return self.queued + self.running

    @property
    def fraction(self) -> float:
        return 1.0 if self.total == 0 else self.finished / self.total

    @property
    def active(self) -> bool:
        return self.state in ("scanning", "processing")

    @property
    def name(self) -> str:
        """A short label: the first root's folder name (+ "and N more")."""
        if not self.roots:
            return f"Import {self.id}"
        first = os.path.basename(self.roots[0].rstrip("/\\")) or self.roots[0]
        more = len(self.roots) - 1
        return f"{first} and {more} more" if more else first

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["remaining"] = self.remaining
        return data


def session_progress(
    conn: sqlite3.Connection,
    *,
    session_ids: Sequence[int] | None = None,
    limit: int | None = None,
    now: float | None = None,
    window_s: float = WINDOW_S,
    seq_floor: int = 0,
) -> list[SessionProgress]:
    """Per-import progress, newest first: done/total, rate and ETA.

    `limit` keeps the newest N sessions; `session_ids` picks some. A session whose
    jobs have all finished reads "done" even before the importer marks it so.
    """
    now = time.time() if now is None else now
    where, params = "", []  # type: str, list[object]
    if session_ids is not None:
        if not session_ids:
            return []
        where = f"WHERE id IN ({','.join('?' * len(session_ids))})"
        params = list(session_ids)
    sql = f"SELECT * FROM sessions {where} ORDER BY id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    rows = conn.execute(sql, params).fetchall()
    if not rows:
        return []
    ids = [int(r["id"]) for r in rows]
    counts: dict[int, dict[str, int]] = {i: {} for i in ids}
    for sid, state, n in conn.execute(
        f"""SELECT session_id, state, sum(n) FROM job_counts
            WHERE session_id IN ({",".join("?" * len(ids))}) GROUP BY session_id, state""",
        ids,
    ):
        counts[int(sid)][str(state)] = int(n)
    lane_paused = bool(
        (conn.execute("SELECT paused FROM lanes WHERE name = 'import'").fetchone() or (0,))[0]
    )
    recent = _recent_finished(conn, now, window_s, seq_floor)
    out = []
    for r in rows:
        sid = int(r["id"])
        c = {s: counts[sid].get(s, 0) for s in STATES}
        total = sum(c.values())
        finished = c["done"] + c["failed"] + c["dead"] + c["cancelled"]
        state = str(r["state"])
        if state == "processing" and finished == total:
            state = "done"
        paused = bool(r["paused"])
        rate = _rate(recent.get(sid), now, window_s) if state != "done" else 0.0
        remaining = c["queued"] + c["running"]
        out.append(
            SessionProgress(
                id=sid,
                roots=list(json.loads(r["roots"])),
                state=state,
                paused=paused,
                lane_paused=lane_paused,
                started_at=float(r["started_at"]),
                files=int(r["files_seen"]),
                items_new=int(r["items_new"]),
                total=total,
                finished=finished,
                queued=c["queued"],
                running=c["running"],
                done=c["done"],
                failed=c["failed"],
                dead=c["dead"],
                cancelled=c["cancelled"],
                rate=rate,
                eta_s=None
                if state == "cancelled"
                else _eta(remaining, rate, paused or lane_paused),
            )
        )
    return out


# -- the whole queue -----------------------------------------------------------------------


@dataclass(frozen=True)
class QueueProgress:
    """The whole queue, for the status bar.

    `total`/`finished` cover the current batch of work: every import that still has
    work to do, plus unfinished jobs outside any import; finished imports drop out,
    so the bar reads "12 of 40" for a new import rather than "100,012 of 100,040".
    """

    items: int  # items in the library
    total: int
    finished: int
    queued: int
    running: int
    failed: int  # failed + dead jobs in the whole library (problems to look at)
    active_imports: int
    paused: bool  # every lane with queued work is paused (or its imports are)
    rate: float
    eta_s: float | None

    @property
    def remaining(self) -> int:
        return self.queued + self.running

    @property
    def busy(self) -> bool:
        return self.remaining > 0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["remaining"] = self.remaining
        return data


def queue_progress(
    conn: sqlite3.Connection,
    *,
    now: float | None = None,
    window_s: float = WINDOW_S,
    seq_floor: int = 0,
) -> QueueProgress:
    now = time.time() if now is None else now
    per_session: dict[int, dict[str, int]] = {}
    problems = 0
    for sid, state, n in conn.execute(
        """SELECT session_id, state, sum(n) FROM job_counts
           GROUP BY session_id, state HAVING sum(n) > 0"""
    ):
        by_state = per_session.setdefault(int(sid), {})
        by_state[str(state)] = by_state.get(str(state), 0) + int(n)
        if state in PROBLEM_STATES:
            problems += int(n)
    total = finished = queued = running = active = 0
    for sid, c in per_session.items():
        q, r = c.get("queued", 0), c.get("running", 0)
        if sid == 0:  # jobs of no import: count only what is still to do
            total += q + r
        elif q + r > 0:
            active += 1
            total += sum(c.values())
            finished += sum(c.get(s, 0) for s in ("done", "failed", "dead", "cancelled"))
        queued += q
        running += r
    # Work is waiting but none of it may start: every lane or import holding it is paused.
    blocked = queued + running > 0 and pending_work(conn) == 0
    recent = _recent_finished(conn, now, window_s, seq_floor)
    merged = _Recent(
        sum(r.finished for r in recent.values()),
        min((r.first_start for r in recent.values() if r.first_start is not None), default=None),
    )
    rate = _rate(merged, now, window_s) if queued + running > 0 else 0.0
    items = int(conn.execute("SELECT count(*) FROM items").fetchone()[0])
    return QueueProgress(
        items=items,
        total=total,
        finished=finished,
        queued=queued,
        running=running,
        failed=problems,
        active_imports=active,
        paused=blocked,
        rate=rate,
        eta_s=_eta(queued + running, rate, blocked),
    )


# -- lists ---------------------------------------------------------------------------------

_FILE_OF_ITEM = """(SELECT p.display FROM paths p WHERE p.item_id = j.item_id
                    ORDER BY p.missing, p.id LIMIT 1)"""


@dataclass(frozen=True)
class RunningJob:
    job_id: int
    item_id: int
    stage: str
    lane: str
    path: str  # display path of the item's first existing file ("" if none)
    started_at: float
    attempts: int

    @property
    def file_name(self) -> str:
        return os.path.basename(self.path)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["file_name"] = self.file_name
        return data


def running_jobs(conn: sqlite3.Connection, *, limit: int = 100) -> list[RunningJob]:
    """The jobs running now, longest-running first."""
    rows = conn.execute(
        f"""SELECT j.id, j.item_id, j.stage, j.lane, coalesce({_FILE_OF_ITEM}, ''),
                   coalesce(j.started_at, 0), j.attempts
            FROM jobs j WHERE j.state = 'running'
            ORDER BY j.started_at, j.id LIMIT ?""",
        (limit,),
    ).fetchall()
    return [
        RunningJob(int(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4]), float(r[5]), int(r[6]))
        for r in rows
    ]


@dataclass(frozen=True)
class ProblemJob:
    job_id: int
    item_id: int
    stage: str
    lane: str
    state: str  # failed | dead
    error: str  # the reason, written for people
    path: str
    attempts: int
    max_attempts: int
    finished_at: float | None
    session_id: int | None

    @property
    def file_name(self) -> str:
        return os.path.basename(self.path)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["file_name"] = self.file_name
        return data


def _problem_filter(
    states: Sequence[str], session_id: int | None, lane: str | None
) -> tuple[str, list[object]]:
    where = [f"j.state IN ({','.join('?' * len(states))})"]
    params: list[object] = list(states)
    if session_id is not None:
        where.append("j.session_id = ?")
        params.append(session_id)
    if lane is not None:
        where.append("j.lane = ?")
        params.append(lane)
    return " AND ".join(where), params


def problem_jobs(
    conn: sqlite3.Connection,
    *,
    states: Sequence[str] = PROBLEM_STATES,
    session_id: int | None = None,
    lane: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[ProblemJob]:
    """Failed and dead jobs with their reasons, newest jobs first, one page.

    One query per state, each walking an index in id order (no sort of every failed
    job: 28,000 of them took 80 ms to sort by time), merged here.
    """
    found: list[ProblemJob] = []
    for state in dict.fromkeys(states):
        where, params = _problem_filter((state,), session_id, lane)
        rows = conn.execute(
            f"""SELECT j.id, j.item_id, j.stage, j.lane, j.state, coalesce(j.error, ''),
                       coalesce({_FILE_OF_ITEM}, ''), j.attempts, j.max_attempts,
                       j.finished_at, j.session_id
                FROM jobs j WHERE {where}
                ORDER BY j.id DESC LIMIT ?""",
            (*params, offset + limit),
        ).fetchall()
        found.extend(
            ProblemJob(
                job_id=int(r[0]),
                item_id=int(r[1]),
                stage=str(r[2]),
                lane=str(r[3]),
                state=str(r[4]),
                error=str(r[5]),
                path=str(r[6]),
                attempts=int(r[7]),
                max_attempts=int(r[8]),
                finished_at=float(r[9]) if r[9] is not None else None,
                session_id=int(r[10]) if r[10] is not None else None,
            )
            for r in rows
        )
    found.sort(key=lambda p: p.job_id, reverse=True)
    return found[offset : offset + limit]


def problem_count(
    conn: sqlite3.Connection,
    *,
    states: Sequence[str] = PROBLEM_STATES,
    session_id: int | None = None,
    lane: str | None = None,
) -> int:
    """How many jobs `problem_jobs` would list in all (from the kept counters)."""
    if not states:
        return 0
    where = [f"state IN ({','.join('?' * len(states))})"]
    params: list[object] = list(states)
    if session_id is not None:
        where.append("session_id = ?")
        params.append(session_id)
    if lane is not None:
        where.append("lane = ?")
        params.append(lane)
    row = conn.execute(
        f"SELECT coalesce(sum(n), 0) FROM job_counts WHERE {' AND '.join(where)}", params
    ).fetchone()
    return int(row[0])


# -- a tracker for repeated polling -----------------------------------------------------------


class ProgressTracker:
    """Polls progress repeatedly (GUI tick, CLI bar) with a cheap rate query.

    It samples the change sequence number on each call; the sample taken at least a
    window ago bounds the rate query to rows changed since (`jobs.seq` is indexed),
    so a poll reads the last ~30 s of changes instead of the whole ledger.
    """

    def __init__(
        self, *, window_s: float = WINDOW_S, clock: Callable[[], float] = time.time
    ) -> None:
        self.window_s = window_s
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()

    def _floor(self, conn: sqlite3.Connection, now: float) -> int:
        seq = int(conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0])
        # A job that finished after time T was given a sequence number greater than any
        # read before T; a second of margin covers the gap between clock and commit.
        cutoff = now - self.window_s - 1.0
        while len(self._samples) >= 2 and self._samples[1][0] <= cutoff:
            self._samples.popleft()
        floor = self._samples[0][1] if self._samples and self._samples[0][0] <= cutoff else 0
        if not self._samples or now - self._samples[-1][0] >= 0.5:
            self._samples.append((now, seq))
        return floor

    def sessions(
        self,
        conn: sqlite3.Connection,
        *,
        session_ids: Sequence[int] | None = None,
        limit: int | None = None,
    ) -> list[SessionProgress]:
        now = self._clock()
        floor = self._floor(conn, now)
        return session_progress(
            conn,
            session_ids=session_ids,
            limit=limit,
            now=now,
            window_s=self.window_s,
            seq_floor=floor,
        )

    def queue(self, conn: sqlite3.Connection) -> QueueProgress:
        now = self._clock()
        floor = self._floor(conn, now)
        return queue_progress(conn, now=now, window_s=self.window_s, seq_floor=floor)


# -- words ---------------------------------------------------------------------------------


def format_count(n: int) -> str:
    return f"{n:,}"


def format_rate(rate: float) -> str:
    """Jobs per second in few digits: "38/s", "2.5/s", "0.4/s"."""
    if rate >= 10:
        return f"{rate:,.0f}/s"
    if rate >= 0.1:
        return f"{rate:.1f}/s"
    if rate > 0:
        return f"{rate * 60:.1f}/min"
    return "0/s"


def format_eta(seconds: float | None) -> str:
    """ "about 2 min left"; empty when unknown."""
    if seconds is None:
        return ""
    if seconds < 1:
        return "almost done"
    if seconds < 60:
        return f"about {max(5, round(seconds / 5) * 5):.0f} s left"
    minutes = seconds / 60
    if minutes < 90:
        return f"about {round(minutes):.0f} min left"
    hours = minutes / 60
    if hours < 36:
        return f"about {hours:.1f} h left".replace(".0 h", " h")
    return f"about {hours / 24:.0f} days left"


def summary_text(q: QueueProgress) -> str:
    """One line for the status bar."""
    problems = f" · {format_count(q.failed)} failed" if q.failed else ""
    if not q.busy:
        noun = "item" if q.items == 1 else "items"
        if q.items == 0:
            return "Library empty · drop a folder to import"
        return f"All done · {format_count(q.items)} {noun}{problems}"
    progress = f"{format_count(q.finished)} of {format_count(q.total)}"
    if q.paused:
        return f"Paused · {progress}{problems}"
    parts = [f"Processing {progress}"]
    if q.rate > 0:
        parts.append(format_rate(q.rate))
    eta = format_eta(q.eta_s)
    if eta:
        parts.append(eta)
    return " · ".join(parts) + problems
