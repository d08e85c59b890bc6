"""Progress read models for the jobs panel, the imports list and the status bar.

Everything here is a read over `catalog.db` (no writes, no Qt): counts come from
the trigger-kept `job_counts` table, so they cost the same at a million jobs as at
ten; lists (running now, failed and dead) are bounded by `limit`.

A session's counts are read in one place, `session_counts` (its `sessions` row
plus its jobs per state): `shoebox import --json` (`Library.session_summary`),
`shoebox sessions --json` and the imports panel (`session_progress`) are all
built from it.

Rates are "jobs finished per second over a sliding window" (default 30 s), read
from `jobs.finished_at`. A `ProgressTracker` remembers which change-sequence
number was current a window ago, so that query reads only the rows changed since
(`jobs_seq` index) instead of the whole ledger; the stateless functions work
without one (they then scan once).

Job states come from `engine.jobs.ledger.STATES`.

Time is injectable (`now=`) so tests need no sleeping or patching.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar

from engine.config import LANES
from engine.jobs.ledger import STATES, TERMINAL, pending_work

WINDOW_S = 30.0
"""Default sliding window for rates."""

MIN_SPAN_S = 1.0
"""A rate is never computed over less than this, so the first job does not read as 1000/s."""

PROBLEM_STATES = ("failed", "dead")
WAITING_STATES: tuple[str, ...] = ("queued", "running")
"""Jobs still to do; every other state counts as finished towards done/total: done,
failed, dead, cancelled, skipped — and `waiting` (for a model that is not here: the
import is finished without it, and goes on when the model comes)."""
FINISHED_STATES: tuple[str, ...] = tuple(s for s in TERMINAL if s != "cancelled")
"""What counts towards a rate: every ended state but cancelled (no work was done)."""
FINISHED_CONDITION = "state IN ('done', 'failed', 'dead', 'skipped')"
"""FINISHED_STATES as the `jobs_finished` partial index spells them (schema m010)."""
ACTIVE_SESSION_STATES = ("scanning", "processing")
SESSION_LANE = {"import": "import", "reindex": "batch"}
"""The lane a session's jobs are created in, by session kind."""


# -- shared shapes -------------------------------------------------------------------------


class _Dict:
    """`as_dict()` for the dataclasses below: their fields plus the `_derived` properties."""

    _derived: ClassVar[tuple[str, ...]] = ()

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = asdict(self)  # type: ignore[call-overload]
        for name in self._derived:
            data[name] = getattr(self, name)
        return data


class _JobStates:
    """Jobs per state (`jobs`, one entry per state of `ledger.STATES`) as attributes."""

    jobs: Mapping[str, int]

    def _n(self, state: str) -> int:
        return self.jobs.get(state, 0)

    @property
    def queued(self) -> int:
        return self._n("queued")

    @property
    def running(self) -> int:
        return self._n("running")

    @property
    def done(self) -> int:
        return self._n("done")

    @property
    def failed(self) -> int:
        return self._n("failed")

    @property
    def dead(self) -> int:
        return self._n("dead")

    @property
    def cancelled(self) -> int:
        return self._n("cancelled")

    @property
    def skipped(self) -> int:
        return self._n("skipped")

    @property
    def waiting(self) -> int:
        return self._n("waiting")


def _by_state(found: Mapping[str, int] | None = None) -> dict[str, int]:
    """One count per state of `ledger.STATES`, in that order (and any other found)."""
    found = found or {}
    return {**{s: int(found.get(s, 0)) for s in STATES}, **found}


def _chunks(seq: Sequence[int], n: int = 500) -> list[Sequence[int]]:
    return [seq[i : i + n] for i in range(0, len(seq), n)]


# -- lanes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LaneCounts(_JobStates):
    lane: str
    paused: bool
    jobs: Mapping[str, int] = field(default_factory=_by_state, hash=False)

    def as_dict(self) -> dict[str, Any]:
        """The shape of one lane in `shoebox status --json` ("lanes")."""
        return {"paused": self.paused, **self.jobs}


def lane_counts(conn: sqlite3.Connection) -> dict[str, LaneCounts]:
    """Jobs per lane and state, and whether the lane is paused (lanes in priority order)."""
    paused = {str(r[0]): bool(r[1]) for r in conn.execute("SELECT name, paused FROM lanes")}
    counts: dict[str, dict[str, int]] = {lane: {} for lane in LANES}
    for lane, state, n in conn.execute(
        "SELECT lane, state, sum(n) FROM job_counts GROUP BY lane, state HAVING sum(n) > 0"
    ):
        counts.setdefault(str(lane), {})[str(state)] = int(n)
    return {
        lane: LaneCounts(lane, paused.get(lane, False), _by_state(by_state))
        for lane, by_state in counts.items()
    }


# -- rates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Recent:
    finished: int
    first_start: float | None


RATE_SAMPLE = 4000  # most recent finished jobs a rate is computed from


def _recent_finished(
    conn: sqlite3.Connection, now: float, window_s: float, seq_floor: int = 0
) -> dict[int, _Recent]:
    """Jobs finished in the window, per session id (0 = no session), with the earliest
    start among them (so a window that began before the work did is not diluted).

    Reads at most the `RATE_SAMPLE` most recent finished jobs through the
    `jobs_finished` index: at thousands of jobs a second the window shrinks to the
    last second or two instead of reading 100,000 rows per poll (a re-index of a
    million items made each poll take 60 ms), and the cost never depends on the size
    of the ledger. `seq_floor` is accepted for callers that track it.
    """
    rows = conn.execute(
        f"""SELECT coalesce(session_id, 0), count(*), min(coalesce(started_at, finished_at)),
                   min(finished_at)
            FROM (SELECT session_id, started_at, finished_at FROM jobs INDEXED BY jobs_finished
                  WHERE finished_at >= ? AND finished_at <= ? AND {FINISHED_CONDITION}
                  ORDER BY finished_at DESC LIMIT ?)
            GROUP BY 1""",
        (now - window_s, now, RATE_SAMPLE),
    ).fetchall()
    capped = sum(int(r[1]) for r in rows) >= RATE_SAMPLE
    sample_start = min((float(r[3]) for r in rows), default=now)
    out = {}
    for sid, n, start, _ in rows:
        # A capped sample covers only its own span: start the rate there.
        first = max(float(start), sample_start) if capped else float(start)
        out[int(sid)] = _Recent(int(n), first)
    return out


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


# -- a session's counts --------------------------------------------------------------------


@dataclass(frozen=True)
class SessionCounts(_JobStates):
    """One session as the catalog holds it: its `sessions` row and its jobs per state
    (from `job_counts`). Read by `session_counts`, the one read of a session's counts."""

    id: int
    kind: str  # import | reindex
    roots: list[str]
    state: str  # scanning | processing | done | cancelled ("done" once every job ended)
    paused: bool  # the session itself is paused
    started_at: float
    files_seen: int  # files the scan catalogued (new, duplicate, unchanged, re-linked)
    items_new: int
    duplicates: int
    relinked: int
    unchanged: int
    files_skipped: int  # hidden/system files, unsupported types... (`skipped` of the scan)
    unreadable: int
    planned: int | None  # jobs it will create in all, when known ahead (a re-index)
    planning: bool  # still creating its jobs (a re-index creates them in chunks)
    jobs: Mapping[str, int] = field(hash=False)  # jobs created so far, per state
    lanes: tuple[str, ...] = ()  # the lanes its queued jobs wait in
    failed_items: int | None = None  # items with a failed or dead job (when asked for)

    @property
    def created(self) -> int:
        return sum(self.jobs.values())

    @property
    def total(self) -> int:
        """Its jobs: those created, or those planned while it is still creating them."""
        if self.planning and self.planned is not None:
            return max(self.created, self.planned)
        return self.created

    @property
    def finished(self) -> int:
        """Jobs that have ended: done, failed, dead, cancelled, skipped."""
        return sum(n for s, n in self.jobs.items() if s not in WAITING_STATES)

    @property
    def remaining(self) -> int:
        return self.total - self.finished


def _jobs_by_session(
    conn: sqlite3.Connection, session_ids: Sequence[int] | None = None
) -> tuple[dict[int, dict[str, int]], dict[int, set[str]]]:
    """From `job_counts`: jobs per session (0 = none) and state, and the lanes where
    each session has queued jobs."""
    jobs: dict[int, dict[str, int]] = {}
    lanes: dict[int, set[str]] = {}
    sql = "SELECT session_id, lane, state, sum(n) FROM job_counts {where} GROUP BY 1, 2, 3"
    if session_ids is None:
        parts: list[tuple[str, Sequence[int]]] = [(sql.format(where=""), ())]
    else:
        parts = [
            (sql.format(where=f"WHERE session_id IN ({','.join('?' * len(c))})"), c)
            for c in _chunks(session_ids)
        ]
    for query, params in parts:
        for sid, lane, state, n in conn.execute(query, tuple(params)):
            if not n:
                continue
            by_state = jobs.setdefault(int(sid), {})
            by_state[str(state)] = by_state.get(str(state), 0) + int(n)
            if state == "queued":
                lanes.setdefault(int(sid), set()).add(str(lane))
    return jobs, lanes


def _failed_items(conn: sqlite3.Connection, session_ids: Sequence[int]) -> dict[int, int]:
    """Items with a failed or dead job, per session (an item count: not in `job_counts`)."""
    found: dict[int, int] = {}
    marks = ",".join("?" * len(PROBLEM_STATES))
    for part in _chunks(session_ids):
        for sid, n in conn.execute(
            f"""SELECT session_id, count(DISTINCT item_id) FROM jobs
                WHERE session_id IN ({",".join("?" * len(part))}) AND state IN ({marks})
                GROUP BY session_id""",
            (*part, *PROBLEM_STATES),
        ):
            found[int(sid)] = int(n)
    return found


def session_counts(
    conn: sqlite3.Connection,
    *,
    session_ids: Sequence[int] | None = None,
    limit: int | None = None,
    failed_items: bool = False,
) -> list[SessionCounts]:
    """Sessions, newest first, with their counts: the `sessions` row and the session's
    jobs per state (`job_counts`). The one read of a session's counts.

    `limit` keeps the newest N sessions; `session_ids` picks some. `failed_items`
    also counts the items with a failed or dead job (for the import summary). A
    session whose jobs have all ended reads "done" even before its creator marks it
    so; a session that knows how many jobs it will create (`planned`, a re-index)
    counts them in its total while it is still creating them.
    """
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
    jobs, lanes = _jobs_by_session(conn, ids)
    failed = _failed_items(conn, ids) if failed_items else {}
    out = []
    for r in rows:
        sid, keys = int(r["id"]), r.keys()
        stored = str(r["state"])
        planned = r["planned"] if "planned" in keys else None
        counts = SessionCounts(
            id=sid,
            kind=str(r["kind"]) if "kind" in keys else "import",
            roots=list(json.loads(r["roots"])),
            state=stored,
            paused=bool(r["paused"]),
            started_at=float(r["started_at"]),
            files_seen=int(r["files_seen"]),
            items_new=int(r["items_new"]),
            duplicates=int(r["duplicates"]),
            relinked=int(r["relinked"]),
            unchanged=int(r["unchanged"]),
            files_skipped=int(r["skipped"]),
            unreadable=int(r["unreadable"]),
            planned=int(planned) if planned is not None else None,
            planning=stored in ACTIVE_SESSION_STATES and r["scanned_at"] is None,
            jobs=_by_state(jobs.get(sid)),
            lanes=tuple(sorted(lanes.get(sid, ()), key=_lane_order)),
            failed_items=failed.get(sid, 0) if failed_items else None,
        )
        if stored == "processing" and counts.remaining == 0:
            counts = replace(counts, state="done")
        out.append(counts)
    return out


def _lane_order(lane: str) -> int:
    return LANES.index(lane) if lane in LANES else len(LANES)


def _planned(conn: sqlite3.Connection) -> dict[int, int]:
    """Sessions still creating their jobs that know how many they will create."""
    marks = ",".join("?" * len(ACTIVE_SESSION_STATES))
    return {
        int(r[0]): int(r[1])
        for r in conn.execute(
            f"""SELECT id, planned FROM sessions WHERE planned IS NOT NULL
                  AND scanned_at IS NULL AND state IN ({marks})""",
            ACTIVE_SESSION_STATES,
        )
    }


# -- import sessions ---------------------------------------------------------------------


@dataclass(frozen=True)
class SessionProgress(_JobStates, _Dict):
    """One session's progress: `shoebox sessions --json` and the imports panel."""

    id: int
    kind: str  # import | reindex
    roots: list[str]
    state: str  # scanning | processing | done | cancelled
    paused: bool  # the session itself is paused
    lane_paused: bool  # the lanes its queued jobs wait in are paused (nothing of it starts)
    started_at: float
    files: int  # files the scan catalogued (new, duplicate, unchanged, re-linked)
    items_new: int
    planned: int | None  # jobs it will create in all, when known ahead (a re-index)
    total: int  # jobs of this session (planned ones too, while it creates them)
    finished: int  # jobs that ended: done + failed + dead + cancelled + skipped
    jobs: Mapping[str, int] = field(hash=False)  # jobs per state (every ledger state)
    rate: float = 0.0  # jobs finished per second over the window
    eta_s: float | None = None  # None: unknown (paused, or nothing finished lately)

    _derived = ("remaining", "jobs_total", "jobs_finished")

    @property
    def remaining(self) -> int:
        return self.total - self.finished

    @property
    def jobs_total(self) -> int:
        return self.total

    @property
    def jobs_finished(self) -> int:
        return self.finished

    @property
    def fraction(self) -> float:
        return 1.0 if self.total == 0 else self.finished / self.total

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_SESSION_STATES

    @property
    def name(self) -> str:
        """A short label: the first root's folder name (+ "and N more")."""
        if not self.roots:
            return f"Import {self.id}"
        if self.kind != "import":
            return self.roots[0]
        first = os.path.basename(self.roots[0].rstrip("/\\")) or self.roots[0]
        more = len(self.roots) - 1
        return f"{first} and {more} more" if more else first

    def as_dict(self) -> dict[str, Any]:
        """The shape of one session in `shoebox sessions --json` (keys in
        `engine.cli.STABLE_JSON_KEYS["sessions"]`), each state's count at the top
        level as well as in `jobs`."""
        data = super().as_dict()
        data.update(self.jobs)
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
    """Per-session progress, newest first: done/total, rate and ETA (see `session_counts`)."""
    now = time.time() if now is None else now
    found = session_counts(conn, session_ids=session_ids, limit=limit)
    if not found:
        return []
    paused_lanes = {str(r[0]): bool(r[1]) for r in conn.execute("SELECT name, paused FROM lanes")}
    recent = _recent_finished(conn, now, window_s, seq_floor)
    out = []
    for c in found:
        lanes = c.lanes or (SESSION_LANE.get(c.kind, "import"),)
        lane_paused = all(paused_lanes.get(lane, False) for lane in lanes)
        rate = _rate(recent.get(c.id), now, window_s) if c.state != "done" else 0.0
        out.append(
            SessionProgress(
                id=c.id,
                kind=c.kind,
                roots=c.roots,
                state=c.state,
                paused=c.paused,
                lane_paused=lane_paused,
                started_at=c.started_at,
                files=c.files_seen,
                items_new=c.items_new,
                planned=c.planned,
                total=c.total,
                finished=c.finished,
                jobs=dict(c.jobs),
                rate=rate,
                eta_s=None
                if c.state == "cancelled"
                else _eta(c.remaining, rate, c.paused or lane_paused),
            )
        )
    return out


# -- the whole queue -----------------------------------------------------------------------


@dataclass(frozen=True)
class QueueProgress(_Dict):
    """The whole queue, for the status bar (and `queue` in `shoebox status --json`).

    `total`/`finished` cover the current batch of work: every session that still has
    work to do (its planned jobs too, while it creates them), plus unfinished jobs
    outside any session; finished ones drop out, so the bar reads "12 of 40" for a
    new import rather than "100,012 of 100,040".
    """

    items: int  # items in the library
    total: int
    finished: int
    queued: int
    running: int
    failed: int  # failed + dead jobs in the whole library (problems to look at)
    waiting: int  # jobs waiting for a model that is not here (not counted as to do)
    skipped: int  # jobs that never ran: a stage they need did not finish
    active_imports: int  # sessions (imports, re-indexes) with work left
    paused: bool  # every lane with queued work is paused (or its imports are)
    rate: float
    eta_s: float | None
    # The library's disk is full: work is paused until there is room (the message).
    disk_full: str | None = None

    _derived = ("remaining",)

    @property
    def remaining(self) -> int:
        return self.total - self.finished

    @property
    def busy(self) -> bool:
        return self.remaining > 0


def queue_progress(
    conn: sqlite3.Connection,
    *,
    now: float | None = None,
    window_s: float = WINDOW_S,
    seq_floor: int = 0,
) -> QueueProgress:
    now = time.time() if now is None else now
    per_session, _ = _jobs_by_session(conn)
    planned = _planned(conn)
    for sid in planned:
        per_session.setdefault(sid, {})
    problems = sum(c.get(s, 0) for c in per_session.values() for s in PROBLEM_STATES)
    waiting = sum(c.get("waiting", 0) for c in per_session.values())
    skipped = sum(c.get("skipped", 0) for c in per_session.values())
    total = finished = queued = running = active = 0
    for sid, c in per_session.items():
        q, r = c.get("queued", 0), c.get("running", 0)
        if sid == 0:  # jobs of no session: count only what is still to do
            total += q + r
        else:
            created = sum(c.values())
            of_session = max(created, planned.get(sid, 0))
            if of_session > created - q - r:
                active += 1
                total += of_session
                finished += created - q - r
        queued += q
        running += r
    # Work is waiting but none of it may start: every lane or import holding it is paused.
    blocked = queued + running > 0 and pending_work(conn) == 0
    recent = _recent_finished(conn, now, window_s, seq_floor)
    merged = _Recent(
        sum(r.finished for r in recent.values()),
        min((r.first_start for r in recent.values() if r.first_start is not None), default=None),
    )
    remaining = total - finished
    rate = _rate(merged, now, window_s) if remaining > 0 else 0.0
    items = int(conn.execute("SELECT count(*) FROM items").fetchone()[0])
    return QueueProgress(
        items=items,
        total=total,
        finished=finished,
        queued=queued,
        running=running,
        failed=problems,
        waiting=waiting,
        skipped=skipped,
        active_imports=active,
        paused=blocked,
        rate=rate,
        eta_s=_eta(remaining, rate, blocked),
        disk_full=_disk_full(conn) if remaining > 0 else None,
    )


def _disk_full(conn: sqlite3.Connection) -> str | None:
    """Asked of the disk, not of the host: a host on a full disk may not be able to
    write that it paused (engine/diskspace.py)."""
    from engine import diskspace

    library = diskspace.library_of(conn)
    return diskspace.library_full(library) if library is not None else None


# -- lists ---------------------------------------------------------------------------------

_FILE_OF_ITEM = """(SELECT p.display FROM paths p WHERE p.item_id = j.item_id
                    ORDER BY p.missing, p.id LIMIT 1)"""


class _OfFile:
    path: str  # display path of the item's first existing file ("" if none, or a task)

    @property
    def file_name(self) -> str:
        return os.path.basename(self.path)


@dataclass(frozen=True)
class RunningJob(_OfFile, _Dict):
    job_id: int
    item_id: int | None  # None: a task job (see task_key)
    stage: str
    lane: str
    path: str
    started_at: float
    attempts: int
    task_key: str | None = None  # a task job's subject, e.g. "label:7"
    progress_done: int | None = None  # the job's own progress, when it reports one
    progress_total: int | None = None
    progress_note: str | None = None

    _derived = ("file_name",)

    @property
    def fraction(self) -> float | None:
        """The job's own progress, 0..1, when it reports done/total."""
        if self.progress_done is None or not self.progress_total:
            return None
        return min(1.0, self.progress_done / self.progress_total)


def running_jobs(conn: sqlite3.Connection, *, limit: int = 100) -> list[RunningJob]:
    """The jobs running now, longest-running first, with their own progress if any."""
    optional = "j.task_key, j.progress_done, j.progress_total, j.progress_note"
    rows = conn.execute(
        f"""SELECT j.id, j.item_id, j.stage, j.lane, coalesce({_FILE_OF_ITEM}, ''),
                   coalesce(j.started_at, 0), j.attempts, {optional}
            FROM jobs j WHERE j.state = 'running'
            ORDER BY j.started_at, j.id LIMIT ?""",
        (limit,),
    ).fetchall()
    return [
        RunningJob(
            job_id=int(r[0]),
            item_id=_int(r[1]),
            stage=str(r[2]),
            lane=str(r[3]),
            path=str(r[4]),
            started_at=float(r[5]),
            attempts=int(r[6]),
            task_key=str(r[7]) if r[7] is not None else None,
            progress_done=_int(r[8]),
            progress_total=_int(r[9]),
            progress_note=str(r[10]) if r[10] is not None else None,
        )
        for r in rows
    ]


def _int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


@dataclass(frozen=True)
class ProblemJob(_OfFile, _Dict):
    job_id: int
    item_id: int | None  # None: a task job (see task_key)
    stage: str
    lane: str
    state: str  # failed | dead
    error: str  # the reason, written for people
    path: str
    attempts: int
    max_attempts: int
    finished_at: float | None
    session_id: int | None
    task_key: str | None = None

    _derived = ("file_name",)


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
    task_key = "j.task_key"
    for state in dict.fromkeys(states):
        where, params = _problem_filter((state,), session_id, lane)
        rows = conn.execute(
            f"""SELECT j.id, j.item_id, j.stage, j.lane, j.state, coalesce(j.error, ''),
                       coalesce({_FILE_OF_ITEM}, ''), j.attempts, j.max_attempts,
                       j.finished_at, j.session_id, {task_key}
                FROM jobs j WHERE {where}
                ORDER BY j.id DESC LIMIT ?""",
            (*params, offset + limit),
        ).fetchall()
        found.extend(
            ProblemJob(
                job_id=int(r[0]),
                item_id=_int(r[1]),
                stage=str(r[2]),
                lane=str(r[3]),
                state=str(r[4]),
                error=str(r[5]),
                path=str(r[6]),
                attempts=int(r[7]),
                max_attempts=int(r[8]),
                finished_at=float(r[9]) if r[9] is not None else None,
                session_id=_int(r[10]),
                task_key=str(r[11]) if r[11] is not None else None,
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
    if q.waiting:
        problems += f" · {format_count(q.waiting)} waiting for a model"
    if not q.busy:
        noun = "item" if q.items == 1 else "items"
        if q.items == 0:
            return "Library empty · drop a folder to import"
        return f"All done · {format_count(q.items)} {noun}{problems}"
    progress = f"{format_count(q.finished)} of {format_count(q.total)}"
    if q.disk_full:
        return f"Paused at {progress} · {q.disk_full}"
    if q.paused:
        return f"Paused · {progress}{problems}"
    parts = [f"Processing {progress}"]
    if q.rate > 0:
        parts.append(format_rate(q.rate))
    eta = format_eta(q.eta_s)
    if eta:
        parts.append(eta)
    return " · ".join(parts) + problems
