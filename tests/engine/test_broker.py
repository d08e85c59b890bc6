"""The job queue on Redis (engine/jobs/broker.py): what differs from the embedded queue.

The rest of the queue suite runs on both brokers (`queue_backend`); here: the queue is
really on the server, an unreachable server is said plainly, and a server that
restarts mid-run (losing every message it held) costs no job and runs none twice."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from engine.jobs.broker import (
    BrokerUnavailable,
    broker_ok,
    effective_broker,
    make_huey,
    redacted,
)
from engine.jobs.host import WorkerHost
from engine.pipeline.types import ItemRef, StageContext
from tests.engine.jobstages import Recorder, add_items, library_with, states
from tests.redis_server import RedisServer


def test_broker_urls() -> None:
    assert broker_ok("") and broker_ok("redis://nas:6379/0") and broker_ok("rediss://h/1")
    assert not broker_ok("http://nas") and not broker_ok("nas:6379")
    assert redacted("redis://shoebox:s3cret@nas:6379/0") == "redis://shoebox:***@nas:6379/0"
    assert "s3cret" not in redacted("rediss://:s3cret@nas/0")
    assert redacted("") == "embedded (queue.db)"


def test_the_override_wins_then_the_environment_then_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SHOEBOX_BROKER", raising=False)
    assert effective_broker("redis://a/0") == "redis://a/0"
    monkeypatch.setenv("SHOEBOX_BROKER", "redis://b/0")
    assert effective_broker("redis://a/0") == "redis://b/0"
    assert effective_broker("redis://a/0", "redis://c/0") == "redis://c/0"


def test_the_queue_is_on_the_server_not_beside_the_catalog(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOEBOX_BROKER", redis_server.url)
    gate = threading.Event()
    stage = Recorder(body=lambda item, ctx: (gate.wait(10), None)[1])
    lib = library_with(tmp_path / "lib", stage)
    lib.settings.workers.pool = 1
    add_items(lib, 30)
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        time.sleep(0.3)  # the feeder fills the queue while the one worker waits
        pending = host.queue_messages()
        assert pending["pool"] > 0  # read from Redis
        gate.set()
        host.wait_idle(timeout=30)
    finally:
        gate.set()
        host.stop()
    assert not (lib.root / "queue.db").exists()
    assert states(lib) == {"done": 30}
    assert sorted(stage.ran) == list(range(1, 31))


def test_an_unreachable_broker_is_said_at_start(tmp_path: Path) -> None:
    lib = library_with(tmp_path / "lib", Recorder())
    host = WorkerHost(
        lib.root, lib.catalog, lib.registry, lib.settings, broker="redis://127.0.0.1:1/0"
    )
    with pytest.raises(BrokerUnavailable, match=r"cannot reach .* redis://127\.0\.0\.1:1/0"):
        host.start()
    host.stop()


def test_a_broker_restart_mid_run_loses_no_job_and_runs_none_twice(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOEBOX_BROKER", redis_server.url)
    done = threading.Event()
    count = [0]

    def slow(item: ItemRef, ctx: StageContext) -> None:
        time.sleep(0.01)
        count[0] += 1
        if count[0] == 60:
            done.set()

    stage = Recorder(body=slow)
    lib = library_with(tmp_path / "lib", stage)
    lib.settings.workers.pool = 2
    add_items(lib, 300)
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        assert done.wait(30), "the first 60 jobs did not run"
        before = host.stats.messages
        redis_server.restart()  # everything the server held is gone
        host.wait_idle(timeout=120)
    finally:
        host.stop()
    assert host.stats.broker_restarts == 1
    assert host.stats.messages > before
    assert states(lib) == {"done": 300}
    runs = Counter(stage.ran)
    assert sorted(runs) == list(range(1, 301))  # none lost
    assert max(runs.values()) == 1  # none twice


def test_make_huey_names_redis_queues_after_the_library(redis_server: RedisServer) -> None:
    a = make_huey("pool", Path("/unused"), redis_server.url, "lib_a")
    b = make_huey("pool", Path("/unused"), redis_server.url, "lib_b")
    a.flush()
    b.flush()
    a.storage.enqueue(b"x", priority=1)
    assert (a.pending_count(), b.pending_count()) == (1, 0)
    a.flush()
