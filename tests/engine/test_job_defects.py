"""Regression tests for defects found in the review of the job core (issue 12)."""

from __future__ import annotations

import decimal
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from engine.jobs import ledger, recovery
from engine.jobs.host import WorkerHost
from engine.library import Library
from engine.pipeline.types import ItemRef, StageContext
from tests.engine.helpers import jpeg
from tests.engine.jobstages import (
    Recorder,
    add_items,
    failing_claims,
    fast_settings,
    library_with,
    new_session,
    run_until_idle,
    states,
    wait_for,
)

# The queue suite runs on both brokers: the embedded SQLite queue and Redis.
pytestmark = pytest.mark.usefixtures("queue_backend")

# 1. A paused suspect stops the whole host ----------------------------------------------


def test_a_suspect_in_a_paused_session_does_not_stop_other_work(tmp_path: Path) -> None:
    lib = library_with(tmp_path / "lib", Recorder())
    paused, other = new_session(lib), new_session(lib)
    [suspect_item] = add_items(lib, 1, session_id=paused)
    add_items(lib, 5, session_id=other)
    with lib.catalog.write() as conn:  # the suspect: running when a host died
        [(job_id, token)] = ledger.take_for_dispatch(conn, "import", 1, time.time())
        assert ledger.claim(conn, job_id, token, "dead:1", time.time(), 60) is not None
        recovery.recover(conn, time.time())
    lib.pause_session(paused)
    assert recovery.has_suspects(lib.catalog.conn, ["import"]) is False
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        host.wait_idle(other, timeout=20)  # hung forever before the fix
    finally:
        host.stop()
    assert states(lib) == {"done": 5, "queued": 1}
    lib.pause_session(paused, False)
    run_until_idle(lib)
    assert states(lib) == {"done": 6}
    assert suspect_item in lib.registry.get("noop").ran  # type: ignore[attr-defined]


# 2. An error after a stage ran leaves its job running forever ----------------------------


def test_a_result_that_cannot_be_saved_ends_the_job(tmp_path: Path) -> None:
    # Decimal, like numpy.float32, is not JSON: storing the result raises.
    stage = Recorder(body=lambda item, ctx: {"score": decimal.Decimal("0.5")})
    lib = library_with(tmp_path / "lib", stage)
    fast_settings(lib)
    add_items(lib, 2)
    run_until_idle(lib, timeout=20)  # never returned before the fix
    rows = lib.catalog.read("SELECT state, attempts, error FROM jobs")
    assert [r["state"] for r in rows] == ["dead", "dead"]
    assert all(r["attempts"] == lib.settings.max_attempts for r in rows)
    assert all("could not save the result" in r["error"] for r in rows)
    assert all("damaged" not in r["error"] for r in rows)


def test_a_claim_that_fails_is_dispatched_again(tmp_path: Path) -> None:
    lib = library_with(tmp_path / "lib", Recorder())
    add_items(lib, 3)
    with failing_claims(1) as calls:
        run_until_idle(lib, timeout=20)
    assert calls[0] == 1 and len(calls) >= 4  # the failed claim was retried
    assert states(lib) == {"done": 3}


# 3. A file edited in place gives its old item the new file's results --------------------


def test_a_file_edited_in_place_becomes_a_new_item_and_the_old_keeps_its_history(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    photo = jpeg(src / "a.jpg", 1, (320, 240))
    lib = Library(tmp_path / "lib")
    lib.import_paths([src])
    [old] = lib.catalog.read("SELECT id, hash FROM items")
    jpeg(photo, 2, (200, 100))  # edited in place after import, before processing
    os.utime(photo, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    run_until_idle(lib)
    items = lib.catalog.read("SELECT id, hash, width, height, missing FROM items ORDER BY id")
    assert len(items) == 2
    assert (items[0]["id"], items[0]["hash"]) == (old["id"], old["hash"])
    # The old item stored nothing computed from the new content.
    assert items[0]["width"] is None
    assert (
        lib.catalog.read("SELECT count(*) FROM thumbnails WHERE item_id = ?", (old["id"],))[0][0]
        == 0
    )
    old_jobs = lib.catalog.read("SELECT state, error FROM jobs WHERE item_id = ?", (old["id"],))
    assert {r["state"] for r in old_jobs} == {"failed"}
    assert all("changed after it was catalogued" in r["error"] for r in old_jobs)
    # The new content is an item of its own, at the path, fully processed.
    assert (items[1]["width"], items[1]["height"], items[1]["missing"]) == (200, 100, 0)
    assert items[0]["missing"] == 1
    new_jobs = lib.catalog.read("SELECT state FROM jobs WHERE item_id = ?", (items[1]["id"],))
    assert {r["state"] for r in new_jobs} == {"done"}
    lib.close()


def test_a_file_only_touched_keeps_its_item_and_results(tmp_path: Path) -> None:
    src = tmp_path / "src"
    photo = jpeg(src / "a.jpg", 1, (320, 240))
    lib = Library(tmp_path / "lib")
    lib.import_paths([src])
    later = time.time_ns() + 5_000_000_000
    os.utime(photo, ns=(later, later))
    run_until_idle(lib)
    assert lib.catalog.read("SELECT count(*) FROM items")[0][0] == 1
    assert states(lib) == {"done": 2}
    assert lib.catalog.read("SELECT mtime_ns FROM paths")[0][0] == later
    lib.close()


# 4. Stage versions are ignored -----------------------------------------------------------


def test_a_job_queued_for_an_old_version_stores_the_version_that_ran(tmp_path: Path) -> None:
    lib = library_with(tmp_path / "lib", Recorder(version="2"))
    add_items(lib, 1)
    lib.catalog.conn.execute("UPDATE jobs SET version = '1'")
    run_until_idle(lib)
    row = lib.catalog.read("SELECT version, result_version FROM jobs")[0]
    assert tuple(row) == ("2", "2")
    assert [r[0] for r in lib.catalog.read("SELECT version FROM results")] == ["2"]


def test_adding_jobs_for_a_new_version_requeues_ended_jobs(tmp_path: Path) -> None:
    lib = library_with(tmp_path / "lib", Recorder(version="1"))
    [item] = add_items(lib, 1)
    run_until_idle(lib)
    lib.registry.get("noop").version = "2"
    with lib.catalog.write() as conn:
        added = ledger.add_jobs_for_item(
            conn, lib.registry, lib.settings, item, "photo", None, 1, time.time()
        )
    assert added == 1  # was 0: ON CONFLICT DO NOTHING
    assert tuple(lib.catalog.read("SELECT state, version FROM jobs")[0]) == ("queued", "2")


def test_a_version_bump_reindexes_the_library_in_the_batch_lane(tmp_path: Path) -> None:
    lib = library_with(tmp_path / "lib", Recorder(version="1"))
    add_items(lib, 30)
    run_until_idle(lib)
    lib.close()
    lib = library_with(tmp_path / "lib", Recorder(version="2"))
    host = run_until_idle(lib)
    [session] = host.stats.reindex_started
    rows = lib.catalog.read("SELECT DISTINCT state, version, lane, session_id FROM jobs")
    assert [tuple(r) for r in rows] == [("done", "2", "batch", session)]
    assert {r[0] for r in lib.catalog.read("SELECT version FROM results")} == {"2"}
    assert lib.catalog.read("SELECT count(*) FROM results")[0][0] == 30  # old ones replaced
    sess = lib.catalog.read("SELECT kind, state, planned FROM sessions WHERE id = ?", (session,))
    assert tuple(sess[0]) == ("reindex", "done", 30)
    # Same version again: nothing to do.
    assert run_until_idle(lib).stats.reindex_started == []


# 5. Ledger queries that scan ----------------------------------------------------------------


def _bulk_jobs(lib: Library, n: int, session_id: int | None) -> None:
    with lib.catalog.write() as conn:
        seq = 1
        start = int(conn.execute("SELECT coalesce(max(id), 0) FROM items").fetchone()[0])
        conn.executemany(
            "INSERT INTO items (id, hash, kind, format, size, added_at, seq)"
            " VALUES (?, ?, 'photo', 'jpeg', 1, 0, ?)",
            [(i, f"b{i}", seq) for i in range(start + 1, start + n + 1)],
        )
        conn.executemany(
            "INSERT INTO jobs (item_id, stage, version, lane, session_id, state, max_attempts,"
            " created_at, seq) VALUES (?, 'noop', '1', 'import', ?, 'queued', 3, 0, ?)",
            [(i, session_id, seq) for i in range(start + 1, start + n + 1)],
        )


def test_feeder_and_idle_queries_do_not_walk_paused_work(tmp_path: Path) -> None:
    lib = library_with(tmp_path / "lib", Recorder())
    paused = new_session(lib)
    other = new_session(lib)
    _bulk_jobs(lib, 20_000, paused)  # a paused import leads the queue
    _bulk_jobs(lib, 3, other)
    lib.pause_session(paused)
    conn = lib.catalog.conn
    now = time.time()
    ready = ledger.ready_jobs(conn, "import", 8, now)
    assert len(ready) == 3  # only the running session's jobs
    assert not ledger.has_pending_work(conn, paused)
    lib.pause()  # every lane paused
    # Deterministic cost: VM steps, far below one per job (20,000 rows).
    ready_steps = _count(conn, lambda: ledger.ready_jobs(conn, "import", 8, now))
    idle_steps = _count(conn, lambda: ledger.has_pending_work(conn))
    prio_steps = _count_write(lib, lambda c: ledger.prioritize(c, [20_001, 20_002]))
    assert ready_steps < 2_000, ready_steps
    assert idle_steps < 2_000, idle_steps
    assert prio_steps < 2_000, prio_steps
    assert not ledger.has_pending_work(conn)


def _count(conn: sqlite3.Connection, fn: object) -> int:
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    conn.set_progress_handler(tick, 10)
    try:
        fn()  # type: ignore[operator]
    finally:
        conn.set_progress_handler(None, 10)
    return count[0] * 10


def _count_write(lib: Library, fn: object) -> int:
    with lib.catalog.write() as conn:
        return _count(conn, lambda: fn(conn))  # type: ignore[operator]


# 7. Restarts dead-letter long jobs ----------------------------------------------------------


def _long_job(cooperative: bool, started: threading.Event, release: threading.Event) -> Recorder:
    def body(item: ItemRef, ctx: StageContext) -> None:
        started.set()
        while not release.wait(0.01):
            if cooperative:
                ctx.check()

    return Recorder("long", body=body)


def test_a_graceful_stop_hands_a_long_job_back_without_an_attempt(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()
    lib = library_with(tmp_path / "lib", _long_job(True, started, release))
    add_items(lib, 1)
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    assert started.wait(10)
    host.stop(grace_s=0.1)
    row = lib.catalog.read("SELECT state, attempts, suspect, crashes FROM jobs")[0]
    assert tuple(row) == ("queued", 0, 0, 0)
    assert host.stats.handed_back == 1
    release.set()
    run_until_idle(lib)
    assert tuple(lib.catalog.read("SELECT state, attempts FROM jobs")[0]) == ("done", 1)


def test_a_job_that_ignores_the_stop_is_handed_back_and_its_late_result_discarded(
    tmp_path: Path,
) -> None:
    started, release = threading.Event(), threading.Event()
    stage = _long_job(False, started, release)
    lib = library_with(tmp_path / "lib", stage)
    add_items(lib, 1)
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    assert started.wait(10)
    host.stop(grace_s=0.1)  # the stage never checks: it is still running
    assert tuple(lib.catalog.read("SELECT state, attempts FROM jobs")[0]) == ("queued", 0)
    release.set()
    wait_for(lambda: stage.ran == [1], what="the abandoned stage to return")
    time.sleep(0.1)  # let its (discarded) finish run
    assert lib.catalog.read("SELECT count(*) FROM results")[0][0] == 0
    assert tuple(lib.catalog.read("SELECT state, attempts FROM jobs")[0]) == ("queued", 0)


# 8. The crash reason counts transient failures as crashes -----------------------------------


def test_the_crash_reason_counts_only_crashes(tmp_path: Path) -> None:
    lib = library_with(tmp_path / "lib", Recorder())
    fast_settings(lib)
    add_items(lib, 1)
    now = time.time()
    with lib.catalog.write() as conn:
        for _ in range(2):  # two transient failures
            [(job_id, token)] = ledger.take_for_dispatch(conn, "import", 1, now + 10)
            job = ledger.claim(conn, job_id, token, "h:1", now, 60)
            assert job is not None
            ledger.finish_error(
                conn, job, "Network blip.", permanent=False, settings=lib.settings, now=now
            )
        [(job_id, token)] = ledger.take_for_dispatch(conn, "import", 1, now + 10)
        assert ledger.claim(conn, job_id, token, "h:1", now, 60) is not None
        assert recovery.recover(conn, now)["dead"] == 1  # third attempt: the host died
    error = lib.catalog.read("SELECT error FROM jobs")[0][0]
    assert "(1 of its attempts ended that way" in error


def test_a_library_imported_before_its_first_host_starts_no_reindex(tmp_path: Path) -> None:
    lib = library_with(tmp_path / "lib", Recorder())
    add_items(lib, 3)  # jobs exist, stage_versions does not know the stage yet
    host = run_until_idle(lib)
    assert host.stats.reindex_started == []
    assert lib.catalog.read("SELECT count(*) FROM sessions WHERE kind = 'reindex'")[0][0] == 0
    lib.registry.stages()[0].version = "2"  # a real change later does start one
    assert len(run_until_idle(lib).stats.reindex_started) == 1
