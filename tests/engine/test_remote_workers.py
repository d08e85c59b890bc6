"""Remote workers on Redis (engine/remote): the owner dispatches, workers compute, the
owner alone writes the catalog. In one process here (the workers are the real
`RemoteWorker`, on their own registries); tests/reliability has them as processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import Settings
from engine.jobs.host import WorkerHost
from engine.library import Library
from engine.pipeline.registry import StageRegistry
from engine.remote import enrol
from engine.remote import protocol as P
from engine.remote.signing import WorkerToken, new_key, sign
from engine.remote.worker import RemoteWorker
from tests.conftest import REPO, cli_env
from tests.engine.jobstages import add_items, library_with, states
from tests.engine.remote_stages import Crunch
from tests.redis_server import RedisServer


@pytest.fixture
def owner_lib(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Library, Crunch]]:
    monkeypatch.setenv("SHOEBOX_BROKER", redis_server.url)
    stage = Crunch(rounds=2000)
    lib = library_with(tmp_path / "lib", stage)
    lib.settings.workers.pool = 1
    yield lib, stage
    lib.close()


def enrol_worker(lib: Library, name: str) -> WorkerToken:
    with lib.catalog.write() as conn:
        return enrol.add_worker(conn, name)


def start_worker(url: str, token: WorkerToken, slots: int = 1) -> tuple[RemoteWorker, Crunch]:
    stage = Crunch(rounds=2000)
    worker = RemoteWorker(
        url, token, slots=slots, registry_factory=lambda s: StageRegistry([stage], [])
    )
    worker.start()
    return worker, stage


def wait_live(host: WorkerHost, n: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while host.remote.live_slots(time.time()) < n:
        assert time.monotonic() < deadline, "the workers' heartbeats did not arrive"
        time.sleep(0.02)


def test_two_workers_do_the_work_and_the_owner_writes_it_once(
    owner_lib: tuple[Library, Crunch], redis_server: RedisServer
) -> None:
    lib, local_stage = owner_lib
    tokens = [enrol_worker(lib, "a"), enrol_worker(lib, "b")]
    workers = [start_worker(redis_server.url, t) for t in tokens]
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        wait_live(host, 2)
        add_items(lib, 120)  # with both live: the crunching is theirs
        host.wait_idle(timeout=120)
    finally:
        host.stop()
        for w, _ in workers:
            w.stop()
    assert states(lib) == {"done": 120}
    runs = Counter(local_stage.ran)
    for _, stage in workers:
        runs.update(stage.ran)
    assert sorted(runs) == list(range(1, 121)) and max(runs.values()) == 1
    remote = sum(len(stage.ran) for _, stage in workers)
    assert remote == 120 and local_stage.ran == []  # the workers did all of it
    assert all(len(stage.ran) > 0 for _, stage in workers)
    rows = lib.catalog.read("SELECT count(*) FROM results WHERE stage = 'crunch'")
    assert rows[0][0] == 120
    done = {r[0]: r[1] for r in lib.catalog.read("SELECT name, jobs_done FROM workers")}
    assert done["a"] + done["b"] == remote


def test_forged_replayed_and_revoked_messages_run_nothing_and_write_nothing(
    owner_lib: tuple[Library, Crunch], redis_server: RedisServer
) -> None:
    lib, _ = owner_lib
    token = enrol_worker(lib, "a")
    revoked = enrol_worker(lib, "gone")
    with lib.catalog.write() as conn:
        enrol.remove_worker(conn, "gone")
    worker, stage = start_worker(redis_server.url, token)
    compute = P.remote_huey(redis_server.url, token.library_id, P.compute_queue("import"))
    send_job = compute.task(name=P.JOB_TASK)(P.task_function(lambda m: None))
    add_items(lib, 1)
    body = {
        "lib": token.library_id, "stage": "crunch", "version": "1", "lane": "import",
        "settings": Settings().to_toml_dict(), "lease_s": 30,
        "jobs": [{"job": 1, "token": 99, "attempt": 1, "files": {}, "payload": {},
                  "item": {"id": 1, "hash": "h00000001", "kind": "photo", "format": "jpeg",
                           "size": 1, "paths": ["/nowhere/x.jpg"]}}],
    }  # fmt: skip
    try:
        send_job(sign(new_key(), "job", body, token=99).decode())  # a key it does not know
        forged = sign(token.dispatch, "job", body, token=99).decode()
        send_job(forged.replace('"token":99', '"token":98', 1))  # changed after signing
        good = sign(token.dispatch, "job", body, token=99).decode()
        send_job(good)
        send_job(good)  # replayed
        deadline = time.monotonic() + 10
        while worker.stats.rejected < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        assert worker.stats.rejected == 3
        assert stage.ran == [1]  # only the genuine one ran, once
    finally:
        worker.stop()
    # The owner: a result from the revoked worker, and a forged one, write nothing.
    # (What the stopped worker sent is dropped first: its heartbeats would count it live.)
    P.remote_huey(redis_server.url, token.library_id, "ingest").flush()
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    lib.settings.workers.pool = 1
    host.start()
    try:
        ingest = P.remote_huey(redis_server.url, token.library_id, "ingest")
        send = ingest.task(name=P.INGEST_TASK)(P.task_function(lambda m: None))
        forged = {"job": 1, "token": 1, "ok": True, "output": {"data": {"digest": "forged"}}}
        result = {"lib": token.library_id, "results": [forged]}
        send(sign(revoked.worker, "result", {**result, "worker": "gone"}).decode())
        send(sign(token.worker, "result", {**result, "worker": "gone"}).decode())  # not its name
        impostor = type(token.worker)(token.worker.key_id, b"x" * 32, name="a")
        send(sign(impostor, "result", {**result, "worker": "a"}).decode())
        deadline = time.monotonic() + 10
        while sum(host.remote.rejected.values()) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert host.remote.rejected == {"revoked key": 1, "forged": 2}
        host.wait_idle(timeout=60)
    finally:
        host.stop()
    digests = [r[0] for r in lib.catalog.read("SELECT data FROM results WHERE stage = 'crunch'")]
    assert all("forged" not in d for d in digests)


def worker_process(url: str, token: WorkerToken, lease_s: float) -> subprocess.Popen[bytes]:
    env = cli_env()
    env.update(
        SHOEBOX_EXTRA_STAGES="tests.engine.remote_stages:stages",
        SHOEBOX_CRUNCH_ROUNDS="20000",
        SHOEBOX_REMOTE_LEASE_S=str(lease_s),
        SHOEBOX_WORKER_TOKEN=token.encode(),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "--broker", url, "worker", "--workers", "1"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_a_worker_killed_mid_job_loses_its_jobs_to_the_other_after_its_lease(
    owner_lib: tuple[Library, Crunch], redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Owner (here) + two worker processes; one SIGKILLed while it holds jobs."""
    lib, _ = owner_lib
    lease = 3.0
    monkeypatch.setattr(P, "LEASE_S", lease)
    a, b = enrol_worker(lib, "a"), enrol_worker(lib, "b")
    procs = [worker_process(redis_server.url, t, lease) for t in (a, b)]
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    try:
        host.start()
        wait_live(host, 2, timeout=60)
        add_items(lib, 80)  # now: with workers live, the crunching is theirs
        deadline = time.monotonic() + 60
        held = 0
        while held == 0:
            assert time.monotonic() < deadline, "worker a never held a job"
            held = lib.catalog.read(
                "SELECT count(*) FROM jobs WHERE state = 'running' AND owner = 'remote:a'"
            )[0][0]
            time.sleep(0.005)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)
        host.wait_idle(timeout=120)
    finally:
        host.stop()
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(20)
    assert held > 0
    assert states(lib) == {"done": 80}
    assert lib.catalog.read("SELECT count(*) FROM results WHERE stage = 'crunch'")[0][0] == 80
    rerun = lib.catalog.read("SELECT count(*) FROM jobs WHERE attempts >= 2")[0][0]
    assert rerun >= 1  # what a held ran again elsewhere, its first attempt counted
    jobs_done = dict(lib.catalog.read("SELECT name, jobs_done FROM workers"))
    assert jobs_done["b"] > 0
    assert procs[1].returncode == 0  # stopped gracefully on SIGTERM


def test_a_broker_restart_mid_run_with_remote_workers_still_completes(
    owner_lib: tuple[Library, Crunch], redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Everything the server held (jobs for the workers, their results) is lost: the
    leases run out and the jobs run again; nothing is lost, no result is written twice."""
    lib, _ = owner_lib
    lease = 3.0
    monkeypatch.setattr(P, "LEASE_S", lease)
    tokens = [enrol_worker(lib, "a"), enrol_worker(lib, "b")]
    procs = [worker_process(redis_server.url, t, lease) for t in tokens]
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    try:
        host.start()
        wait_live(host, 2, timeout=60)
        add_items(lib, 80)
        deadline = time.monotonic() + 60
        while lib.catalog.read("SELECT count(*) FROM jobs WHERE state = 'done'")[0][0] < 20:
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.01)
        redis_server.restart()
        host.wait_idle(timeout=180)
    finally:
        host.stop()
        for proc in procs:
            proc.terminate()
            proc.wait(20)
    assert states(lib) == {"done": 80}
    assert lib.catalog.read("SELECT count(*) FROM results WHERE stage = 'crunch'")[0][0] == 80
    assert [p.returncode for p in procs] == [0, 0]  # they rode out the restart


def test_an_import_completes_with_its_heavy_stage_on_two_worker_processes(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real import (files, metadata and thumbnails on the owner); the CPU-bound stage
    on the workers, whose results carry their process ids."""
    import json
    import os

    from engine.pipeline.registry import default_registry
    from tests.corpus import write_jpeg

    monkeypatch.setenv("SHOEBOX_BROKER", redis_server.url)
    folder = tmp_path / "photos"
    for i in range(12):
        write_jpeg(folder / f"p{i:02d}.jpg", (320, 240), seed=i)
    registry = StageRegistry([*default_registry().stages(), Crunch(rounds=2000)], [])
    lib = Library(tmp_path / "lib", registry=registry)
    lib.settings.workers.pool = 1
    tokens = [enrol_worker(lib, "a"), enrol_worker(lib, "b")]
    procs = [worker_process(redis_server.url, t, 30.0) for t in tokens]
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    try:
        host.start()
        wait_live(host, 2, timeout=60)
        lib.import_paths([folder])
        host.wait_idle(timeout=120)
    finally:
        host.stop()
        for proc in procs:
            proc.terminate()
            proc.wait(20)
        lib.close()
    lib = Library(tmp_path / "lib", registry=registry)
    try:
        assert states(lib) == {"done": 36}  # metadata, thumbnail, crunch for 12 files
        pids = {
            json.loads(r[0])["pid"]
            for r in lib.catalog.read("SELECT data FROM results WHERE stage = 'crunch'")
        }
        assert os.getpid() not in pids and pids <= {p.pid for p in procs}
    finally:
        lib.close()
