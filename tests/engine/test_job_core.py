"""The job core grown for models: batches, dependencies, task jobs, long jobs, lanes, leases."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from engine.errors import PermanentError
from engine.jobs import ledger, recovery
from engine.jobs.host import WorkerHost
from engine.jobs.resources import ResourcePool
from engine.jobs.subprocesses import run_controlled
from engine.pipeline.types import ItemRef, StageContext, StageOutput
from tests.engine.jobstages import (
    Batched,
    Recorder,
    add_items,
    fast_settings,
    library_with,
    run_until_idle,
    states,
    wait_for,
)

# The queue suite runs on both brokers: the embedded SQLite queue and Redis.
pytestmark = pytest.mark.usefixtures("queue_backend")

# -- batches ---------------------------------------------------------------------------


def test_a_batched_stage_runs_in_batches_and_stores_every_result(tmp_path: Path) -> None:
    stage = Batched(batch_size=8)
    lib = library_with(tmp_path / "lib", stage)
    add_items(lib, 20)
    host = run_until_idle(lib)
    sizes = sorted(len(c) for c in stage.calls)
    assert sum(sizes) == 20 and max(sizes) <= 8
    assert len(stage.calls) <= 4  # batches, not 20 calls
    assert host.stats.messages <= 4
    assert states(lib) == {"done": 20}
    assert lib.catalog.read("SELECT count(*) FROM results")[0][0] == 20
    assert {r[0] for r in lib.catalog.read("SELECT batch_n FROM jobs")} <= set(range(1, 9))


def test_a_batch_that_raises_is_bisected_so_the_bad_input_fails_alone(tmp_path: Path) -> None:
    stage = Batched(batch_size=8, bad=[5], unpreparable=[7])
    lib = library_with(tmp_path / "lib", stage)
    fast_settings(lib)
    add_items(lib, 8)
    run_until_idle(lib)
    rows = {r[0]: (r[1], r[2]) for r in lib.catalog.read("SELECT item_id, state, error FROM jobs")}
    assert rows[7] == ("failed", "This input cannot be prepared.")
    assert rows[5][0] == "dead" and "bad input" in rows[5][1]
    assert {i for i, (state, _) in rows.items() if state == "done"} == {1, 2, 3, 4, 6, 8}


def test_a_crash_mid_batch_charges_no_member_until_bisection_finds_the_culprit(
    tmp_path: Path,
) -> None:
    lib = library_with(tmp_path / "lib", Batched(batch_size=8))
    add_items(lib, 8)
    culprit = 6
    now = time.time()
    sizes = []
    first = True
    for _ in range(20):  # each round: dispatch the suspects, "crash" if the culprit is in
        with lib.catalog.write() as conn:
            if first:
                first = False
                pairs = ledger.take_for_dispatch(conn, "import", 8, now)
            else:
                taken = recovery.take_suspects(conn, ["import"], now, {"batched": 8})
                if taken is None:
                    break
                pairs = taken[1]
            jobs = ledger.claim_many(conn, pairs, "h:1", now, 60)
            if culprit in [j.item_id for j in jobs]:
                sizes.append(len(jobs))
                recovery.recover(conn, now)
            else:
                for job in jobs:
                    ledger.finish_done(conn, job, 1, now, registry=lib.registry)
    assert sizes == [8, 4, 2, 1, 1, 1]  # halving to the culprit alone, then its attempts
    rows = {
        r[0]: tuple(r[1:]) for r in lib.catalog.read("SELECT item_id, attempts, state FROM jobs")
    }
    assert rows.pop(culprit) == (3, "dead")
    assert set(rows.values()) == {(1, "done")}  # innocents: one attempt each, all done


# -- dependencies ------------------------------------------------------------------------


def test_a_stage_waits_for_its_requirement_and_is_skipped_when_it_fails(tmp_path: Path) -> None:
    def preview(item: ItemRef, ctx: StageContext) -> None:
        if item.id == 2:
            raise PermanentError("The file is damaged.")

    first = Recorder("preview", body=preview)
    second = Recorder("embed", requires=("preview",))
    lib = library_with(tmp_path / "lib", first, second)
    add_items(lib, 3)
    blocked = dict(lib.catalog.read("SELECT stage, max(blocked) FROM jobs GROUP BY stage"))
    assert blocked == {"preview": 0, "embed": 1}
    run_until_idle(lib)
    started = dict(first.started), dict(second.started)
    for item in (1, 3):
        assert started[1][item] > started[0][item]  # after its requirement
    rows = dict(lib.catalog.read("SELECT stage || item_id, state FROM jobs"))
    assert rows == {
        "preview1": "done", "preview2": "failed", "preview3": "done",
        "embed1": "done", "embed2": "skipped", "embed3": "done",
    }  # fmt: skip
    error = lib.catalog.read("SELECT error FROM jobs WHERE state = 'skipped'")[0][0]
    assert error.startswith("Skipped: needs preview") and "damaged" in error
    # Retrying the requirement brings the skipped job back with it.
    first.body = None
    assert lib.retry(item_ids=[2]) == 2
    embed2 = lib.catalog.read(
        "SELECT state, blocked FROM jobs WHERE stage = 'embed' AND item_id = 2"
    )
    assert tuple(embed2[0]) == ("queued", 1)
    run_until_idle(lib)
    assert states(lib) == {"done": 6}


# -- task jobs ---------------------------------------------------------------------------


class Train:
    name = "train"
    version = "1"
    lane = "learning"
    timeout_s: float | None = None

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def run_task(self, key: str, ctx: StageContext) -> StageOutput:
        self.started.set()
        assert self.release.wait(10)
        self.runs.append(key)
        return StageOutput({"key": key})

    def store_task(self, conn: sqlite3.Connection, key: str, output: StageOutput, seq: int) -> None:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, 1)"
            " ON CONFLICT (key) DO UPDATE SET value = value + 1",
            (f"trained:{key}",),
        )


def test_task_requests_coalesce_while_queued_and_run_once_more_while_running(
    tmp_path: Path,
) -> None:
    train = Train()
    lib = library_with(tmp_path / "lib", Recorder(), tasks=[train])
    assert [lib.request_task("train", "label:7") for _ in range(10)] == ["queued"] + [
        "coalesced"
    ] * 9
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        assert train.started.wait(10)
        asks = {lib.request_task("train", "label:7") for _ in range(10)}
        assert asks == {"rerun"}
        train.release.set()
        host.wait_idle(timeout=20)
    finally:
        host.stop()
    assert train.runs == ["label:7", "label:7"]  # ten asks while running: one more run
    assert lib.catalog.read("SELECT value FROM meta WHERE key = 'trained:label:7'")[0][0] == 2
    assert tuple(lib.catalog.read("SELECT state, lane, item_id FROM jobs")[0]) == (
        "done",
        "learning",
        None,
    )
    assert lib.request_task("train", "label:7") == "queued"  # ended: asking runs it again


def test_a_task_job_survives_a_host_crash(tmp_path: Path) -> None:
    train = Train()
    train.release.set()
    lib = library_with(tmp_path / "lib", tasks=[train])
    lib.request_task("train", "label:1")
    with lib.catalog.write() as conn:
        [(job_id, token)] = ledger.take_for_dispatch(conn, "learning", 1, time.time())
        assert ledger.claim(conn, job_id, token, "gone:1", time.time(), 60) is not None
    run_until_idle(lib)  # recovery re-queues it; it runs alone as a suspect
    assert train.runs == ["label:1"]
    assert tuple(lib.catalog.read("SELECT state, attempts FROM jobs")[0]) == ("done", 2)


# -- long jobs ---------------------------------------------------------------------------


def test_progress_cancel_and_timeout_within_a_job(tmp_path: Path) -> None:
    cancel_me = threading.Event()

    def pages(item: ItemRef, ctx: StageContext) -> None:
        for page in range(1, 10_000):
            ctx.check()
            ctx.progress(page, 10_000, f"page {page} of 10000")
            if item.id == 1 and page == 5:
                cancel_me.set()
            time.sleep(0.005)

    lib = library_with(tmp_path / "lib", Recorder("ocr", body=pages, timeout_s=1.0))
    fast_settings(lib, import_=2, pool=2)
    add_items(lib, 2)
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        assert cancel_me.wait(10)
        wait_for(
            lambda: lib.catalog.read("SELECT progress_done FROM jobs WHERE item_id = 1")[0][0],
            what="progress in the ledger",
        )
        note = lib.catalog.read("SELECT progress_note FROM jobs WHERE item_id = 1")[0][0]
        assert note.startswith("page ")
        [job_id] = [r[0] for r in lib.catalog.read("SELECT id FROM jobs WHERE item_id = 1")]
        lib.cancel_jobs([job_id])
        host.housekeeping(force=True)
        host.wait_idle(timeout=20)
    finally:
        host.stop()
    rows = {r[0]: (r[1], r[2]) for r in lib.catalog.read("SELECT item_id, state, error FROM jobs")}
    assert rows[1] == ("cancelled", "Cancelled.")
    assert rows[2] == ("failed", "Timed out after 1 s.")


def test_a_subprocess_under_a_deadline_is_killed(tmp_path: Path) -> None:
    from engine.jobs.control import JobControl, JobInterrupted

    control = JobControl(timeout_s=0.3)
    marker = tmp_path / "pid"
    script = f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    started = time.monotonic()
    with pytest.raises(JobInterrupted) as info:
        run_controlled([sys.executable, "-c", script], control)
    assert info.value.why == "timeout"
    assert time.monotonic() - started < 10
    pid = int(marker.read_text())
    wait_for(lambda: not _alive(pid), what="the child to be gone")
    ok = run_controlled([sys.executable, "-c", "print('hi')"], JobControl(timeout_s=30))
    assert (ok.returncode, ok.stdout.strip()) == (0, b"hi")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return not any(line.startswith("State:") and "Z" in line for line in fh)
    except FileNotFoundError:
        return False


# -- lanes -------------------------------------------------------------------------------


def test_batch_work_yields_to_imports_on_a_single_pool_thread(tmp_path: Path) -> None:
    imp = Recorder("imp", body=lambda item, ctx: time.sleep(0.002))
    bat = Recorder("bat", lane="batch")
    lib = library_with(tmp_path / "lib", imp, bat)
    fast_settings(lib, pool=1, import_=1, batch=1)
    add_items(lib, 40)
    run_until_idle(lib)
    last_import = max(t for _, t in imp.started)
    first_batch = min(t for _, t in bat.started)
    assert last_import < first_batch


def test_the_learning_lane_runs_one_job_at_a_time(tmp_path: Path) -> None:
    running = []
    peak = [0]
    lock = threading.Lock()

    def body(item: ItemRef, ctx: StageContext) -> None:
        with lock:
            running.append(item.id)
            peak[0] = max(peak[0], len(running))
        time.sleep(0.02)
        with lock:
            running.remove(item.id)

    lib = library_with(tmp_path / "lib", Recorder("learn", lane="learning", body=body))
    fast_settings(lib, pool=2, learning=1)
    add_items(lib, 10)
    run_until_idle(lib)
    assert peak[0] == 1 and states(lib) == {"done": 10}


# -- leases and the broker ----------------------------------------------------------------


def test_leases_are_renewed_and_expired_ones_recovered(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()

    running: list[int] = []

    def body(item: ItemRef, ctx: StageContext) -> None:
        running.append(item.id)
        started.set()
        release.wait(10)

    lib = library_with(tmp_path / "lib", Recorder(body=body))
    add_items(lib, 1)
    now = time.time()
    with lib.catalog.write() as conn:  # another host's jobs: one gone, one alive
        for item_id, owner, lease in ((10, "elsewhere:1", now - 5), (11, "elsewhere:2", now + 60)):
            conn.execute(
                "INSERT INTO items (id, hash, kind, format, size, added_at, seq)"
                " VALUES (?, ?, 'photo', 'jpeg', 1, 0, 1)",
                (item_id, f"x{item_id}"),
            )
            conn.execute(
                """INSERT INTO jobs (item_id, stage, version, lane, state, attempts, max_attempts,
                                     owner, lease_until, created_at, seq)
                   VALUES (?, 'noop', '1', 'batch', 'running', 1, 3, ?, ?, 0, 1)""",
                (item_id, owner, lease),
            )
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings, shared_broker=True)
    host.start()
    try:
        assert started.wait(10)
        # The expired one runs first, alone (a suspect: its host may have crashed on it).
        assert running == [10]
        before = lib.catalog.read("SELECT lease_until FROM jobs WHERE item_id = 10")[0][0]
        time.sleep(0.02)
        host.housekeeping(force=True)
        after = lib.catalog.read("SELECT lease_until FROM jobs WHERE item_id = 10")[0][0]
        assert after > before
        alive = lib.catalog.read("SELECT state, owner FROM jobs WHERE item_id = 11")[0]
        assert tuple(alive) == ("running", "elsewhere:2")  # its lease holds: not ours to take
        release.set()
        wait_for(lambda: states(lib).get("done", 0) >= 2, what="the expired job to re-run")
    finally:
        release.set()
        host.stop()
    assert lib.catalog.read("SELECT state FROM jobs WHERE item_id = 10")[0][0] == "done"
    assert sorted(running) == [1, 10]


def test_a_shared_broker_is_never_flushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huey.api import Huey

    flushed: list[str] = []
    monkeypatch.setattr(Huey, "flush", lambda self: flushed.append(self.name))
    lib = library_with(tmp_path / "lib", Recorder())
    run_until_idle(lib, shared_broker=True)
    assert flushed == []
    run_until_idle(lib)
    # on Redis the queues are named after the library (shoebox_<library id>_pool)
    assert sorted(name.rsplit("_", 1)[-1] for name in flushed) == ["interactive", "pool"]


# -- the model service hook ---------------------------------------------------------------


def test_a_resource_loads_once_for_all_threads_and_is_released_only_when_idle() -> None:
    pool = ResourcePool(idle_release_s=60)
    loads: list[int] = []
    released: list[Any] = []

    def load() -> object:
        loads.append(1)
        time.sleep(0.05)
        return object()

    got: list[object] = []
    threads = [
        threading.Thread(
            target=lambda: got.append(
                pool.get(("clip", "cpu"), load, lane="batch", release=released.append)
            )
        )
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1 and len({id(x) for x in got}) == 1
    now = time.monotonic()
    assert pool.release_idle({"batch"}, now + 3600) == []  # its lane has work: kept
    assert pool.release_idle(set(), now + 30) == []  # idle, but not for long enough
    # (the busy check restarted its clock at now + 3600)
    assert pool.release_idle(set(), now + 3600 + 61) == [("clip", "cpu")]
    assert released and pool.status()[0]["state"] == "unloaded"


def test_changes_since_reports_overflow_instead_of_a_million_ids(tmp_path: Path) -> None:
    lib = library_with(tmp_path / "lib", Recorder())
    seq = lib.seq()
    add_items(lib, 30)
    changes = lib.changes_since(seq, limit=10)
    assert changes.overflow and changes.item_ids == []
    assert lib.changes_since(seq).item_ids == list(range(1, 31))
    assert os.environ.get("SHOEBOX_FAULT_KILL_AT_JOB") is None


def test_a_new_stage_is_indexed_and_skips_items_whose_requirement_failed(tmp_path: Path) -> None:
    def preview(item: ItemRef, ctx: StageContext) -> None:
        if item.id == 2:
            raise PermanentError("The file is damaged.")

    lib = library_with(tmp_path / "lib", Recorder("preview", body=preview))
    add_items(lib, 3)
    run_until_idle(lib)
    lib.close()
    # A later release adds a stage that needs the preview: the library is indexed for it.
    embed = Recorder("embed", requires=("preview",))
    lib = library_with(tmp_path / "lib", Recorder("preview", body=preview), embed)
    host = run_until_idle(lib)
    assert len(host.stats.reindex_started) == 1
    rows = dict(lib.catalog.read("SELECT item_id, state FROM jobs WHERE stage = 'embed'"))
    assert rows == {1: "done", 2: "skipped", 3: "done"}  # 2 would have waited forever
    assert sorted(embed.ran) == [1, 3]
