"""The `embed` stage through the real worker host, with the tiny random OpenCLIP model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from engine.config import Settings
from engine.errors import PermanentError
from engine.jobs.host import WorkerHost
from engine.library import Library
from engine.pipeline.embed import MISSING_PREVIEW, EmbedStage
from engine.pipeline.metadata import MetadataStage
from engine.pipeline.thumbnail import PREVIEW_PX, ThumbnailStage, thumb_relpath
from engine.pipeline.types import ItemRef, StageContext
from models import weights
from tests.conftest import REPO, cli_env
from tests.engine.helpers import jpeg
from tests.engine.jobstages import fast_settings, library_with, run_until_idle, states, wait_for
from tests.models.tiny import TINY_DIM, make_tiny_open_clip

TINY = "open_clip:tiny-test:local"


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_open_clip(tmp_path_factory.mktemp("tiny") / "tiny-test")


@pytest.fixture(autouse=True)
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "models"
    monkeypatch.setenv("SHOEBOX_MODELS_DIR", str(folder))
    monkeypatch.setattr("engine.jobs.host.WAKE_CHECK_S", 0.1)
    return folder


def embed_settings(batch: int = 8) -> Settings:
    settings = Settings()
    settings.models.embed = TINY
    settings.models.embed_batch = batch
    settings.device = "cpu"
    return settings


def embed_library(path: Path, batch: int = 8) -> tuple[Library, EmbedStage]:
    stage = EmbedStage(embed_settings(batch))
    lib = library_with(path, MetadataStage(), ThumbnailStage(), stage)
    fast_settings(lib)
    return lib, stage


def photos(folder: Path, n: int) -> list[Path]:
    return [jpeg(folder / f"p{i:02d}.jpg", seed=i) for i in range(n)]


def test_every_item_gets_a_vector_with_its_model_and_digest(
    tmp_path: Path, tiny_folder: Path
) -> None:
    imported = weights.import_weights(tiny_folder, TINY)
    lib, stage = embed_library(tmp_path / "lib")
    photos(tmp_path / "in", 12)
    lib.import_paths([tmp_path / "in"])
    run_until_idle(lib)
    assert states(lib, "embed") == {"done": 12}
    rows = lib.catalog.read("SELECT item_id, model, dim, vector, digest FROM vectors")
    assert len(rows) == 12
    for _, model, dim, blob, digest in rows:
        assert (model, dim, digest) == (TINY, TINY_DIM, imported.digest)
        vector = np.frombuffer(blob, dtype="<f2").astype(np.float32)
        assert vector.shape == (TINY_DIM,)
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-2
    results = lib.catalog.read("SELECT data, version FROM results WHERE stage = 'embed'")
    assert len(results) == 12
    for data, version in results:
        assert json.loads(data) == {"model": TINY, "digest": imported.digest, "dim": TINY_DIM}
        assert version == f"1+{TINY}" == stage.version
    # The fast (DCT-scaled) decode of the preview gives the vector a full decode gives.
    item_id, item_hash = lib.catalog.read("SELECT id, hash FROM items ORDER BY id LIMIT 1")[0]
    model = stage.holder.instance()
    with Image.open(lib.root / thumb_relpath(item_hash, PREVIEW_PX)) as img:
        full = model.embed_images(model.preprocess(img.convert("RGB"))[None])[0]
    [(blob,)] = lib.catalog.read("SELECT vector FROM vectors WHERE item_id = ?", (item_id,))
    stored = np.frombuffer(blob, dtype="<f2").astype(np.float32)
    assert float(stored @ full) > 0.98
    lib.close()


def test_an_input_that_breaks_the_batch_fails_alone(tmp_path: Path, tiny_folder: Path) -> None:
    weights.import_weights(tiny_folder, TINY)
    lib, stage = embed_library(tmp_path / "lib")
    photos(tmp_path / "in", 8)
    Image.new("RGB", (320, 240), (40, 90, 200)).save(tmp_path / "in" / "flat.jpg", quality=90)
    model = stage.holder.instance()
    real = model.embed_images
    calls: list[int] = []

    def chokes_on_flat_images(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        flat = np.ptp(batch.reshape(len(batch), 3, -1), axis=2).max(axis=1) < 0.1
        if flat.any():  # the flat image is in this batch
            raise RuntimeError("the model choked on this batch")
        return real(batch)

    model.embed_images = chokes_on_flat_images  # type: ignore[method-assign]
    lib.import_paths([tmp_path / "in"])
    run_until_idle(lib)
    rows = lib.catalog.read(
        """SELECT p.raw, j.state, j.error FROM jobs j JOIN paths p ON p.item_id = j.item_id
           WHERE j.stage = 'embed'"""
    )
    by_name = {Path(bytes(raw).decode()).name: (state, error) for raw, state, error in rows}
    flat_state, flat_error = by_name.pop("flat.jpg")
    assert flat_state == "dead" and "choked" in flat_error
    assert {state for state, _ in by_name.values()} == {"done"} and len(by_name) == 8
    assert lib.catalog.read("SELECT count(*) FROM vectors")[0][0] == 8
    # How the embed jobs group into batches depends on when their thumbnails finish
    # (one at a time on a busy machine); bisection itself is proved deterministically
    # by the job-core tests. What must hold here: only the bad input failed.
    assert calls
    lib.close()


def test_without_weights_the_jobs_wait_then_run_once_imported(
    tmp_path: Path, tiny_folder: Path
) -> None:
    lib, _ = embed_library(tmp_path / "lib")
    photos(tmp_path / "in", 5)
    lib.import_paths([tmp_path / "in"])
    run_until_idle(lib)
    assert states(lib, "thumbnail") == {"done": 5}
    assert states(lib, "embed") == {"waiting": 5}
    errors = {r[0] for r in lib.catalog.read("SELECT error FROM jobs WHERE stage = 'embed'")}
    assert len(errors) == 1 and "shoebox models import" in errors.pop()
    assert lib.catalog.read("SELECT sum(attempts) FROM jobs WHERE stage = 'embed'")[0][0] == 0
    lib.close()
    weights.import_weights(tiny_folder, TINY)  # the model arrives while a host runs
    lib, _ = embed_library(tmp_path / "lib")
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        wait_for(lambda: states(lib, "embed") == {"done": 5}, timeout=20, what="embed done")
    finally:
        host.stop()
    assert lib.catalog.read("SELECT count(*) FROM vectors")[0][0] == 5
    lib.close()


def test_a_missing_preview_fails_the_item_with_the_action(
    tmp_path: Path, tiny_folder: Path
) -> None:
    weights.import_weights(tiny_folder, TINY)
    stage = EmbedStage(embed_settings())
    item = ItemRef(id=1, hash="ab" * 32, kind="photo", format="jpeg", size=1, paths=())
    with pytest.raises(PermanentError) as caught:
        stage.prepare(item, StageContext(tmp_path))
    assert str(caught.value) == MISSING_PREVIEW
    preview = tmp_path / thumb_relpath(item.hash, PREVIEW_PX)
    preview.parent.mkdir(parents=True)
    preview.write_bytes(b"\xff\xd8\xff\xe0 this is not a whole JPEG")
    with pytest.raises(PermanentError, match="retry the item's thumbnail"):
        stage.prepare(item, StageContext(tmp_path))


def test_batch_size_and_version_follow_the_settings() -> None:
    stage = EmbedStage(embed_settings(batch=0))
    assert stage.version == f"1+{TINY}"
    assert stage.batch_size == 32  # the CPU default
    assert EmbedStage(embed_settings(batch=5)).batch_size == 5
    with pytest.raises(ValueError):
        EmbedStage(Settings(), spec="")


def test_the_registry_is_built_without_importing_torch() -> None:
    code = (
        "import sys\n"
        "from engine.config import Settings\n"
        "from engine.pipeline.embed import EmbedStage\n"
        "from engine.pipeline.metadata import MetadataStage\n"
        "from engine.pipeline.registry import StageRegistry\n"
        "from engine.pipeline.thumbnail import ThumbnailStage\n"
        "s = Settings()\n"
        f"s.models.embed = {TINY!r}\n"
        "r = StageRegistry([MetadataStage(), ThumbnailStage(), EmbedStage(s)])\n"
        "print(r.get('embed').version)\n"
        "heavy = [m for m in ('torch', 'open_clip', 'torchvision') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    env: dict[str, Any] = cli_env()
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == f"1+{TINY}"
