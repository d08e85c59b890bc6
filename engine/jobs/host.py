"""The worker host: Huey consumers (one per lane, thread workers) plus the feeder.

The feeder keeps at most `workers × queue_depth_per_worker` messages per lane in
Huey, taking ready jobs from the ledger in priority order; a message is just
(job id, token). A worker claims the job in the ledger (counting the attempt),
runs the stage, and records the outcome; Huey's own retries are never used.

One host serves a library at a time (an exclusive lock on `host.lock`), so at
start every job still marked running is an orphan of a dead host: recovery puts
it back (or dead-letters it) before any worker starts.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huey import SqliteHuey
from huey.consumer import Consumer, Worker

from engine import faults
from engine.config import LANES, Settings
from engine.errors import LibraryLockedError, PermanentError, TransientError
from engine.jobs import ledger
from engine.pipeline.registry import StageRegistry
from engine.pipeline.types import ItemRef, StageContext
from engine.store.db import Catalog, next_seq

log = logging.getLogger("shoebox.host")

TASK_NAME = "shoebox.run_job"
LEASE_S = 3600.0
FEED_INTERVAL_S = 0.05
IDLE_POLL_S = 0.2

# The host whose Huey tasks are executing in this process (tasks look it up by name).
_current_host: WorkerHost | None = None


def run_job(job_id: int, token: int) -> None:
    """The one Huey task. Stable name and module: a renamed task loses its messages."""
    host = _current_host
    if host is None:
        raise RuntimeError("no worker host is running in this process")
    host.execute(job_id, token)


class _Worker(Worker):  # type: ignore[misc]
    """A Huey worker that wakes as soon as the feeder enqueues, instead of polling idle."""

    wake: threading.Event
    delay: float
    max_delay: float
    backoff: float

    def sleep(self) -> None:
        if self.delay > self.max_delay:
            self.delay = self.max_delay
        if self.wake.wait(self.delay):
            self.wake.clear()
        self.delay *= self.backoff


class _EmbeddedConsumer(Consumer):  # type: ignore[misc]
    """Huey's consumer run from a non-main thread of our own process."""

    def __init__(self, huey: SqliteHuey, workers: int, wake: threading.Event) -> None:
        self._wake = wake
        super().__init__(
            huey,
            workers=workers,
            worker_type="thread",
            periodic=False,
            initial_delay=0.05,
            backoff=1.5,
            max_delay=0.5,
            check_worker_health=True,
            health_check_interval=2,
        )

    def _create_worker(self) -> _Worker:
        worker: _Worker = super()._create_worker()
        worker.wake = self._wake
        return worker

    def _set_signal_handlers(self) -> None:
        """Signals belong to the process's main thread (the host handles them)."""

    def request_stop(self) -> None:
        self._restart = False
        self._graceful = True
        self._signum = signal.SIGINT  # read by Consumer.loop(): stop gracefully

    worker_class = _Worker


@dataclass
class _Lane:
    name: str
    workers: int
    huey: SqliteHuey
    consumer: _EmbeddedConsumer
    wake: threading.Event
    task: Callable[..., Any]
    thread: threading.Thread | None = None
    max_messages_seen: int = 0


@dataclass
class HostStats:
    started: int = 0
    done: int = 0
    failed: int = 0
    retried: int = 0
    dead: int = 0
    max_queue_messages: int = 0
    recovered: dict[str, int] = field(default_factory=dict)


class WorkerHost:
    def __init__(
        self,
        library_dir: Path,
        catalog: Catalog,
        registry: StageRegistry,
        settings: Settings,
        *,
        owner: str | None = None,
    ) -> None:
        self.library_dir = library_dir
        self.catalog = catalog
        self.registry = registry
        self.settings = settings
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.ctx = StageContext(library_dir)
        self.stats = HostStats()
        self._stop = threading.Event()
        self._feed_wake = threading.Event()  # set when a job finishes: refill at once
        self._feeder: threading.Thread | None = None
        self._lanes: dict[str, _Lane] = {}
        self._lock_fd: int | None = None
        self._running = False
        # Suspects only come from recovery at start; once none are left, stop looking.
        self._suspect_mode = False

    # -- life cycle ------------------------------------------------------------

    def start(self) -> None:
        global _current_host
        if _current_host is not None:
            raise RuntimeError("one worker host per process")
        self._acquire_lock()
        _current_host = self
        try:
            queue_db = str(self.library_dir / "queue.db")
            for name in LANES:
                huey = SqliteHuey(name=name, filename=queue_db, results=False, fsync=False)
                huey.flush()  # messages are a cache of the ledger; recovery re-feeds
                task = huey.task(name=TASK_NAME)(run_job)
                wake = threading.Event()
                workers = max(1, self.settings.workers.for_lane(name))
                consumer = _EmbeddedConsumer(huey, workers, wake)
                self._lanes[name] = _Lane(name, workers, huey, consumer, wake, task)
            with self.catalog.write() as conn:
                self.stats.recovered = ledger.recover(conn, time.time())
            self._suspect_mode = ledger.has_suspects(self.catalog.conn)
            if any(self.stats.recovered.values()):
                log.warning("recovered after an unclean stop: %s", self.stats.recovered)
            for lane in self._lanes.values():
                lane.thread = threading.Thread(
                    target=lane.consumer.run, name=f"huey-{lane.name}", daemon=True
                )
                lane.thread.start()
            self._feeder = threading.Thread(target=self._feed_loop, name="feeder", daemon=True)
            self._feeder.start()
            self._running = True
        except BaseException:
            _current_host = None
            self._release_lock()
            raise

    def stop(self) -> None:
        """Stop feeding, let running jobs finish, stop the consumers."""
        global _current_host
        if not self._running:
            return
        self._stop.set()
        self._feed_wake.set()
        if self._feeder is not None:
            self._feeder.join()
        for lane in self._lanes.values():
            lane.consumer.request_stop()
            lane.wake.set()
        for lane in self._lanes.values():
            if lane.thread is not None:
                lane.thread.join()
        self._running = False
        _current_host = None
        self._release_lock()

    def wait_idle(
        self,
        session_id: int | None = None,
        stop: threading.Event | None = None,
        timeout: float | None = None,
    ) -> None:
        """Block until no work is pending (for one import session, or at all).

        With `timeout`, raise TimeoutError naming what is still pending: a test that
        hangs should fail with a reason, not at the test runner's limit."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (stop is not None and stop.is_set()):
            if not ledger.has_pending_work(self.catalog.conn, session_id):
                return
            if deadline is not None and time.monotonic() > deadline:
                rows = self.catalog.read(
                    "SELECT stage, state, count(*) FROM jobs WHERE state IN ('queued', 'running')"
                    " GROUP BY 1, 2"
                )
                pending = ", ".join(f"{r[0]}/{r[1]}: {r[2]}" for r in rows)
                raise TimeoutError(f"work still pending after {timeout:g} s ({pending})")
            time.sleep(IDLE_POLL_S)

    def _acquire_lock(self) -> None:
        path = self.library_dir / "host.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise LibraryLockedError(
                "Another Shoebox worker is already processing this library."
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{self.owner}\n".encode())
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- feeding -----------------------------------------------------------------

    def _feed_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.feed_once()
            except Exception:
                log.exception("feeder failed; trying again")
            self._feed_wake.wait(FEED_INTERVAL_S)
            self._feed_wake.clear()

    def feed_once(self) -> int:
        conn = self.catalog.conn
        paused = {
            row[0] for row in conn.execute("SELECT name FROM lanes WHERE paused = 1").fetchall()
        }
        active = [lane for lane in LANES if lane not in paused]
        now = time.time()
        if self._suspect_mode and not ledger.has_suspects(conn):
            self._suspect_mode = False
        if self._suspect_mode:
            with self.catalog.write() as wconn:
                taken = ledger.take_suspect(wconn, active, now)
            if taken is None:
                return 0
            lane_name, job_id, token = taken
            self._send(self._lanes[lane_name], [(job_id, token)])
            return 1
        sent = 0
        for name in active:
            lane = self._lanes[name]
            waiting = lane.huey.pending_count()
            lane.max_messages_seen = max(lane.max_messages_seen, waiting)
            room = lane.workers * self.settings.queue_depth_per_worker - waiting
            if room <= 0:
                continue
            ready = ledger.ready_jobs(conn, name, room, now)  # read first: idle costs no lock
            if not ready:
                continue
            with self.catalog.write() as wconn:
                batch = ledger.mark_dispatched(wconn, ready)
            self._send(lane, batch)
            sent += len(batch)
        return sent

    def _send(self, lane: _Lane, batch: list[tuple[int, int]]) -> None:
        for job_id, token in batch:
            lane.task(job_id, token)
        if batch:
            lane.wake.set()
            waiting = lane.huey.pending_count()
            lane.max_messages_seen = max(lane.max_messages_seen, waiting)
            self.stats.max_queue_messages = max(
                self.stats.max_queue_messages,
                sum(x.max_messages_seen for x in self._lanes.values()),
            )

    def queue_messages(self) -> dict[str, int]:
        return {name: lane.huey.pending_count() for name, lane in self._lanes.items()}

    # -- executing ---------------------------------------------------------------

    def execute(self, job_id: int, token: int) -> None:
        now = time.time()
        with self.catalog.write() as conn:
            job = ledger.claim(conn, job_id, token, self.owner, now, LEASE_S)
        if job is None:
            return
        self.stats.started += 1
        faults.job_started()
        try:
            self._run_claimed(job)
        finally:
            self._feed_wake.set()

    def _run_claimed(self, job: ledger.ClaimedJob) -> None:
        try:
            item = load_item_ref(self.catalog, job.item_id)
            faults.maybe_crash(item)
            if job.stage not in self.registry:
                raise PermanentError(f"Unknown stage {job.stage!r} (from a newer Shoebox?).")
            stage = self.registry.get(job.stage)
            output = stage.run(item, self.ctx)
        except PermanentError as exc:
            self._record_error(job, str(exc), permanent=True)
            return
        except Exception as exc:
            log.error(
                "job %s (%s of item %s) failed, attempt %s/%s:\n%s",
                job.id,
                job.stage,
                job.item_id,
                job.attempts,
                job.max_attempts,
                traceback.format_exc(),
            )
            self._record_error(job, readable_reason(exc), permanent=False)
            return
        with self.catalog.write() as conn:
            seq = next_seq(conn)
            if ledger.finish_done(conn, job, seq, time.time()):
                stage.store(conn, item, output, seq)
        self.stats.done += 1

    def _record_error(self, job: ledger.ClaimedJob, reason: str, *, permanent: bool) -> None:
        with self.catalog.write() as conn:
            state = ledger.finish_error(
                conn, job, reason, permanent=permanent, settings=self.settings, now=time.time()
            )
        if state == "failed":
            self.stats.failed += 1
        elif state == "dead":
            self.stats.dead += 1
        else:
            self.stats.retried += 1


def readable_reason(exc: BaseException) -> str:
    """One line a person can read: no traceback, no internal repr."""
    if isinstance(exc, TransientError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "Ran out of memory while processing this file."
    if isinstance(exc, OSError):
        return f"A system error interrupted processing: {exc.strerror or exc}."
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"Unexpected error ({name}{': ' + text[:200] if text else ''})."


def load_item_ref(catalog: Catalog, item_id: int) -> ItemRef:
    conn = catalog.conn
    row = conn.execute(
        "SELECT id, hash, kind, format, size FROM items WHERE id = ?", (item_id,)
    ).fetchone()
    if row is None:
        raise PermanentError("The item was removed from the catalog.")
    paths = conn.execute(
        "SELECT raw, mtime_ns FROM paths WHERE item_id = ? ORDER BY missing, id", (item_id,)
    ).fetchall()
    return ItemRef(
        id=row[0],
        hash=row[1],
        kind=row[2],
        format=row[3],
        size=row[4],
        paths=tuple(os.fsdecode(bytes(p[0])) for p in paths),
        mtime_ns=min((p[1] for p in paths), default=None),
    )
