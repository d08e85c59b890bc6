"""The types every stage works with: what it gets, what it returns, what it must offer.

Stages import this module; the registry imports the stages. Nothing here imports
a stage, so adding one never makes an import cycle.

Two shapes of work share the ledger:
- item stages (`Stage`): one job per (item, stage). A stage that gains from
  batching (a model on a GPU) sets `batch_size > 1`; the host then claims up to
  that many jobs in one transaction, runs `prepare` for each on a CPU pool, calls
  `run_batch` once, and stores every result in one transaction. A per-item stage
  is the trivial case (`ItemStage`: `run` and `store`).
- task stages (`TaskStage`): jobs about no single item ("train label 7",
  "rescore everything for label 7"), keyed by a string, coalesced when asked
  again while queued or running.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from engine.jobs.control import JobControl
    from engine.jobs.resources import ResourcePool


@dataclass(frozen=True)
class ItemRef:
    """What a stage gets to know about the item it processes."""

    id: int
    hash: str
    kind: str
    format: str
    size: int
    paths: tuple[str, ...]  # existing paths first; filesystem strings
    mtime_ns: int | None = None
    # (size, mtime_ns) of each entry of `paths` as catalogued: a stage's result is
    # stored only if the file it read still matches (engine/jobs/freshness.py).
    path_stats: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class StageContext:
    """What the host gives a stage: the library, shared resources, and this job's control."""

    library_dir: Path
    resources: ResourcePool | None = None
    control: JobControl | None = None

    @property
    def thumbs_dir(self) -> Path:
        return self.library_dir / "thumbs"

    def check(self) -> None:
        """Raise if the job should stop now (cancelled, host stopping, timed out).

        Long stages call this between pages or chunks; it costs nanoseconds."""
        if self.control is not None:
            self.control.check()

    def progress(self, done: int, total: int | None = None, note: str = "") -> None:
        """Report progress within a long job ("page 37 of 300"); throttled by the host."""
        if self.control is not None:
            self.control.progress(done, total, note)


@dataclass
class StageOutput:
    """A stage's result: JSON-safe data for the results table, plus stage-specific rows."""

    data: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Stage(Protocol):
    """An item stage as the host runs it (batched; per-item stages batch one at a time)."""

    name: str
    version: str  # code and model version: a change re-indexes the library
    lane: str
    kinds: frozenset[str]
    requires: tuple[str, ...]  # stages whose results this one reads (same item)
    batch_size: int  # most items per `run_batch` call; 1 = per item
    reads_original: bool  # reads the user's file (so it is checked for edits first)
    timeout_s: float | None  # per job (per batch for batched stages); None = no limit

    def prepare(self, item: ItemRef, ctx: StageContext) -> Any:
        """CPU work for one item (decode, resize), run on a pool one batch ahead.
        Raise PermanentError for bad input: that item fails alone."""
        ...

    def run_batch(
        self, inputs: Sequence[Any], ctx: StageContext
    ) -> list[StageOutput | BaseException]:
        """One call for N prepared inputs: an output or an exception per input.
        An exception raised by the call as a whole makes the host bisect the batch."""
        ...

    def store_many(
        self,
        conn: sqlite3.Connection,
        results: Sequence[tuple[ItemRef, StageOutput]],
        seq: int,
    ) -> None:
        """Write the results inside the caller's transaction; idempotent (upserts)."""
        ...


class ItemStage:
    """Base for per-item stages: implement `run` and `store`; the rest follows."""

    name: str
    version: str
    lane: str = "import"
    kinds: frozenset[str] = frozenset({"photo", "document"})
    requires: tuple[str, ...] = ()
    batch_size: int = 1
    reads_original: bool = True
    timeout_s: float | None = None

    def run(self, item: ItemRef, ctx: StageContext) -> StageOutput:
        """Compute the result. Must not modify the original file. May write
        content-addressed files under the library folder. Raise PermanentError for
        bad input, anything else is retried."""
        raise NotImplementedError

    def store(self, conn: sqlite3.Connection, item: ItemRef, output: StageOutput, seq: int) -> None:
        """Write the result inside the caller's transaction; idempotent (an upsert)."""
        raise NotImplementedError

    def prepare(self, item: ItemRef, ctx: StageContext) -> Any:
        return item

    def run_batch(
        self, inputs: Sequence[Any], ctx: StageContext
    ) -> list[StageOutput | BaseException]:
        out: list[StageOutput | BaseException] = []
        for item in inputs:
            try:
                out.append(self.run(item, ctx))
            except Exception as exc:
                out.append(exc)
        return out

    def store_many(
        self,
        conn: sqlite3.Connection,
        results: Sequence[tuple[ItemRef, StageOutput]],
        seq: int,
    ) -> None:
        for item, output in results:
            self.store(conn, item, output, seq)


class PerItemAdapter(ItemStage):
    """Wraps any object with `run`/`store` and the four attributes as a `Stage`."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.version = inner.version
        self.lane = inner.lane
        self.kinds = frozenset(inner.kinds)
        self.requires = tuple(getattr(inner, "requires", ()))
        self.reads_original = bool(getattr(inner, "reads_original", True))
        self.timeout_s = getattr(inner, "timeout_s", None)

    def run(self, item: ItemRef, ctx: StageContext) -> StageOutput:
        output: StageOutput = self.inner.run(item, ctx)
        return output

    def store(self, conn: sqlite3.Connection, item: ItemRef, output: StageOutput, seq: int) -> None:
        self.inner.store(conn, item, output, seq)


@runtime_checkable
class TaskStage(Protocol):
    """Work about no single item, keyed by a string (e.g. a label id)."""

    name: str
    version: str
    lane: str  # learning or batch
    timeout_s: float | None

    def run_task(self, key: str, ctx: StageContext) -> StageOutput: ...

    def store_task(
        self, conn: sqlite3.Connection, key: str, output: StageOutput, seq: int
    ) -> None: ...


def upsert_result(
    conn: sqlite3.Connection, item_id: int, stage: str, version: str, data: dict[str, Any]
) -> None:
    """The stage's JSON result for this version. Results of other versions served until
    this one replaced them; the ledger removes them as it finishes the job."""
    conn.execute(
        """INSERT INTO results (item_id, stage, version, data, updated_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (item_id, stage, version)
           DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at""",
        (item_id, stage, version, json.dumps(data, sort_keys=True), time.time()),
    )
