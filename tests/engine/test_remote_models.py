"""Model stages on remote workers (engine/remote/codec.py): batches travel as one
message with their previews, a worker that cannot see the library still helps, the
original travels when the worker cannot read it, and a worker without the model or the
lane leaves the work to the owner. In one process (real `RemoteWorker`s on their own
registries) over the session's loopback redis-server."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.config import DEFAULT_TEXT_MODEL, Settings
from engine.jobs import host as host_module
from engine.jobs import ledger
from engine.jobs.host import WorkerHost
from engine.library import Library
from engine.pipeline.embed import EmbedOutput, EmbedStage
from engine.pipeline.metadata import MetadataStage
from engine.pipeline.ocr import OcrStage
from engine.pipeline.registry import StageRegistry
from engine.pipeline.text_embed import TextEmbedStage
from engine.pipeline.thumbnail import PREVIEW_PX, ThumbnailStage, thumb_relpath
from engine.pipeline.types import StageContext
from engine.remote import enrol
from engine.remote.signing import WorkerToken
from engine.remote.worker import RemoteWorker
from models import weights
from tests.doccorpus import render_page, write_text_pdf
from tests.engine.helpers import jpeg
from tests.engine.jobstages import add_items, fast_settings, library_with, run_until_idle, states
from tests.engine.remote_stages import Crunch
from tests.models.tiny import make_tiny_open_clip
from tests.redis_server import RedisServer

TINY = "open_clip:tiny-test:local"
NOWHERE = "/nonexistent-on-this-worker"


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_open_clip(tmp_path_factory.mktemp("tiny") / "tiny-test")


@pytest.fixture(autouse=True)
def broker(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    monkeypatch.setenv("SHOEBOX_BROKER", redis_server.url)
    monkeypatch.setenv("SHOEBOX_MODELS_DIR", str(tmp_path / "models"))
    yield redis_server.url


class Recorder:
    """What a stage ran, in which process: batch sizes, items."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.lock = threading.Lock()

    def note(self, n: int) -> None:
        with self.lock:
            self.batches.append(n)


def recording(cls: type, recorder: Recorder) -> type:
    class Recording(cls):  # type: ignore[misc]
        def run_batch(self, inputs: Sequence[Any], ctx: StageContext) -> list[Any]:
            recorder.note(len(inputs))
            out: list[Any] = super().run_batch(inputs, ctx)
            return out

    Recording.__name__ = cls.__name__
    return Recording


def settings_for(**models: Any) -> Settings:
    settings = Settings()
    settings.device = "cpu"
    for key, value in models.items():
        setattr(settings.models, key, value)
    return settings


def owner_library(path: Path, settings: Settings, *stages: Any) -> Library:
    lib = library_with(path, *stages)
    lib.settings.device = settings.device
    lib.settings.models = settings.models  # what the workers are told to run
    lib.settings.workers.pool = 1
    fast_settings(lib)
    return lib


def enrol_worker(lib: Library, name: str) -> WorkerToken:
    with lib.catalog.write() as conn:
        return enrol.add_worker(conn, name)


def start_worker(url: str, token: WorkerToken, factory: Any, **kw: Any) -> RemoteWorker:
    worker = RemoteWorker(url, token, registry_factory=factory, device="cpu", **kw)
    worker.start()
    return worker


def wait_for(check: Any, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_embed_batches_travel_as_one_message_with_their_previews(
    tmp_path: Path, broker: str, tiny_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(embed=TINY, embed_batch=8)
    local, remote = Recorder(), Recorder()
    lib = owner_library(
        tmp_path / "lib",
        settings,
        MetadataStage(),
        ThumbnailStage(),
        recording(EmbedStage, local)(settings),
    )
    src = tmp_path / "in"
    for i in range(12):
        jpeg(src / f"p{i:02d}.jpg", seed=i)
    lib.import_paths([src])
    # 1. The owner makes the previews; embedding waits: no weights yet.
    run_until_idle(lib, timeout=60)
    assert states(lib, "embed") == {"waiting": 12}
    # 2. A worker that cannot see the photos (its map leads nowhere) does every vector,
    # in batches of the stage's size, from the previews sent with the jobs.
    monkeypatch.setattr(host_module, "WAKE_CHECK_S", 3600.0)  # woken below, all at once
    token = enrol_worker(lib, "gpu-box")
    worker = start_worker(
        broker,
        token,
        lambda s: StageRegistry(
            [MetadataStage(), ThumbnailStage(), recording(EmbedStage, remote)(s)], []
        ),
        path_map=[(str(src), NOWHERE)],
    )
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        wait_for(lambda: host.remote.live_slots(time.time()) >= 1, "no heartbeat")
        weights.import_weights(tiny_folder, TINY)
        with lib.catalog.write() as conn:
            assert ledger.wake(conn, lib.registry, "embed") == 12
        host._feed_wake.set()
        host.wait_idle(timeout=120)
    finally:
        host.stop()
        worker.stop()
    assert states(lib, "embed") == {"done": 12}
    assert local.batches == []
    assert sorted(remote.batches) == [4, 8]  # two messages: 8 jobs, then the other 4
    assert worker.stats.done == 12 and worker.stats.refused == 0
    assert not any(worker.scratch.iterdir())  # the previews sent were removed after use
    # The vectors are the ones the owner would have computed.
    stage = EmbedStage(settings)
    ctx = StageContext(lib.root)
    rows = lib.catalog.read(
        "SELECT v.item_id, v.vector, i.hash FROM vectors v JOIN items i ON i.id = v.item_id"
    )
    assert len(rows) == 12
    for item_id, blob, content_hash in rows:
        assert (lib.root / thumb_relpath(content_hash, PREVIEW_PX)).is_file()
        [ref] = [r for r in _item_refs(lib) if r.id == item_id]
        [expected] = stage.run_batch([stage.prepare(ref, ctx)], ctx)
        assert isinstance(expected, EmbedOutput) and expected.vector is not None
        got = np.frombuffer(blob, dtype="<f2").astype(np.float32)
        assert float(np.abs(got - expected.vector).max()) < 2e-3
    lib.close()


def _item_refs(lib: Library) -> list[Any]:
    from engine.jobs.host import load_item_refs

    ids = [r[0] for r in lib.catalog.read("SELECT id FROM items")]
    return list(load_item_refs(lib.catalog, ids).values())


INVOICE = ["ACME Tools Ltd", "INVOICE 4711", "Total due: 202.50 GBP", "Payment within 30 days."]


def test_a_worker_that_cannot_read_documents_gets_them_sent_and_reads_them(
    tmp_path: Path, broker: str
) -> None:
    """OCR reads originals: through the path map when it leads somewhere, else the owner
    sends the file; the passages are embedded there too, from the page text sent."""
    settings = settings_for(text=DEFAULT_TEXT_MODEL)  # MiniLM, from its wheel
    local_ocr, remote_ocr, remote_text = Recorder(), Recorder(), Recorder()
    lib = owner_library(
        tmp_path / "lib",
        settings,
        MetadataStage(),
        ThumbnailStage(),
        recording(OcrStage, local_ocr)(settings),
        TextEmbedStage(settings),
    )
    token = enrol_worker(lib, "reader")

    def registry(s: Settings) -> StageRegistry:
        return StageRegistry(
            [
                MetadataStage(),
                ThumbnailStage(),
                recording(OcrStage, remote_ocr)(s),
                recording(TextEmbedStage, remote_text)(s),
            ],
            [],
        )

    src = tmp_path / "in"
    src.mkdir()
    render_page(INVOICE, font="serif", size_pt=12).save(src / "scan.png", dpi=(300, 300))
    write_text_pdf(src / "letter.pdf", [["Dear Jane,", "your parcel left Leeds today."]])
    worker = start_worker(broker, token, registry, path_map=[(str(src), NOWHERE)])
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        wait_for(lambda: host.remote.live_slots(time.time()) >= 1, "no heartbeat")
        lib.import_paths([src])
        host._feed_wake.set()
        host.wait_idle(timeout=180)
    finally:
        host.stop()
        worker.stop()
    assert states(lib, "ocr") == {"done": 2} and states(lib, "text_embed") == {"done": 2}
    assert local_ocr.batches == [] and sum(remote_ocr.batches) == 2
    assert worker.stats.refused == 2  # each original refused once, then sent with its job
    assert sum(remote_text.batches) == 2
    text = " ".join(r[0] for r in lib.catalog.read("SELECT text FROM ocr_pages"))
    assert "INVOICE 4711" in text and "parcel" in text
    [(n, dim)] = lib.catalog.read("SELECT count(*), max(dim) FROM text_vectors")
    assert n >= 2 and dim == 384
    assert os.path.exists(src / "scan.png")  # the original is where it was
    lib.close()


class NoModelHere(Crunch):
    def availability(self) -> str | None:
        return "its model is not on this machine"


def test_a_worker_without_the_model_refuses_and_the_owner_stops_sending_it(
    tmp_path: Path, broker: str
) -> None:
    local = Crunch(rounds=500)
    lib = owner_library(tmp_path / "lib", Settings(), local)
    token = enrol_worker(lib, "bare")
    remote = NoModelHere(rounds=500)
    worker = start_worker(broker, token, lambda s: StageRegistry([remote], []))
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        wait_for(lambda: host.remote.live_slots(time.time()) >= 1, "no heartbeat")
        assert host.remote.takes("import", time.time()) == {"crunch"}
        add_items(lib, 30)
        host._feed_wake.set()
        host.wait_idle(timeout=60)
        # its next heartbeat says so, and the owner keeps the stage to itself
        wait_for(lambda: "crunch" not in host.remote.takes("import", time.time()), "still sent")
    finally:
        host.stop()
        worker.stop()
    assert states(lib) == {"done": 30}
    assert remote.ran == [] and sorted(local.ran) == list(range(1, 31))
    assert 1 <= worker.stats.refused <= 30


def test_a_worker_serves_only_its_lanes(tmp_path: Path, broker: str) -> None:
    local = Crunch(rounds=500)
    lib = owner_library(tmp_path / "lib", Settings(), local)
    token = enrol_worker(lib, "batch-only")
    remote = Crunch(rounds=500)
    worker = start_worker(broker, token, lambda s: StageRegistry([remote], []), lanes=("batch",))
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        wait_for(lambda: host.remote.live_slots(time.time()) >= 1, "no heartbeat")
        assert host.remote.takes("import", time.time()) == set()
        assert host.remote.takes("batch", time.time()) == {"crunch"}
        assert host.remote.takes("interactive", time.time()) == set()
        add_items(lib, 20)  # import-lane jobs: not this worker's
        host._feed_wake.set()
        host.wait_idle(timeout=60)
    finally:
        host.stop()
        worker.stop()
    assert states(lib) == {"done": 20}
    assert remote.ran == [] and len(local.ran) == 20
