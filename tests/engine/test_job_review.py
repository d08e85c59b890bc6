"""Regression tests for defects a review of the grown job core found (each failed before)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from huey import SqliteHuey
from huey.api import Huey

from engine.errors import PermanentError
from engine.jobs import ledger, recovery, reindex
from engine.jobs.host import TASK_NAME, WorkerHost, run_jobs
from engine.pipeline.types import ItemRef, StageContext
from tests.engine.jobstages import (
    Batched,
    Recorder,
    add_items,
    failing_claims,
    fast_settings,
    library_with,
    new_session,
    run_until_idle,
    states,
)

# The queue suite runs on both brokers: the embedded SQLite queue and Redis.
pytestmark = pytest.mark.usefixtures("queue_backend")


def _crash_while_running(lib: object, job_ids: list[int], owner: str = "dead:1") -> None:
    with lib.catalog.write() as conn:  # type: ignore[attr-defined]
        for job_id in job_ids:
            [(j, t)] = ledger.mark_dispatched(conn, [job_id])
            assert ledger.claim(conn, j, t, owner, time.time(), 60)


def test_a_paused_suspect_is_never_taken_into_a_running_sessions_group(tmp_path: Path) -> None:
    lib = library_with(tmp_path / "lib", Recorder())
    paused, other = new_session(lib), new_session(lib)
    add_items(lib, 1, session_id=paused)  # job 1: lower id, paused
    add_items(lib, 4, session_id=other)
    _crash_while_running(lib, [1, 2])
    with lib.catalog.write() as conn:
        recovery.recover(conn, time.time())
    lib.pause_session(paused)
    host = run_until_idle(lib, timeout=20)  # looped forever handing job 1 back
    assert states(lib) == {"done": 4, "queued": 1}
    assert host.stats.messages < 20


def test_dependents_of_a_requirement_dead_in_a_crash_or_cancelled_are_skipped(
    tmp_path: Path,
) -> None:
    lib = library_with(tmp_path / "lib", Recorder("a"), Recorder("b", requires=("a",)))
    add_items(lib, 2)  # jobs: a1=1, b1=2, a2=3, b2=4
    with lib.catalog.write() as conn:
        conn.execute("UPDATE jobs SET attempts = max_attempts - 1 WHERE id = 1")
    _crash_while_running(lib, [1])
    lib.cancel_jobs([3])
    run_until_idle(lib, timeout=20)  # b1 waited forever for a1 before
    rows = dict(lib.catalog.read("SELECT id, state FROM jobs"))
    assert rows == {1: "dead", 2: "skipped", 3: "cancelled", 4: "skipped"}


def test_a_claim_failing_inside_the_finishing_transaction_loses_nothing(tmp_path: Path) -> None:
    lib = library_with(tmp_path / "lib", Recorder())
    add_items(lib, 3)
    with failing_claims(2):  # the claim of the run's second job, inside _end
        run_until_idle(lib, timeout=20)
    rows = [tuple(r) for r in lib.catalog.read("SELECT state, attempts FROM jobs")]
    assert rows == [("done", 1)] * 3  # the first was not undone, the second not lost


def test_a_failed_enqueue_does_not_strand_the_other_messages(tmp_path: Path) -> None:
    lib = library_with(tmp_path / "lib", Recorder(lane="interactive"))
    add_items(lib, 4)  # interactive: one job a message, four messages in one feed
    real = Huey.enqueue
    n = [0]

    def flaky(self: Huey, task: object) -> object:
        n[0] += 1
        if n[0] == 1:
            raise sqlite3.OperationalError("database is locked")
        return real(self, task)

    mp = pytest.MonkeyPatch()
    mp.setattr(Huey, "enqueue", flaky)
    try:
        run_until_idle(lib, timeout=20)
    finally:
        mp.undo()
    assert states(lib) == {"done": 4}


def test_cancelling_one_member_of_a_batch_cancels_only_that_member(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()

    class Slow(Batched):
        def run_batch(self, inputs, ctx):  # type: ignore[no-untyped-def]
            started.set()
            release.wait(10)
            return super().run_batch(inputs, ctx)

    lib = library_with(tmp_path / "lib", Slow(batch_size=4))
    add_items(lib, 4)
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        assert started.wait(10)
        lib.cancel_jobs([1])
        host.housekeeping(force=True)
        release.set()
        host.wait_idle(timeout=20)
    finally:
        release.set()
        host.stop()
    rows = dict(lib.catalog.read("SELECT id, state FROM jobs"))
    assert rows == {1: "cancelled", 2: "done", 3: "done", 4: "done"}
    assert lib.catalog.read("SELECT count(*) FROM results WHERE item_id = 1")[0][0] == 0


def test_a_stale_message_in_a_shared_broker_runs_nothing_and_counts_nothing(
    tmp_path: Path,
) -> None:
    lib = library_with(tmp_path / "lib", Recorder())
    add_items(lib, 3)
    with lib.catalog.write() as conn:  # job 1 in a message, job 2 running, when it crashed
        [(j1, t1)] = ledger.mark_dispatched(conn, [1])
    _crash_while_running(lib, [2], owner=recovery.local_owner_prefix() + "999")
    old = SqliteHuey(name="pool", filename=str(lib.root / "queue.db"), results=False)
    old.task(name=TASK_NAME)(run_jobs)("import", "noop", [[j1, t1]], priority=30)
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings, shared_broker=True)
    host.start()
    try:
        host.wait_idle(timeout=20)
        assert all(v == 0 for v in host._outstanding.values()), host._outstanding
    finally:
        host.stop()
    rows = [tuple(r) for r in lib.catalog.read("SELECT state, attempts FROM jobs ORDER BY id")]
    assert rows == [("done", 1), ("done", 2), ("done", 1)]  # the stale message ran nothing


def test_requeuing_a_failed_requirement_brings_its_skipped_dependents_back(
    tmp_path: Path,
) -> None:
    def fail(item: ItemRef, ctx: StageContext) -> None:
        raise PermanentError("Bad.")

    a = Recorder("a", body=fail)
    lib = library_with(tmp_path / "lib", a, Recorder("b", requires=("a",)))
    add_items(lib, 1)
    run_until_idle(lib)
    assert dict(lib.catalog.read("SELECT stage, state FROM jobs")) == {
        "a": "failed",
        "b": "skipped",
    }
    a.version, a.body = "2", None  # a new version of the requirement: the library re-indexes
    run_until_idle(lib)
    assert dict(lib.catalog.read("SELECT stage, state FROM jobs")) == {"a": "done", "b": "done"}


def test_retrying_a_job_by_id_brings_back_what_it_skipped(tmp_path: Path) -> None:
    a = Recorder("a", body=lambda item, ctx: (_ for _ in ()).throw(PermanentError("Bad.")))
    lib = library_with(tmp_path / "lib", a, Recorder("b", requires=("a",)))
    add_items(lib, 1)
    run_until_idle(lib)
    a.body = None
    [job_a] = [r[0] for r in lib.catalog.read("SELECT id FROM jobs WHERE stage = 'a'")]
    assert lib.retry(job_ids=[job_a]) == 2
    run_until_idle(lib)
    assert states(lib) == {"done": 2}


def test_a_requirement_without_a_job_yet_blocks_its_dependent(tmp_path: Path) -> None:
    lib = library_with(tmp_path / "lib", Recorder("x"))
    add_items(lib, 3)
    run_until_idle(lib)
    # A release adds a and b (b needs a); a's re-index is paused: b must not run alone.
    b = Recorder("b", requires=("a",))
    lib = library_with(tmp_path / "lib", Recorder("x"), Recorder("a"), b)
    with lib.catalog.write() as conn:
        sa, _sb = reindex.sync_versions(conn, lib.registry, time.time())
    lib.pause_session(sa)
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        with pytest.raises(TimeoutError):
            host.wait_idle(timeout=2)
        assert b.ran == []
        lib.pause_session(sa, False)
        host.wait_idle(timeout=20)
    finally:
        host.stop()
    assert sorted(b.ran) == [1, 2, 3]
    assert states(lib) == {"done": 9}


def test_a_stage_raising_a_base_exception_still_ends_its_job(tmp_path: Path) -> None:
    def body(item: ItemRef, ctx: StageContext) -> None:
        raise SystemExit(3)

    lib = library_with(tmp_path / "lib", Recorder(body=body))
    fast_settings(lib)
    add_items(lib, 1)
    run_until_idle(lib, timeout=20)
    assert tuple(lib.catalog.read("SELECT state, attempts FROM jobs")[0]) == (
        "dead",
        lib.settings.max_attempts,
    )


def test_a_task_asked_again_while_it_failed_still_runs_again(tmp_path: Path) -> None:
    from tests.engine.test_job_core import Train

    runs: list[int] = []

    class Flaky(Train):
        def run_task(self, key: str, ctx: StageContext):  # type: ignore[no-untyped-def]
            runs.append(1)
            self.started.set()
            assert self.release.wait(10)
            if len(runs) == 1:
                raise PermanentError("The first run fails.")
            return super().run_task(key, ctx)

    task = Flaky()
    lib = library_with(tmp_path / "lib", tasks=[task])
    lib.request_task("train", "label:1")
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        assert task.started.wait(10)
        assert lib.request_task("train", "label:1") == "rerun"
        task.release.set()
        host.wait_idle(timeout=20)
    finally:
        host.stop()
    assert len(runs) == 2 and task.runs == ["label:1"]
    assert lib.catalog.read("SELECT state FROM jobs")[0][0] == "done"
