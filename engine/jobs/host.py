"""The worker host: Huey consumers plus the feeder, running jobs from the ledger.

Lanes and threads (DESIGN.md, "Jobs"; measured in bench/lane_latency.py):
- the interactive lane has threads of its own (`workers.interactive`), so the item
  the user opened starts at once even while every other thread is busy;
- import, batch and learning share one pool (`workers.pool` threads) fed through
  one Huey queue with message priorities import > batch > learning. The feeder
  fills the pool in lane order, so batch and learning work only take room that
  imports leave, and queued import messages overtake queued batch messages.
  `workers.<lane>` caps how many messages a lane may have in flight (learning:
  exactly that many, so one training runs at a time).

A message carries (lane, stage, [(job id, token), ...]):
- a batched stage's message is one batch: claimed in one transaction, prepared on
  a CPU pool, run in one `run_batch` call, stored and finished in one transaction;
- a per-item stage's message is a short run of jobs (sized so it lasts ~50 ms),
  run one after another, finishing each job and claiming the next in one
  transaction: one commit per job, one Huey message per run;
- a task job's message is that one job.

Every path out of a job ends it in the ledger: done, error (retry, failed, dead),
cancelled, timed out, or handed back (graceful stop, no attempt counted).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from huey import Huey
from huey.consumer import Consumer, Worker

from engine import diskspace, faults
from engine.config import LANES, SETTINGS_FILE, Settings, load_settings
from engine.errors import (
    LibraryLockedError,
    PermanentError,
    SettingsError,
    TransientError,
    WaitingError,
)
from engine.jobs import freshness, ledger, offline, recovery, reindex
from engine.jobs.broker import (
    BrokerUnavailable,
    broker_epoch,
    effective_broker,
    is_redis,
    make_huey,
    redacted,
)
from engine.jobs.control import JobControl, JobInterrupted
from engine.jobs.resources import ResourcePool
from engine.pipeline.registry import StageRegistry, default_registry
from engine.pipeline.types import ItemRef, Stage, StageContext, StageOutput
from engine.remote.enrol import identity as remote_identity
from engine.store.db import Catalog, next_seq

log = logging.getLogger("shoebox.host")

TASK_NAME = "shoebox.run_jobs"
LEASE_S = 30.0  # a job's lease; renewed every LEASE_RENEW_S while it runs
LEASE_RENEW_S = 10.0
FEED_INTERVAL_S = 0.025
IDLE_POLL_S = 0.05
HOUSEKEEPING_S = 0.5
BROKER_CHECK_S = 2.0  # how often a Redis broker is asked whether it restarted
DISK_CHECK_S = 1.0  # how often the free space of the library's disk is looked at
DISK_RETRY_S = 5.0  # after an ENOSPC, the first wait before trying again (doubles to 60)
LOCAL_HOST = "local"  # the metrics' name for this host (engine/jobs/metrics.LOCAL)
THROTTLE_CHECK_S = 2.0  # how often the background mode re-reads the machine's load
WAKE_CHECK_S = 5.0  # how often stages with waiting jobs check whether they can run
TIMEOUT_GRACE_S = 5.0  # a stage that ignores its deadline this long is abandoned
REINDEX_CHUNKS_PER_TICK = 4
TARGET_MESSAGE_S = 0.05  # a per-item message lasts about this long
MAX_GROUP = 64
POOL_LANES = ("import", "batch", "learning")
LANE_PRIORITY = {"import": 30, "batch": 20, "learning": 10}
STRICT_LANES = ("learning",)  # in-flight messages = its worker count, not ×depth

# Also the reason for an item with no path at all: paths are never deleted, so that
# means its only file was edited and re-catalogued as the new content's item.
CHANGED_REASON = (
    "The file was changed after it was catalogued; its new content is catalogued as an "
    "item of its own."
)

# The host whose Huey tasks are executing in this process (tasks look it up by name).
_current_host: WorkerHost | None = None


def run_jobs(lane: str, stage: str, pairs: list[list[int]]) -> None:
    """The one Huey task. Stable name and module: a renamed task loses its messages."""
    host = _current_host
    if host is None:
        raise RuntimeError("no worker host is running in this process")
    host.execute_message(lane, stage, [(int(p[0]), int(p[1])) for p in pairs])


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


class EmbeddedConsumer(Consumer):  # type: ignore[misc]
    """Huey's consumer run from a non-main thread of our own process."""

    def __init__(self, huey: Huey, workers: int, wake: threading.Event) -> None:
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
        self._signum = 2  # SIGINT, read by Consumer.loop(): stop gracefully

    worker_class = _Worker


@dataclass
class _Queue:
    """One Huey queue with its consumer: `interactive`, or `pool` for the other lanes."""

    name: str
    workers: int
    huey: Huey
    consumer: EmbeddedConsumer
    wake: threading.Event
    task: Callable[..., Any]
    thread: threading.Thread | None = None


@dataclass
class HostStats:
    started: int = 0
    done: int = 0
    failed: int = 0
    retried: int = 0
    dead: int = 0
    handed_back: int = 0
    cancelled: int = 0
    timed_out: int = 0
    waiting: int = 0  # jobs parked because their model is not here
    messages: int = 0
    max_queue_messages: int = 0  # most messages in flight at once (the feeder's bound)
    broker_restarts: int = 0  # Redis restarts noticed (their messages sent again)
    recovered: dict[str, int] = field(default_factory=dict)
    reindex_started: list[int] = field(default_factory=list)


@dataclass
class _Active:
    job: ledger.ClaimedJob
    control: JobControl
    abandoned: bool = False
    # The rest of its message's run (per-item jobs): handed back if it is abandoned.
    pending: list[tuple[int, int]] | None = None
    batch: bool = False  # shares its control with the other members of a batch


@dataclass
class _Outcome:
    kind: str  # done | error | interrupted | changed | waiting
    output: StageOutput | None = None
    version: str = ""
    reason: str = ""
    permanent: bool = False
    why: str = ""  # interrupted: stopping | cancelled | timeout
    item: ItemRef | None = None  # done: the item as loaded for the run (stored with it)
    changed: tuple[str, ...] = ()  # changed: paths whose content is new
    intact: int = 0  # changed: paths still holding the item's content


class WorkerHost:
    def __init__(
        self,
        library_dir: Path,
        catalog: Catalog,
        registry: StageRegistry,
        settings: Settings,
        *,
        owner: str | None = None,
        shared_broker: bool = False,
        follow_settings: bool = False,
        broker: str | None = None,
        probe: Any = None,
    ) -> None:
        from engine.jobs import throttle as throttling
        from engine.jobs.metrics import MetricsRecorder

        self.library_dir = library_dir
        self.catalog = catalog
        self.registry = registry
        self.settings = settings
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        # A broker shared with other hosts is never flushed: its messages may be theirs
        # (stale ones are harmless: their tokens no longer match).
        self.shared_broker = shared_broker
        # Where the queues live (engine/jobs/broker.py); fixed for the host's life.
        self.broker_url = effective_broker(settings.queue.broker, broker)
        self._broker_epoch: str | None = None  # the Redis server's run_id when last seen
        self.remote: Any = None  # engine.remote.owner.RemoteDispatcher, with enrolled workers
        self._next_remote_expiry = 0.0
        self._next_broker_check = 0.0
        # A host of the library (the app's, `shoebox work`) rebuilds its stages when
        # settings.toml or the tag vocabulary change, so `config set` takes effect.
        self.follow_settings = follow_settings
        self._config_stamp: tuple[int, int] | None = None
        self.resources = ResourcePool(settings.model_idle_release_s)
        self.ctx = StageContext(library_dir, resources=self.resources)
        self.stats = HostStats()
        self._stop = threading.Event()  # stop feeding
        self._interrupt = threading.Event()  # running jobs should hand back now
        self._feed_wake = threading.Event()  # set when a job finishes: refill at once
        self._feeder: threading.Thread | None = None
        self._queues: dict[str, _Queue] = {}
        self._lock_fd: int | None = None
        self._running = False
        self._guard = threading.Lock()
        self._outstanding: dict[str, int] = dict.fromkeys(LANES, 0)
        self._active: dict[int, _Active] = {}
        self._unended: list[tuple[ledger.ClaimedJob, str]] = []  # ledger writes to retry
        self._undispatch: list[tuple[int, int]] = []
        self._mean_s: dict[str, float] = {}
        # Sharing the machine (engine/jobs/throttle.py): the pool lanes' running jobs are
        # gated by the background mode; the interactive lane never is.
        self.probe = probe
        self.gate = throttling.Gate(settings.workers.pool)
        self.decision = throttling.Decision(settings.workers.pool, settings.workers.pool)
        self._slowing: list[str] = []  # the rate limits the heartbeat last named
        self._apply_background(settings)
        self.priority: dict[str, Any] = {}  # what `shoebox work` applied (nice, io class)
        self.metrics = MetricsRecorder()
        self._next_throttle = 0.0
        self._capacity_at = time.monotonic()
        self._prep_pool: ThreadPoolExecutor | None = None
        self._next_housekeeping = 0.0
        self._next_lease = 0.0
        self._suspect_mode = False
        self._handlers = 0  # messages being handled now (stop waits for them)
        # messages this host sent and no worker has begun: their jobs, by first pair
        self._sent: dict[tuple[str, int, int], list[tuple[int, int]]] = {}
        self._cancel_in_batch: set[int] = set()  # batch members asked to cancel
        self._parked: dict[str, str] = {}  # stages whose model is missing: the reason
        self._next_wake_check = 0.0
        self._max_group = MAX_GROUP  # raised to the largest batch size when started
        # The library's disk is full: feeding pauses (engine/diskspace.py). Jobs whose
        # hand-back could not be written (the disk was full) are handed back later.
        self.disk_full: str | None = None
        self._disk_retry_at = 0.0
        self._disk_backoff = DISK_RETRY_S
        self._next_disk_check = 0.0
        self._hand_back_later: list[ledger.ClaimedJob] = []
        self._reserve = diskspace.SpaceReserve(library_dir)

    # -- life cycle ------------------------------------------------------------

    def start(self) -> None:
        global _current_host
        if _current_host is not None:
            raise RuntimeError("one worker host per process")
        # Batch sizes may depend on the device (torch is imported here, not by the CLI).
        self._max_group = max([MAX_GROUP] + [s.batch_size for s in self.registry.stages()])
        self._acquire_lock()
        _current_host = self
        try:
            self._reserve.ensure()  # room for the hand-backs when the disk fills
            library_id = ""
            if is_redis(self.broker_url):  # its keys are named after the library
                with self.catalog.write() as conn:
                    library_id, _ = remote_identity(conn)
            sizes = {
                "interactive": self.settings.workers.interactive,
                "pool": self.settings.workers.pool,
            }
            for name, workers in sizes.items():
                huey = make_huey(name, self.library_dir, self.broker_url, library_id)
                if not self.shared_broker:
                    try:  # the first word with the broker: an unreachable one is said here
                        huey.flush()  # a private queue is a cache of the ledger: re-fed
                    except Exception as exc:
                        if not is_redis(self.broker_url):
                            raise
                        raise BrokerUnavailable(redacted(self.broker_url), exc) from exc
                self._watch_dequeue(huey)
                task = huey.task(name=TASK_NAME)(run_jobs)
                wake = threading.Event()
                consumer = EmbeddedConsumer(huey, workers, wake)
                self._queues[name] = _Queue(name, workers, huey, consumer, wake, task)
            if is_redis(self.broker_url) and _has_workers(self.catalog):
                from engine.remote.owner import RemoteDispatcher

                self.remote = RemoteDispatcher(self, library_id)
            self._prep_pool = ThreadPoolExecutor(
                max(1, os.cpu_count() or 1), thread_name_prefix="shoebox-prepare"
            )
            now = time.time()
            with self.catalog.write() as conn:
                prefix = recovery.local_owner_prefix() if self.shared_broker else None
                # Remote workers' running jobs are not orphans: their results may be
                # waiting in the broker, or their leases run out (engine/remote/owner.py).
                keep = "remote:" if is_redis(self.broker_url) else None
                self.stats.recovered = recovery.recover(
                    conn, now, prefix, self.registry, keep_prefix=keep
                )
                self.stats.reindex_started = reindex.sync_versions(conn, self.registry, now)
                conn.execute(
                    """INSERT INTO hosts (owner, pid, started_at, heartbeat_at) VALUES (?, ?, ?, ?)
                       ON CONFLICT (owner) DO UPDATE SET pid = excluded.pid,
                         started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
                         stopped_at = NULL""",
                    (self.owner, os.getpid(), now, now),
                )
            if any(self.stats.recovered.values()):
                log.warning("recovered after an unclean stop: %s", self.stats.recovered)
            # Jobs left waiting for a model that is here now run at once (before any
            # "is there work?" question: `work --until-idle` must see them).
            self._wake_or_park(now)
            self._next_wake_check = time.monotonic() + WAKE_CHECK_S
            for queue in self._queues.values():
                queue.thread = threading.Thread(
                    target=queue.consumer.run, name=f"huey-{queue.name}", daemon=True
                )
                queue.thread.start()
            if self.remote is not None:
                self.remote.start()
            self._feeder = threading.Thread(target=self._feed_loop, name="feeder", daemon=True)
            self._feeder.start()
            self._running = True
        except BaseException:
            _current_host = None
            self._release_lock()
            raise

    def _watch_dequeue(self, huey: Huey) -> None:
        """queue.db is on the library's disk too: Huey's consumer logs a failed dequeue
        and tries again forever, so a full disk there must pause the host as well."""
        dequeue = huey.dequeue

        def watched() -> Any:
            try:
                return dequeue()
            except Exception as exc:
                if diskspace.is_disk_full_error(exc):
                    self._note_disk_full(exc)
                raise

        huey.dequeue = watched

    def stop(self, grace_s: float | None = None) -> None:
        """Stop feeding; let running jobs finish for `grace_s` (settings.stop_grace_s);
        then interrupt them, and hand back whatever still runs, without an attempt."""
        global _current_host
        if not self._running:
            return
        grace_s = self.settings.stop_grace_s if grace_s is None else grace_s
        self._stop.set()
        self._feed_wake.set()
        if self._feeder is not None:
            self._feeder.join()
        for queue in self._queues.values():
            queue.consumer.request_stop()
            queue.wake.set()
        if not self._wait_active(grace_s):
            self._interrupt.set()  # cooperative stages hand back at their next check
            self._wait_active(2.0)
        for queue in self._queues.values():
            if queue.thread is not None:
                queue.thread.join(timeout=2.0)
        if self.remote is not None:
            self.remote.stop()  # remote jobs keep running: their results wait in the broker
        self._hand_back_active()
        self._hand_back_stranded()
        self._flush_unended()
        self._undispatch_pending()
        if self._prep_pool is not None:
            self._prep_pool.shutdown(wait=False, cancel_futures=True)
        mono = time.monotonic()
        self.metrics.capacity((mono - self._capacity_at) * self.settings.workers.pool)
        self._capacity_at = mono
        try:
            with self.catalog.write() as conn:
                self.metrics.flush(conn)  # what was counted since the last check
                conn.execute(
                    "UPDATE hosts SET stopped_at = ?, heartbeat_at = ? WHERE owner = ?",
                    (time.time(), time.time(), self.owner),
                )
        except Exception:
            log.exception("could not record the host's stop")
        self.resources.release_all()
        self._running = False
        _current_host = None
        self._release_lock()

    def _wait_active(self, timeout: float) -> bool:
        """Wait until no message is being handled (abandoned, hung calls aside)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._guard:
                abandoned = sum(1 for a in self._active.values() if a.abandoned)
                if self._handlers <= abandoned:
                    return True
            time.sleep(0.02)
        return False

    def _hand_back_active(self) -> None:
        with self._guard:
            jobs = [a.job for a in self._active.values()]
        if not jobs:
            return
        try:
            with self.catalog.write() as conn:
                self.stats.handed_back += ledger.hand_back(conn, jobs)
        except Exception:
            log.exception("handing back %d running jobs failed", len(jobs))

    def wait_idle(
        self,
        session_id: int | None = None,
        stop: threading.Event | None = None,
        timeout: float | None = None,
        *,
        stop_when_disk_full: bool = False,
    ) -> None:
        """Block until no work is pending (for one import session, or at all).

        `stop_when_disk_full`: raise DiskFullError (its message says what to do) once
        the host pauses for a full disk, instead of waiting for space (`work
        --until-idle` is run by scripts and by `import --wait`).

        With `timeout`, raise TimeoutError naming what is still pending: a test that
        hangs should fail with a reason, not at the test runner's limit."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (stop is not None and stop.is_set()):
            if not ledger.has_pending_work(self.catalog.conn, session_id):
                return
            if stop_when_disk_full and self.disk_full is not None:
                raise diskspace.DiskFullError(self.disk_full)
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
        failures = 0
        while not self._stop.is_set():
            try:
                self.check_disk()
                self.housekeeping()
                self.feed_once()
                failures = 0
            except Exception as exc:
                failures += 1
                if diskspace.is_disk_full_error(exc):
                    self._note_disk_full(exc)
                if failures in (1, 10) or failures % 1000 == 0:  # don't flood the log
                    log.exception("feeder failed (%d in a row); trying again", failures)
            # Back off while it keeps failing (the disk is full, the catalog locked).
            delay = FEED_INTERVAL_S if not failures else min(2.0, FEED_INTERVAL_S * failures)
            self._feed_wake.wait(delay)
            self._feed_wake.clear()

    def housekeeping(self, force: bool = False) -> None:
        """Leases, cancel requests, timeouts, re-index chunks, idle models (~2×/s)."""
        mono = time.monotonic()
        if not force and mono < self._next_housekeeping:
            return
        self._next_housekeeping = mono + HOUSEKEEPING_S
        now = time.time()
        if self.follow_settings:
            self._follow_settings(now)
        if force or mono >= self._next_throttle:
            self._next_throttle = mono + THROTTLE_CHECK_S
            self._update_throttle(mono, now)
        paused = {
            str(r[0]) for r in self.catalog.conn.execute("SELECT name FROM lanes WHERE paused = 1")
        }
        # Checked here, not every tick: each statement costs a GIL hand-over under load.
        self._suspect_mode = recovery.has_suspects(
            self.catalog.conn, [lane for lane in LANES if lane not in paused]
        )
        self._flush_unended()
        self._check_broker(mono)
        self._undispatch_pending()
        conn = self.catalog.conn
        for job_id in recovery.cancel_requests(conn, self.owner):
            with self._guard:
                active = self._active.get(job_id)
                if active is not None and active.batch:
                    # Its control is shared with the batch: cancel only this member, when
                    # the batch ends (its result is discarded).
                    self._cancel_in_batch.add(job_id)
                    active = None
            if active is not None:
                active.control.cancel()
        self._abandon_overdue()
        if self.remote is not None and (force or mono >= self._next_remote_expiry):
            self._next_remote_expiry = mono + BROKER_CHECK_S
            self.remote.expire(now)
        if force or mono >= self._next_lease:
            self._next_lease = mono + LEASE_RENEW_S
            with self.catalog.write() as wconn:
                recovery.renew_leases(wconn, self.owner, now + LEASE_S)
                keep = "remote:" if self.remote is not None else None
                expired = recovery.expire_leases(
                    wconn, now, self.owner, self.registry, keep_prefix=keep
                )
                wconn.execute(
                    "UPDATE hosts SET heartbeat_at = ?, info = ? WHERE owner = ?",
                    (
                        now,
                        self._host_info(),
                        self.owner,
                    ),
                )
            if any(expired.values()):
                log.warning("jobs of hosts whose lease expired: %s", expired)
            busy = {
                str(r[0])
                for r in conn.execute(
                    "SELECT DISTINCT lane FROM job_counts WHERE state IN ('queued', 'running')"
                    " AND n > 0"
                )
            }
            self.resources.release_idle(busy)
        if force or mono >= self._next_wake_check:
            self._next_wake_check = mono + WAKE_CHECK_S
            self._wake_or_park(now)
        for session in reindex.active(conn):
            # Up to a few chunks a tick: one chunk per tick capped a re-index at 4,000/s.
            current: reindex.Reindex | None = session
            for _ in range(REINDEX_CHUNKS_PER_TICK):
                if current is None or not reindex.needs_chunk(conn, current):
                    break
                with self.catalog.write() as wconn:
                    reindex.advance(wconn, self.registry, self.settings, current, now)
                current = reindex.get(conn, current.session_id)
        if reindex.sessions_to_finish(conn):
            with self.catalog.write() as wconn:
                reindex.finish_sessions(wconn, now)

    def _check_broker(self, mono: float) -> None:
        """A Redis server that restarted lost the messages it held (unless it keeps
        them on disk): hand back every message sent before that no worker has begun.
        A copy that survived runs nothing, its token having moved on."""
        if not is_redis(self.broker_url) or mono < self._next_broker_check:
            return
        self._next_broker_check = mono + BROKER_CHECK_S
        queue = next(iter(self._queues.values()), None)
        epoch = broker_epoch(queue.huey) if queue is not None else None
        if epoch is None or epoch == self._broker_epoch:
            return
        if self._broker_epoch is None:  # first sight
            self._broker_epoch = epoch
            return
        self._broker_epoch = epoch
        with self._guard:
            lost, self._sent = self._sent, {}
            for (lane, _job, _token), pairs in lost.items():
                self._outstanding[lane] -= 1
                self._undispatch.extend(pairs)
        self.stats.broker_restarts += 1
        log.warning(
            "the broker %s restarted: %d messages sent before are sent again",
            redacted(self.broker_url),
            len(lost),
        )
        for q in self._queues.values():
            q.wake.set()

    def check_disk(self, force: bool = False) -> None:
        """Pause while the library's disk is below the mark (or after an ENOSPC, for a
        back-off); on resuming, hand back the jobs whose hand-back failed."""
        mono = time.monotonic()
        if not force and mono < self._next_disk_check:
            return
        self._next_disk_check = mono + DISK_CHECK_S
        free = diskspace.free_bytes(self.library_dir)
        if free is not None and free < diskspace.pause_below_bytes():
            if self.disk_full is None:
                log.warning("work paused: the library's disk has %d bytes free", free)
            self.disk_full = diskspace.full_message(self.library_dir, free)
            return
        if (
            self.disk_full is not None
            and mono >= self._disk_retry_at
            and self._reserve.ensure()  # room for the reserve again, above the mark
        ):
            log.warning("work resumes: the library's disk has %s bytes free", free)
            self.disk_full = None
        if self.disk_full is None:
            self._hand_back_stranded()

    def _note_disk_full(self, exc: BaseException) -> None:
        """A write failed for want of space: pause, and try again after a back-off."""
        with self._guard:
            first = self.disk_full is None
            self.disk_full = diskspace.full_message(
                self.library_dir, diskspace.free_bytes(self.library_dir)
            )
            if first:
                self._disk_retry_at = time.monotonic() + self._disk_backoff
                self._disk_backoff = min(60.0, self._disk_backoff * 2)
        if first:
            released = self._reserve.release()  # room to hand the running jobs back
            log.warning("work paused: the disk is full (%s); reserve freed: %s", exc, released)

    def _hand_back_stranded(self) -> None:
        with self._guard:
            jobs, self._hand_back_later = self._hand_back_later, []
        if not jobs:
            return
        try:
            with self.catalog.write() as conn:
                self.stats.handed_back += ledger.hand_back(conn, jobs)
        except Exception as exc:
            if diskspace.is_disk_full_error(exc):
                self._note_disk_full(exc)
            else:
                log.exception("handing back %d jobs failed", len(jobs))
            with self._guard:
                self._hand_back_later.extend(jobs)

    def _stamp(self) -> tuple[int, int]:
        try:
            mtime = (self.library_dir / SETTINGS_FILE).stat().st_mtime_ns
        except OSError:
            mtime = 0
        row = self.catalog.conn.execute("SELECT value FROM meta WHERE key = 'config_gen'")
        found = row.fetchone()
        return mtime, int(found[0]) if found else 0

    def _update_throttle(self, mono: float, now: float) -> None:
        from engine.jobs.throttle import SystemProbe

        if self.probe is None:
            self.probe = SystemProbe(self.library_dir)
        if isinstance(self.probe, SystemProbe):
            self.probe.read_idle = self.throttle.mode == "idle"
        try:
            signals = self.probe.read()
        except Exception:
            log.exception("reading the machine's load failed; not throttling")
            return
        decision = self.throttle.update(signals, os.cpu_count() or 1)
        if decision != self.decision:
            log.info("background work: %d of %d workers%s", decision.workers, decision.of,
                     f" ({decision.why})" if decision.why else "")  # fmt: skip
        slowing = self.limits.slowing()
        changed = decision != self.decision or slowing != self._slowing
        self._slowing = slowing
        self.decision = decision
        self.gate.set_limit(decision.workers)
        self.metrics.capacity((mono - self._capacity_at) * self.settings.workers.pool)
        self._capacity_at = mono
        try:
            with self.catalog.write() as conn:
                self.metrics.flush(conn, now)
                if changed:  # the status bar says so now, not at the next heartbeat
                    conn.execute(
                        "UPDATE hosts SET info = ? WHERE owner = ?", (self._host_info(), self.owner)
                    )
        except Exception:
            log.exception("saving metrics failed; they are counted again next time")

    def _apply_background(self, settings: Settings) -> None:
        """The `[background]` table: the mode (a new one decides at the next check) and
        the rate limits (kept when unchanged: their buckets hold the current pace)."""
        from engine.jobs import throttle as throttling

        bg = settings.background
        key = (bg.mode, settings.workers.pool, bg.busy_cpu, bg.idle_after_s)
        if getattr(self, "_background_key", None) != key:
            self._background_key = key
            self.throttle = throttling.Throttle(
                bg.mode, settings.workers.pool, busy_cpu=bg.busy_cpu, idle_after_s=bg.idle_after_s
            )
            self._next_throttle = 0.0
        limits_key = (bg.stage_limits, bg.folder_limits)
        if getattr(self, "_limits_key", None) != limits_key:
            self._limits_key = limits_key
            self.limits = throttling.RateLimits.from_settings(settings, self.library_dir)

    def _host_info(self) -> str:
        return json.dumps({"resources": self.resources.status(), "background": self.background()})

    def background(self) -> dict[str, Any]:
        """The host's heartbeat `background` entry: `status --json`, the status bar."""
        return {
            "mode": self.throttle.mode,
            **self.decision.to_json(),
            "running": self.gate.running,
            "priority": self.priority,
            "rate_limited_s": round(self.limits.waited_s, 3),
            "rate_limited": self.limits.slowing(),  # the limits holding jobs back now
        }

    def _follow_settings(self, now: float) -> None:
        stamp = self._stamp()
        if self._config_stamp is None or stamp == self._config_stamp:
            self._config_stamp = stamp
            return
        self._config_stamp = stamp
        try:
            settings = load_settings(self.library_dir)
        except SettingsError as exc:
            log.error("the new settings cannot be used; keeping the old ones:\n%s", exc)
            return
        words = [str(r[0]) for r in self.catalog.conn.execute("SELECT word FROM tag_words")]
        registry = default_registry(settings, words)
        changed = registry.versions() != self.registry.versions()
        self.settings = settings
        self.resources.idle_release_s = settings.model_idle_release_s
        self._apply_background(settings)
        if not changed:
            return
        log.info("settings changed: stages are now %s", registry.versions())
        self.registry = registry
        self._max_group = max([MAX_GROUP] + [s.batch_size for s in registry.stages()])
        with self.catalog.write() as conn:
            reindex.sync_versions(conn, registry, now)

    def _wake_or_park(self, now: float) -> None:
        """Waiting jobs run again as soon as their model is here (imported, downloaded);
        until then, new jobs of that stage wait with them instead of being claimed.
        Jobs waiting for their item's folder (a drive unplugged) run when it is back."""
        back = offline.returned(self.catalog.conn)
        if back:
            with self.catalog.write() as wconn:
                log.info("source folders back: %d waiting jobs queued again",
                         offline.wake(wconn, back))  # fmt: skip
        waiting = ledger.waiting_stages(self.catalog.conn)
        for stage_name, (_, reason) in waiting.items():
            stage = self.registry.get(stage_name) if stage_name in self.registry else None
            check = getattr(stage, "availability", None)
            if check is None and any(r in waiting for r in getattr(stage, "requires", ())):
                # It waits because its inputs wait: woken now, its jobs would only be
                # parked again (and look queued in between). It wakes once they ran.
                continue
            try:
                missing = check() if check is not None else None
            except Exception:
                log.exception("checking whether %s can run failed", stage_name)
                continue
            with self.catalog.write() as wconn:
                if missing is None:
                    self._parked.pop(stage_name, None)
                    woken = ledger.wake(wconn, self.registry, stage_name)
                    log.info("%s can run now: %d waiting jobs queued again", stage_name, woken)
                else:
                    self._parked[stage_name] = missing
                    ledger.park_stage(wconn, self.registry, stage_name, missing or reason, now)

    def _abandon_overdue(self) -> None:
        """A stage that ignores its deadline cannot be stopped from here (a thread);
        its job fails as timed out, and whatever it returns later is discarded."""
        with self._guard:
            overdue = [
                a
                for a in self._active.values()
                if not a.abandoned
                and a.control.deadline is not None
                and time.monotonic() > a.control.deadline + TIMEOUT_GRACE_S
            ]
            for a in overdue:
                a.abandoned = True
                if a.pending:  # the rest of its run must not wait for a hung call
                    self._undispatch.extend(a.pending)
                    a.pending.clear()
        for a in overdue:
            reason = f"Timed out after {a.control.timeout_s:g} s."
            self._end(a.job, _Outcome("error", reason=reason, permanent=True))
            self.stats.timed_out += 1

    def _room(self, lane: str) -> int:
        """Messages this lane may still have in flight."""
        workers = self.settings.workers.for_lane(lane)
        limit = workers if lane in STRICT_LANES else workers * self.settings.queue_depth_per_worker
        return limit - self._outstanding[lane]

    def feed_once(self) -> int:
        if self.disk_full is not None:
            return 0  # nothing starts while the disk is full
        conn = self.catalog.conn
        paused_lanes = {
            str(row[0]) for row in conn.execute("SELECT name FROM lanes WHERE paused = 1")
        }
        active = [lane for lane in LANES if lane not in paused_lanes]
        now = time.time()
        if self._suspect_mode:
            return self._feed_suspects(active, now)
        paused_sessions = ledger.paused_sessions(conn)
        sent = 0
        if self.remote is not None:
            sent += self.remote.feed(active, now)
        with self._guard:
            pool_room = self.settings.workers.pool * self.settings.queue_depth_per_worker - sum(
                self._outstanding[lane] for lane in POOL_LANES
            )
        for lane in active:
            with self._guard:
                room = self._room(lane)
            if lane != "interactive":
                room = min(room, pool_room)
            if room <= 0:
                continue
            ready = ledger.ready_jobs(
                conn, lane, min(room * self._max_group, 8192), now, paused_sessions
            )  # read first: an idle tick costs no lock
            remote_stages = self.remote.takes(lane, now) if self.remote is not None else set()
            if remote_stages:  # left to the workers while they are live
                ready = [j for j in ready if j.stage not in remote_stages]
            if not ready:
                continue
            messages = self._group(lane, ready, room)
            with self.catalog.write() as wconn:
                taken = dict(ledger.mark_dispatched(wconn, [j for _, ids in messages for j in ids]))
            unsent = [
                (stage, [(j, taken[j]) for j in ids if j in taken]) for stage, ids in messages
            ]
            while unsent:
                stage, pairs = unsent.pop(0)
                if not pairs:
                    continue
                try:
                    self._send(lane, stage, pairs)
                except Exception:
                    with self._guard:  # marked dispatched, never sent: the feeder retries them
                        self._undispatch.extend(p for _, rest in unsent for p in rest)
                    raise
                sent += 1
            if lane != "interactive":
                pool_room -= len(messages)
        return sent

    def _group(
        self, lane: str, ready: Sequence[ledger.ReadyJob], room: int
    ) -> list[tuple[str, list[int]]]:
        """Cut ready jobs (in priority order) into at most `room` messages of one stage."""
        messages: list[tuple[str, list[int]]] = []
        for job in ready:
            size = self._group_size(lane, job.stage)
            if messages and messages[-1][0] == job.stage and len(messages[-1][1]) < size:
                messages[-1][1].append(job.id)
                continue
            if len(messages) >= room:
                break
            messages.append((job.stage, [job.id]))
        return messages

    def _group_size(self, lane: str, stage_name: str) -> int:
        if self.registry.is_task(stage_name) or stage_name not in self.registry:
            return 1
        if lane == "interactive":
            return 1  # the user waits for this one: nothing queued in front of it
        stage = self.registry.get(stage_name)
        if stage.batch_size > 1:
            return stage.batch_size
        mean = self._mean_s.get(stage_name)
        if mean is None:
            return 4
        return max(1, min(MAX_GROUP, int(TARGET_MESSAGE_S / max(mean, 1e-6))))

    def _feed_suspects(self, active: list[str], now: float) -> int:
        with self._guard:
            if any(v > 0 for v in self._outstanding.values()) or self._active or self._handlers:
                return 0
        limits = {s.name: s.batch_size for s in self.registry.stages()}
        with self.catalog.write() as wconn:
            taken = recovery.take_suspects(
                wconn, active, now, limits, self.owner if self.shared_broker else None
            )
        if taken is None:
            self._suspect_mode = recovery.has_suspects(self.catalog.conn, active)
            return 0
        lane, pairs = taken
        stage = self.catalog.read("SELECT stage FROM jobs WHERE id = ?", (pairs[0][0],))[0][0]
        self._send(lane, str(stage), pairs)
        return 1

    def _send(self, lane: str, stage: str, pairs: list[tuple[int, int]]) -> None:
        queue = self._queues["interactive" if lane == "interactive" else "pool"]
        with self._guard:
            self._outstanding[lane] += 1
            self._sent[(lane, *pairs[0])] = list(pairs)
        payload = [[j, t] for j, t in pairs]
        try:
            if queue.name == "pool":
                queue.task(lane, stage, payload, priority=LANE_PRIORITY[lane])
            else:
                queue.task(lane, stage, payload)
        except Exception:
            with self._guard:
                self._outstanding[lane] -= 1
                self._sent.pop((lane, *pairs[0]), None)
                self._undispatch.extend(pairs)
            raise
        self.stats.messages += 1
        queue.wake.set()
        # Messages in flight (in Huey or running): counted in memory, no broker query
        # per send; never below what Huey holds.
        with self._guard:
            in_flight = sum(self._outstanding.values())
        self.stats.max_queue_messages = max(self.stats.max_queue_messages, in_flight)

    def queue_messages(self) -> dict[str, int]:
        return {name: queue.huey.pending_count() for name, queue in self._queues.items()}

    # -- executing ---------------------------------------------------------------

    def execute_message(self, lane: str, stage: str, pairs: list[tuple[int, int]]) -> None:
        key = (lane, *pairs[0]) if pairs else (lane, 0, 0)
        with self._guard:
            self._handlers += 1
            ours = self._sent.pop(key, None) is not None
        gated = lane in POOL_LANES
        if gated and not self.gate.acquire(self._stop.is_set):
            with self._guard:  # stopping while throttled: these run next time
                self._undispatch.extend(pairs)
                self._handlers -= 1
                if ours:
                    self._outstanding[lane] -= 1
            return
        try:
            batched = (
                stage in self.registry
                and not self.registry.is_task(stage)
                and self.registry.get(stage).batch_size > 1
            )
            if batched:
                self._run_batch_message(self.registry.get(stage), pairs)
                return
            self._run_sequence(pairs, gated)
        except BaseException:
            log.exception("a message of %s/%s failed outside any job", lane, stage)
            raise
        finally:
            if gated:
                self.gate.release()
            with self._guard:
                self._handlers -= 1
                if ours:  # a message left in a shared broker by another run is not counted
                    self._outstanding[lane] -= 1
            self._feed_wake.set()

    # per-item and task jobs: one after another, finishing one and claiming the next
    # in a single transaction

    def _run_sequence(self, pairs: list[tuple[int, int]], gated: bool = False) -> None:
        pending = list(pairs)
        job: ledger.ClaimedJob | None = None
        try:
            while pending and job is None:
                job = self._claim(pending.pop(0))
            while job is not None:
                outcome = self._run_one(job, pending)
                # The rest of the message waits for room on disk, or — throttled since it
                # began — for a worker: a cut takes effect after the job, not the message.
                if pending and (outcome.why == "disk_full" or (gated and self.gate.over())):
                    with self._guard:
                        self._undispatch.extend(pending)
                    pending.clear()
                job = self._end(job, outcome, claim_next=pending)
        finally:
            if pending:
                with self._guard:
                    self._undispatch.extend(pending)
                self._undispatch_pending()

    def _claim(self, pair: tuple[int, int]) -> ledger.ClaimedJob | None:
        if self._stop.is_set():
            with self._guard:
                self._undispatch.append(pair)
            return None
        try:
            with self.catalog.write() as conn:
                job = ledger.claim(conn, pair[0], pair[1], self.owner, time.time(), LEASE_S)
        except Exception:
            log.exception("claiming job %s failed; it will be dispatched again", pair[0])
            with self._guard:
                self._undispatch.append(pair)
            return None
        if job is not None:
            self._started(job)
        return job

    def _started(self, job: ledger.ClaimedJob) -> None:
        self.stats.started += 1
        faults.job_started()

    def _control(self, job: ledger.ClaimedJob, timeout_s: float | None) -> JobControl:
        def report(done: int, total: int | None, note: str) -> None:
            try:
                with self.catalog.write() as conn:
                    ledger.record_progress(conn, job, done, total, note)
            except Exception:
                log.exception("recording progress of job %s failed", job.id)

        return JobControl(timeout_s=timeout_s, host_stopping=self._interrupt, on_progress=report)

    def _run_one(
        self, job: ledger.ClaimedJob, pending: list[tuple[int, int]] | None = None
    ) -> _Outcome:
        started = time.monotonic()
        is_task = self.registry.is_task(job.stage)
        stage_timeout: float | None = None
        if is_task:
            stage_timeout = self.registry.task(job.stage).timeout_s
        elif job.stage in self.registry:
            stage_timeout = self.registry.get(job.stage).timeout_s
        control = self._control(job, stage_timeout)
        with self._guard:
            self._active[job.id] = _Active(job, control, pending=pending)
        ctx = replace(self.ctx, control=control)
        item: ItemRef | None = None
        try:
            if is_task:
                task = self.registry.task(job.stage)
                output = task.run_task(job.task_key or "", ctx)
                return _Outcome("done", output=output, version=task.version)
            if job.item_id is None or job.stage not in self.registry:
                raise PermanentError(f"Unknown stage {job.stage!r} (from a newer Shoebox?).")
            item = load_item_ref(self.catalog, job.item_id)
            faults.maybe_crash(item, job.stage)
            stage = self.registry.get(job.stage)
            if stage.reads_original and not item.paths:
                raise PermanentError(CHANGED_REASON)
            if self.limits and job.lane in POOL_LANES:
                self.limits.wait(job.stage, item.paths, stage.reads_original, control.check)
            prepared = stage.prepare(item, ctx)
            control.check()
            [result] = stage.run_batch([prepared], ctx)
            if isinstance(result, BaseException):
                raise result
            if stage.reads_original:
                fresh = freshness.check(item, self.catalog)
                if not fresh.ok:
                    return _Outcome("changed", changed=fresh.changed, intact=fresh.intact)
            return _Outcome("done", output=result, version=stage.version, item=item)
        except JobInterrupted as exc:
            return _Outcome("interrupted", why=exc.why, reason=str(exc))
        except WaitingError as exc:
            return _Outcome("waiting", reason=str(exc))
        except PermanentError as exc:
            # A file edited (truncated, replaced) since it was catalogued reads as damaged:
            # that is the new content's fault, not the item's.
            return self._if_changed(job, item) or _Outcome("error", reason=str(exc), permanent=True)
        except BaseException as exc:  # SystemExit, CancelledError too: the job must end
            if diskspace.is_disk_full_error(exc):  # not the item's fault: handed back
                self._note_disk_full(exc)
                return _Outcome("interrupted", why="disk_full", reason=str(exc))
            self._log_failure(job, exc)
            return _Outcome("error", reason=readable_reason(exc))
        finally:
            self._note_duration(job.stage, time.monotonic() - started)

    def _if_changed(self, job: ledger.ClaimedJob, item: ItemRef | None) -> _Outcome | None:
        """A reads-original stage failed for its input: if the file is no longer the
        item's content, the outcome is "changed" (re-catalogued), not a bad file. The
        item as loaded for the run: another job of it may have re-catalogued the path
        to the new content meanwhile."""
        if item is None or job.stage not in self.registry:
            return None
        if not self.registry.get(job.stage).reads_original:
            return None
        try:
            fresh = freshness.check(item, self.catalog)
        except Exception:
            log.exception("checking whether the file of job %s changed failed", job.id)
            return None
        if fresh.ok:
            return None
        return _Outcome("changed", changed=fresh.changed, intact=fresh.intact)

    def _note_duration(self, stage: str, seconds: float, n: int = 1) -> None:
        per_job = seconds / max(n, 1)
        self.metrics.duration(stage, per_job, max(n, 1))
        old = self._mean_s.get(stage)
        self._mean_s[stage] = per_job if old is None else 0.8 * old + 0.2 * per_job

    def _log_failure(self, job: ledger.ClaimedJob, exc: BaseException) -> None:
        log.error(
            "job %s (%s of item %s) failed, attempt %s/%s:\n%s",
            job.id,
            job.stage,
            job.item_id if job.item_id is not None else job.task_key,
            job.attempts,
            job.max_attempts,
            "".join(traceback.format_exception(exc)),
        )

    def _end(
        self,
        job: ledger.ClaimedJob,
        outcome: _Outcome,
        claim_next: list[tuple[int, int]] | None = None,
    ) -> ledger.ClaimedJob | None:
        """Write the outcome (and claim the next job of the message) in one transaction.

        If that fails — the stage's `store` raised, the disk is full — the job is
        ended as an error in a transaction of its own; if even that fails, the
        feeder keeps trying. The job never stays `running`."""
        with self._guard:
            self._active.pop(job.id, None)  # an abandoned job's late result is inert (token)
        next_job: ledger.ClaimedJob | None = None
        try:
            with self.catalog.write() as conn:
                self._write_outcome(conn, job, outcome)
                while claim_next and next_job is None and not self._stop.is_set():
                    next_job = self._claim_in(conn, claim_next.pop(0))
                faults.in_store("before_commit")
            faults.in_store("after_commit")
        except Exception as exc:
            if diskspace.is_disk_full_error(exc):
                # Nothing was written (the transaction rolled back): the job goes back
                # to the queue when there is room; the rest of the message waits too.
                self._note_disk_full(exc)
                with self._guard:
                    self._hand_back_later.append(job)
                    if claim_next:
                        self._undispatch.extend(claim_next)
                        claim_next.clear()
                return None
            self._log_failure(job, exc)
            reason = f"Shoebox could not save the result ({readable_reason(exc).rstrip('.')})."
            if not self._record_error_now(job, reason):
                with self._guard:
                    self._unended.append((job, reason))
            return self._claim(claim_next.pop(0)) if claim_next else None
        if outcome.kind == "changed":
            self._content_changed(job, outcome)
        if next_job is not None:
            self._started(next_job)
        return next_job

    def _claim_in(self, conn: Any, pair: tuple[int, int]) -> ledger.ClaimedJob | None:
        """Claim the next job of a run inside the finishing transaction; a failure there
        must not undo the finished job, nor lose this one (it is dispatched again).
        (No savepoint: it cost ~0.1 ms a job, and SQLite undoes a failed statement.)"""
        try:
            seq = int(conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0])
            return ledger.claim(conn, pair[0], pair[1], self.owner, time.time(), LEASE_S, seq=seq)
        except Exception:
            with self._guard:
                self._undispatch.append(pair)
            if not conn.in_transaction:  # SQLite rolled the whole transaction back
                raise
            # A failed statement undoes only itself: the finished job stays finished.
            log.exception("claiming job %s failed; it will be dispatched again", pair[0])
            return None

    def _write_outcome(
        self, conn: Any, job: ledger.ClaimedJob, outcome: _Outcome, host: str = LOCAL_HOST
    ) -> None:
        now = time.time()
        if outcome.kind in ("done", "error"):
            self.metrics.outcome(job.stage, outcome.kind == "done", host=host)
        if outcome.kind == "done":
            assert outcome.output is not None
            seq = next_seq(conn)
            if ledger.finish_done(
                conn, job, seq, now, version=outcome.version, registry=self.registry
            ):
                self._requeue_if_stale(conn, job, outcome.version, seq)
                if job.item_id is None:
                    self.registry.task(job.stage).store_task(
                        conn, job.task_key or "", outcome.output, seq
                    )
                else:
                    item = outcome.item or load_item_ref(self.catalog, job.item_id, conn)
                    self.registry.get(job.stage).store_many(conn, [(item, outcome.output)], seq)
                self.stats.done += 1
            return
        if outcome.kind == "waiting":
            if ledger.park(conn, job, outcome.reason, now):
                self.stats.waiting += 1
                if offline.is_offline_reason(outcome.reason):  # this item only, not the stage
                    offline.park_item(conn, self.registry, job, outcome.reason, now)
                elif self._parked.get(job.stage) != outcome.reason:
                    self._parked[job.stage] = outcome.reason
                    ledger.park_stage(conn, self.registry, job.stage, outcome.reason, now)
            return
        if outcome.kind == "interrupted":
            if outcome.why in ("stopping", "disk_full"):
                self.stats.handed_back += ledger.hand_back(conn, [job])
            elif outcome.why == "cancelled":
                ledger.finish_cancelled(conn, job, now, self.registry)
                self.stats.cancelled += 1
            else:
                self._count(self._finish_error(conn, job, outcome.reason, permanent=True))
                self.stats.timed_out += 1
            return
        if outcome.kind == "changed":
            if outcome.intact:
                reason = "The file changed while it was read; reading another copy."
                self._count(self._finish_error(conn, job, reason, permanent=False))
            else:
                self._count(self._finish_error(conn, job, CHANGED_REASON, permanent=True))
            return
        self._count(self._finish_error(conn, job, outcome.reason, permanent=outcome.permanent))

    def _finish_error(
        self, conn: Any, job: ledger.ClaimedJob, reason: str, *, permanent: bool
    ) -> str:
        return ledger.finish_error(
            conn,
            job,
            reason,
            permanent=permanent,
            settings=self.settings,
            now=time.time(),
            registry=self.registry,
        )

    def _requeue_if_stale(self, conn: Any, job: ledger.ClaimedJob, version: str, seq: int) -> None:
        """The stage changed version while this job ran (settings changed): its result
        serves for now, and the job is queued again for the new version."""
        if job.item_id is None or job.stage not in self.registry:
            return
        current = self.registry.get(job.stage).version
        if current != version:
            conn.execute(
                """UPDATE jobs SET state = 'queued', version = ?, attempts = 0, seq = ?,
                                   finished_at = NULL, lane = 'batch'
                   WHERE id = ? AND state = 'done'""",
                (current, seq, job.id),
            )

    def _count(self, state: str) -> None:
        if state == "failed":
            self.stats.failed += 1
        elif state == "dead":
            self.stats.dead += 1
        else:
            self.stats.retried += 1

    def _record_error_now(self, job: ledger.ClaimedJob, reason: str) -> bool:
        for delay in (0.0, 0.05, 0.2, 1.0):
            time.sleep(delay)
            try:
                with self.catalog.write() as conn:
                    self._count(self._finish_error(conn, job, reason, permanent=False))
                return True
            except Exception:
                log.exception("recording the failure of job %s failed", job.id)
        return False

    def _flush_unended(self) -> None:
        with self._guard:
            todo, self._unended = self._unended, []
        for job, reason in todo:
            if not self._record_error_now(job, reason):
                with self._guard:
                    self._unended.append((job, reason))

    def _undispatch_pending(self) -> None:
        with self._guard:
            todo, self._undispatch = self._undispatch, []
        if not todo:
            return
        try:
            with self.catalog.write() as conn:
                ledger.undispatch(conn, todo)
        except Exception:
            log.exception("could not hand %d messages back to the feeder", len(todo))
            with self._guard:
                self._undispatch.extend(todo)

    # batched stages: one claim, prepare on a pool, one run_batch (bisected), one store

    def _run_batch_message(self, stage: Stage, pairs: list[tuple[int, int]]) -> None:
        if self._stop.is_set():
            with self._guard:
                self._undispatch.extend(pairs)
            self._undispatch_pending()
            return
        try:
            with self.catalog.write() as conn:
                jobs = ledger.claim_many(conn, pairs, self.owner, time.time(), LEASE_S)
        except Exception:
            log.exception("claiming a batch of %s failed; it will be dispatched again", stage.name)
            with self._guard:
                self._undispatch.extend(pairs)
            return
        if not jobs:
            return
        for job in jobs:
            self._started(job)
        control = self._control(jobs[0], stage.timeout_s)
        with self._guard:
            for job in jobs:
                self._active[job.id] = _Active(job, control, batch=len(jobs) > 1)
        started = time.monotonic()
        try:
            outcomes = self._batch_outcomes(stage, jobs, replace(self.ctx, control=control))
        except BaseException as exc:  # loading the items failed: every member retries
            if diskspace.is_disk_full_error(exc):
                self._note_disk_full(exc)
                outcomes = [_Outcome("interrupted", why="disk_full")] * len(jobs)
            else:
                self._log_failure(jobs[0], exc)
                outcomes = [_Outcome("error", reason=readable_reason(exc))] * len(jobs)
        with self._guard:
            cancelled = self._cancel_in_batch & {j.id for j in jobs}
            self._cancel_in_batch -= cancelled
        outcomes = [
            _Outcome("interrupted", why="cancelled", reason="Cancelled.")
            if j.id in cancelled
            else o
            for j, o in zip(jobs, outcomes, strict=True)
        ]
        self._note_duration(stage.name, time.monotonic() - started, len(jobs))
        self._end_batch(stage, jobs, outcomes)

    def _batch_outcomes(
        self, stage: Stage, jobs: list[ledger.ClaimedJob], ctx: StageContext
    ) -> list[_Outcome]:
        items = load_item_refs(self.catalog, [j.item_id for j in jobs if j.item_id is not None])
        outcomes: list[_Outcome | None] = [None] * len(jobs)
        futures: list[tuple[int, Future[Any]]] = []
        assert self._prep_pool is not None
        for i, job in enumerate(jobs):
            item = items.get(job.item_id or -1)
            if item is None:
                outcomes[i] = _Outcome(
                    "error", reason="The item was removed from the catalog.", permanent=True
                )
                continue
            faults.maybe_crash(item, stage.name)
            if stage.reads_original and not item.paths:
                outcomes[i] = _Outcome("error", reason=CHANGED_REASON, permanent=True)
                continue
            if self.limits and job.lane in POOL_LANES and ctx.control is not None:
                try:
                    check = ctx.control.check
                    self.limits.wait(stage.name, item.paths, stage.reads_original, check)
                except JobInterrupted as exc:
                    outcomes[i] = _Outcome("interrupted", why=exc.why, reason=str(exc))
                    continue
            futures.append((i, self._prep_pool.submit(stage.prepare, item, ctx)))
        prepared: list[tuple[int, Any]] = []
        for i, future in futures:
            try:
                prepared.append((i, future.result()))
            except BaseException as exc:
                outcomes[i] = self._exception_outcome(jobs[i], exc)
        try:
            results = self._run_bisected(stage, [p for _, p in prepared], ctx)
        except JobInterrupted as exc:
            for i, _ in prepared:
                outcomes[i] = _Outcome("interrupted", why=exc.why, reason=str(exc))
            return [o or _Outcome("error", reason="internal") for o in outcomes]
        for (i, _), result in zip(prepared, results, strict=True):
            if isinstance(result, BaseException):
                outcomes[i] = self._exception_outcome(jobs[i], result)
                continue
            item = items[jobs[i].item_id or -1]
            if stage.reads_original:
                fresh = freshness.check(item, self.catalog)
                if not fresh.ok:
                    outcomes[i] = _Outcome("changed", changed=fresh.changed, intact=fresh.intact)
                    continue
            outcomes[i] = _Outcome("done", output=result, version=stage.version)
        return [o or _Outcome("error", reason="No result was produced.") for o in outcomes]

    def _exception_outcome(self, job: ledger.ClaimedJob, exc: BaseException) -> _Outcome:
        if isinstance(exc, JobInterrupted):
            return _Outcome("interrupted", why=exc.why, reason=str(exc))
        if diskspace.is_disk_full_error(exc):
            self._note_disk_full(exc)
            return _Outcome("interrupted", why="disk_full", reason=str(exc))
        if isinstance(exc, WaitingError):
            return _Outcome("waiting", reason=str(exc))
        if isinstance(exc, PermanentError):
            return _Outcome("error", reason=str(exc), permanent=True)
        self._log_failure(job, exc)
        return _Outcome("error", reason=readable_reason(exc))

    def _run_bisected(
        self, stage: Stage, inputs: list[Any], ctx: StageContext
    ) -> list[StageOutput | BaseException]:
        """`run_batch`; if the call fails as a whole, halves until one bad input fails alone."""
        if not inputs:
            return []
        ctx.check()
        try:
            results = stage.run_batch(inputs, ctx)
            if len(results) != len(inputs):
                raise RuntimeError(
                    f"{stage.name} returned {len(results)} results for {len(inputs)} inputs"
                )
            return results
        except JobInterrupted:
            raise
        except BaseException as exc:
            if len(inputs) == 1:
                return [exc]
            mid = len(inputs) // 2
            return self._run_bisected(stage, inputs[:mid], ctx) + self._run_bisected(
                stage, inputs[mid:], ctx
            )

    def _end_batch(
        self, stage: Stage, jobs: list[ledger.ClaimedJob], outcomes: list[_Outcome]
    ) -> None:
        with self._guard:
            for job in jobs:
                self._active.pop(job.id, None)
        try:
            with self.catalog.write() as conn:
                self._write_batch(conn, stage, list(zip(jobs, outcomes, strict=True)))
                faults.in_store("before_commit")
            faults.in_store("after_commit")
        except Exception as exc:
            # One bad output must not fail the batch: store them one by one.
            log.warning("storing a batch of %s failed (%s); storing one by one", stage.name, exc)
            for job, outcome in zip(jobs, outcomes, strict=True):
                self._end(job, outcome)
            return
        for job, outcome in zip(jobs, outcomes, strict=True):
            if outcome.kind == "changed":
                self._content_changed(job, outcome)

    def _content_changed(self, job: ledger.ClaimedJob, outcome: _Outcome) -> None:
        """Catalogue the new content; when no copy of the old content is left, the old
        item's other waiting jobs fail now with the same reason (else each would fail
        later with a vaguer one, depending on timing)."""
        freshness.recatalogue(outcome.changed, self.catalog, self.registry, self.settings)
        if outcome.intact or job.item_id is None:
            return
        try:
            with self.catalog.write() as conn:
                ledger.fail_waiting_jobs(conn, job.item_id, CHANGED_REASON, time.time())
        except Exception:
            log.exception("failing the waiting jobs of changed item %s failed", job.item_id)

    def _write_batch(
        self,
        conn: Any,
        stage: Stage,
        pairs: list[tuple[ledger.ClaimedJob, _Outcome]],
        host: str = LOCAL_HOST,
    ) -> None:
        """End a batch's jobs in the caller's transaction; `host` is whose work it was
        (a remote worker's name, for the metrics)."""
        seq = next_seq(conn)
        now = time.time()
        done: list[tuple[int, StageOutput]] = []
        for job, outcome in pairs:
            if outcome.kind == "done":
                self.metrics.outcome(job.stage, True, host=host)
                assert outcome.output is not None and job.item_id is not None
                if ledger.finish_done(
                    conn, job, seq, now, version=outcome.version, registry=self.registry
                ):
                    self._requeue_if_stale(conn, job, outcome.version, seq)
                    done.append((job.item_id, outcome.output))
            else:
                self._write_outcome(conn, job, outcome, host)
        if done:
            items = load_item_refs(self.catalog, [item_id for item_id, _ in done], conn)
            stage.store_many(conn, [(items[item_id], out) for item_id, out in done], seq)
            self.stats.done += len(done)


def _has_workers(catalog: Catalog) -> bool:
    row = catalog.conn.execute("SELECT 1 FROM workers WHERE revoked_at IS NULL LIMIT 1")
    return row.fetchone() is not None


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


# One query: each item with its paths (existing first), or one row with NULLs for none.
_ITEMS_SQL = """SELECT i.id, i.hash, i.kind, i.format, i.size, p.raw, p.size, p.mtime_ns
                FROM items i LEFT JOIN paths p ON p.item_id = i.id
                WHERE i.id IN ({}) ORDER BY i.id, p.missing, p.id"""


def load_item_refs(
    catalog: Catalog, item_ids: Sequence[int], conn: Any = None
) -> dict[int, ItemRef]:
    """Items with their paths (existing first) and catalogued stats, in two queries."""
    conn = conn or catalog.conn
    rows: dict[int, tuple[tuple[Any, ...], list[tuple[str, int, int]]]] = {}
    for part in ledger.chunks(list(item_ids)):
        for row in conn.execute(_ITEMS_SQL.format(ledger.marks(len(part))), tuple(part)):
            item_id = int(row[0])
            _, found = rows.setdefault(item_id, (tuple(row[:5]), []))
            if row[5] is not None:
                found.append((os.fsdecode(bytes(row[5])), int(row[6]), int(row[7])))
    return {
        item_id: ItemRef(
            id=item_id,
            hash=str(head[1]),
            kind=str(head[2]),
            format=str(head[3]),
            size=int(head[4]),
            paths=tuple(p[0] for p in found),
            mtime_ns=min((p[2] for p in found), default=None),
            path_stats=tuple((p[1], p[2]) for p in found),
        )
        for item_id, (head, found) in rows.items()
    }


def load_item_ref(catalog: Catalog, item_id: int, conn: Any = None) -> ItemRef:
    item = load_item_refs(catalog, [item_id], conn).get(item_id)
    if item is None:
        raise PermanentError("The item was removed from the catalog.")
    return item
