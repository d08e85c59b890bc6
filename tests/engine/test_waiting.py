"""Jobs whose model is missing wait — no attempt, no failure, nothing else stops —
and run when the model appears, without re-importing anything."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from engine.errors import WaitingError
from engine.jobs import ledger
from engine.jobs.host import WorkerHost
from engine.pipeline.types import ItemRef, StageContext, StageOutput, upsert_result
from tests.engine.jobstages import (
    Recorder,
    add_items,
    fast_settings,
    library_with,
    new_session,
    run_until_idle,
    states,
    wait_for,
)


@pytest.fixture(autouse=True)
def quick_wake_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("engine.jobs.host.WAKE_CHECK_S", 0.1)


REASON = "Model Tiny (x) is not available offline: run `shoebox models import FILE --as x`"


class NeedsModel:
    """A batched stage whose model is here only once `present` is set."""

    name = "embed"
    version = "1"
    lane = "import"
    kinds = frozenset({"photo", "document"})
    requires: tuple[str, ...] = ()
    batch_size = 4
    reads_original = False
    timeout_s: float | None = None

    def __init__(self) -> None:
        self.present = threading.Event()
        self.prepared = 0
        self.checks = 0

    def availability(self) -> str | None:
        self.checks += 1
        return None if self.present.is_set() else REASON

    def prepare(self, item: ItemRef, ctx: StageContext) -> int:
        self.prepared += 1
        if not self.present.is_set():
            raise WaitingError(REASON)
        return item.id

    def run_batch(self, inputs: Sequence[int], ctx: StageContext) -> list[Any]:
        return [StageOutput(data={"item": i}) for i in inputs]

    def store_many(
        self, conn: Any, results: Sequence[tuple[ItemRef, StageOutput]], seq: int
    ) -> None:
        for item, output in results:
            upsert_result(conn, item.id, self.name, self.version, output.data)


def test_missing_model_jobs_wait_and_run_when_it_appears(tmp_path: Path) -> None:
    model = NeedsModel()
    lib = library_with(
        tmp_path / "lib",
        Recorder("metadata"),
        model,
        Recorder("tags", requires=("embed",)),
    )
    fast_settings(lib)
    session = new_session(lib)
    add_items(lib, 20, session_id=session)

    run_until_idle(lib, timeout=20)  # must come back: waiting jobs are not work to do
    assert states(lib, "metadata") == {"done": 20}
    assert states(lib, "embed") == {"waiting": 20}
    assert states(lib, "tags") == {"waiting": 20}
    rows = lib.catalog.read("SELECT attempts, error FROM jobs WHERE stage = 'embed'")
    assert {r[0] for r in rows} == {0}, "waiting costs no attempt"
    assert {r[1] for r in rows} == {REASON}
    # Parking a stage parks its queued jobs at once: only a first batch was tried.
    assert model.prepared <= 2 * model.batch_size
    waiting = ledger.waiting_stages(lib.catalog.conn)
    assert waiting["embed"] == (20, REASON)
    assert lib.progress()["waiting"] == 40
    assert not lib.has_pending_work(session)

    # The model arrives while a host runs: the waiting jobs run, nothing re-imported.
    items_before = lib.catalog.read("SELECT count(*) FROM items")[0][0]
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        model.present.set()
        wait_for(lambda: states(lib, "tags") == {"done": 20}, timeout=20, what="tags done")
    finally:
        host.stop()
    assert states(lib, "embed") == {"done": 20}
    assert lib.catalog.read("SELECT count(*) FROM items")[0][0] == items_before
    assert {r[0] for r in lib.catalog.read("SELECT attempts FROM jobs WHERE stage = 'embed'")} == {
        1
    }
    lib.close()


def test_new_jobs_of_a_waiting_stage_wait_without_being_claimed(tmp_path: Path) -> None:
    model = NeedsModel()
    lib = library_with(tmp_path / "lib", model)
    fast_settings(lib)
    add_items(lib, 8)
    run_until_idle(lib, timeout=20)
    assert states(lib) == {"waiting": 8}
    tried = model.prepared
    add_items(lib, 8)  # a later import while the model is still missing
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        host.housekeeping(force=True)  # the wake check parks them with the others
        assert states(lib) == {"waiting": 16}
    finally:
        host.stop()
    assert model.prepared == tried, "no job of a stage known to be waiting was claimed"
    lib.close()


def test_cancelling_an_import_cancels_its_waiting_jobs(tmp_path: Path) -> None:
    model = NeedsModel()
    lib = library_with(tmp_path / "lib", model)
    fast_settings(lib)
    session = new_session(lib)
    add_items(lib, 5, session_id=session)
    run_until_idle(lib, timeout=20)
    assert states(lib) == {"waiting": 5}
    assert lib.cancel_session(session) == 5
    assert states(lib) == {"cancelled": 5}
