"""Synthetic stages and catalog fillers for the job-core tests (no real files needed)."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from engine.config import Settings
from engine.errors import PermanentError
from engine.jobs import ledger
from engine.jobs.host import WorkerHost
from engine.library import Library
from engine.pipeline.registry import StageRegistry
from engine.pipeline.types import ItemRef, ItemStage, StageContext, StageOutput, upsert_result
from engine.store.db import next_seq


class Recorder(ItemStage):
    """A per-item stage that records what ran, optionally running `body` for each item."""

    reads_original = False

    def __init__(
        self,
        name: str = "noop",
        *,
        version: str = "1",
        lane: str = "import",
        requires: tuple[str, ...] = (),
        body: Callable[[ItemRef, StageContext], dict[str, Any] | None] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self.name, self.version, self.lane, self.requires = name, version, lane, requires
        self.kinds = frozenset({"photo", "document"})
        self.body = body
        self.timeout_s = timeout_s
        self.ran: list[int] = []
        self.started: list[tuple[int, float]] = []
        self.lock = threading.Lock()

    def run(self, item: ItemRef, ctx: StageContext) -> StageOutput:
        with self.lock:
            self.started.append((item.id, time.monotonic()))
        data = self.body(item, ctx) if self.body else None
        with self.lock:
            self.ran.append(item.id)
        return StageOutput(data=data if data is not None else {"item": item.id})

    def store(self, conn: sqlite3.Connection, item: ItemRef, output: StageOutput, seq: int) -> None:
        upsert_result(conn, item.id, self.name, self.version, output.data)


class Batched:
    """A batched stage: records each `run_batch` call's size; `bad` ids break a batch."""

    lane = "import"
    kinds = frozenset({"photo", "document"})
    requires: tuple[str, ...] = ()
    reads_original = False
    timeout_s: float | None = None

    def __init__(
        self,
        name: str = "batched",
        batch_size: int = 8,
        *,
        version: str = "1",
        bad: Sequence[int] = (),
        unpreparable: Sequence[int] = (),
    ) -> None:
        self.name, self.batch_size, self.version = name, batch_size, version
        self.bad, self.unpreparable = set(bad), set(unpreparable)
        self.calls: list[list[int]] = []
        self.lock = threading.Lock()

    def prepare(self, item: ItemRef, ctx: StageContext) -> int:
        if item.id in self.unpreparable:
            raise PermanentError("This input cannot be prepared.")
        return item.id

    def run_batch(
        self, inputs: Sequence[int], ctx: StageContext
    ) -> list[StageOutput | BaseException]:
        with self.lock:
            self.calls.append(list(inputs))
        if self.bad & set(inputs):
            raise RuntimeError("a bad input breaks the whole batch")
        return [StageOutput(data={"item": i, "v": self.version}) for i in inputs]

    def store_many(
        self, conn: sqlite3.Connection, results: Sequence[tuple[ItemRef, StageOutput]], seq: int
    ) -> None:
        for item, output in results:
            upsert_result(conn, item.id, self.name, self.version, output.data)


def fast_settings(lib: Library, **workers: int) -> Settings:
    settings = lib.settings
    settings.retry_base_s = 0.01
    settings.retry_cap_s = 0.02
    for name, value in workers.items():
        setattr(settings.workers, name, value)
    return settings


def add_items(
    lib: Library, n: int, *, session_id: int | None = None, kind: str = "photo"
) -> list[int]:
    """Item rows without files (for stages that do not read originals), with their jobs."""
    ids = []
    with lib.catalog.write() as conn:
        seq = next_seq(conn)
        start = int(conn.execute("SELECT coalesce(max(id), 0) FROM items").fetchone()[0])
        for i in range(start + 1, start + n + 1):
            conn.execute(
                """INSERT INTO items (id, hash, kind, format, size, added_at, seq, session_id)
                   VALUES (?, ?, ?, 'jpeg', 1, ?, ?, ?)""",
                (i, f"h{i:08d}", kind, time.time(), seq, session_id),
            )
            ledger.add_jobs_for_item(
                conn, lib.registry, lib.settings, i, kind, session_id, seq, time.time()
            )
            ids.append(i)
    return ids


def new_session(lib: Library) -> int:
    return lib.new_session(["/nowhere"])


def run_until_idle(lib: Library, timeout: float = 30.0, **kw: Any) -> WorkerHost:
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings, **kw)
    host.start()
    try:
        host.wait_idle(timeout=timeout)
    finally:
        host.stop()
    return host


def states(lib: Library, stage: str | None = None) -> dict[str, int]:
    sql = "SELECT state, count(*) FROM jobs"
    params: tuple[object, ...] = ()
    if stage:
        sql += " WHERE stage = ?"
        params = (stage,)
    return {str(r[0]): int(r[1]) for r in lib.catalog.read(sql + " GROUP BY state", params)}


def library_with(path: Any, *stages: Any, tasks: Sequence[Any] = ()) -> Library:
    return Library(path, registry=StageRegistry(stages, tasks))


@contextlib.contextmanager
def failing_claims(*calls: int) -> Iterator[list[int]]:
    """`ledger.claim` raises a disk error on these calls (1-based); yields the calls seen."""
    real = ledger.claim
    seen: list[int] = []

    def flaky(conn: sqlite3.Connection, *args: Any, **kw: Any) -> Any:
        seen.append(len(seen) + 1)
        if seen[-1] in calls:
            raise sqlite3.OperationalError("disk I/O error")
        return real(conn, *args, **kw)

    ledger.claim = flaky  # type: ignore[assignment]
    try:
        yield seen
    finally:
        ledger.claim = real


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Wait for a condition by polling it (events, not a fixed sleep); fail with `what`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.01)
