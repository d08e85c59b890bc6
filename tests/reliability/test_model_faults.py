"""Model faults: a corrupt weights file, tesseract missing.

After each the worker host keeps going: the stage's jobs wait with a reason that
says what to do (none failed or dead), every other stage finishes, and once the
cause is gone `work --until-idle` finishes the rest, once each.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from models import weights as weights_mod
from tests.models.tiny import make_tiny_open_clip
from tests.reliability.harness import Harness, seeds, write_record

CLIP = "open_clip:tiny-test:local"


def _states(h: Harness, stage: str) -> dict[str, int]:
    return {
        str(s): int(n)
        for s, n in h.read("SELECT state, count(*) FROM jobs WHERE stage = ? GROUP BY 1", (stage,))
    }


def test_corrupt_weights_are_set_aside_and_the_stage_waits_for_new_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    models_dir = tmp_path / "weights"
    monkeypatch.setenv("SHOEBOX_MODELS_DIR", str(models_dir))
    h = Harness(tmp_path, seeds((41,))[0])
    distinct = h.build_source(8, duplicates=0)
    good = make_tiny_open_clip(tmp_path / "clip")
    lib = str(h.library)
    for args in (
        ["models", "import", str(good), "--as", CLIP],
        ["--library", lib, "config", "set", "device", "cpu"],
        ["--library", lib, "config", "set", "models.embed", CLIP],
    ):
        assert main(args) == 0, capsys.readouterr().err
    # Damage the cached file (a disk error, an interrupted copy): cut it in half.
    cached = weights_mod.find_local(CLIP)
    assert cached is not None and cached.origin == "cache"
    files = sorted(p for p in cached.path.rglob("*.safetensors"))
    assert files, list(cached.path.rglob("*"))
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])
    h.import_source()

    first = h.work()
    assert first.returncode == 0, first.stderr[-2000:]
    embed = _states(h, "embed")
    assert embed == {"waiting": distinct}, embed
    reasons = {str(r[0]) for r in h.read("SELECT error FROM jobs WHERE stage = 'embed'")}
    # The job that loaded them says they were damaged; the ones parked after it, that
    # the weights are not here (the slot is empty now). Each says what to do.
    assert any("damaged" in r and "set aside" in r for r in reasons), reasons
    assert all("models import" in r for r in reasons), reasons
    assert _states(h, "thumbnail") == {"done": distinct}
    assert weights_mod.find_local(CLIP) is None, "the damaged weights are still in their slot"
    assert list((models_dir / ".damaged").iterdir()), "set aside, not deleted"
    snaps = [h.snapshot()]

    assert main(["models", "import", str(good), "--as", CLIP]) == 0, capsys.readouterr().err
    stats = h.work_clean()
    assert stats["failed"] == 0 and stats["dead"] == 0, stats
    assert _states(h, "embed") == {"done": distinct}
    attempts = h.read("SELECT max(attempts) FROM jobs WHERE stage = 'embed'")[0][0]
    assert attempts == 1, f"waiting cost attempts: {attempts}"
    h.next_start_clean()
    check = h.check(distinct, snaps)
    h.record("corrupt_weights", check, faults=1)
    h.assert_ok(check)


def test_tesseract_missing_makes_ocr_wait_with_an_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = shutil.which("tesseract")
    if real is None:
        pytest.skip("tesseract is not installed here: its return cannot be tested")
    h = Harness(tmp_path, seeds((42,))[0])
    distinct = h.build_source(6, duplicates=0)
    h.library.mkdir(parents=True)
    (h.library / "settings.toml").write_text('[ocr]\nenabled = true\nphotos = "always"\n')
    h.import_source()
    # A PATH without tesseract (and no configured binary): the stage cannot run.
    bare = tmp_path / "bin"
    bare.mkdir()
    python_dir = os.path.dirname(os.path.realpath(os.sys.executable))
    env = h.env(PATH=f"{bare}{os.pathsep}{python_dir}", TESSDATA_PREFIX="")
    first = h.work(env)
    assert first.returncode == 0, first.stderr[-2000:]
    ocr = _states(h, "ocr")
    assert ocr == {"waiting": distinct}, ocr
    reason = str(h.read("SELECT max(error) FROM jobs WHERE stage = 'ocr'")[0][0])
    assert "tesseract" in reason.lower() and "install" in reason.lower(), reason
    assert _states(h, "thumbnail") == {"done": distinct}
    assert _states(h, "metadata") == {"done": distinct}
    snaps = [h.snapshot()]
    stats = json.loads(h.work().stdout)  # tesseract back on PATH
    assert stats["failed"] == 0 and stats["dead"] == 0, stats
    assert _states(h, "ocr") == {"done": distinct}
    h.next_start_clean()
    check = h.check(distinct, snaps)
    h.record("tesseract_missing", check, faults=1)
    h.assert_ok(check)


class _GreedyOnTheGpu:
    """Behaviour of a model on a small GPU: more than `fits` inputs at once, or any
    input at all once `never` is set, raise torch.cuda.OutOfMemoryError."""

    def __init__(self, fits: int, *, never: bool = False) -> None:
        self.fits = fits
        self.never = never
        self.calls: list[tuple[str, int]] = []


def _fake_embedder(gpu: _GreedyOnTheGpu) -> Any:
    """A real `ImageEmbedder` (so `fall_back_to_cpu` and `load` are the real ones)
    whose network is a fixed projection; "on CUDA" until it falls back."""
    import numpy as np
    import torch

    from models.embed import ImageEmbedder
    from models.weights import Weights

    class Fake(ImageEmbedder):
        @property
        def dim(self) -> int:
            return 4

        def preprocess(self, image: Any) -> np.ndarray:
            raise NotImplementedError

        def find_weights(self, progress: Any = None) -> Weights:
            return Weights(self.spec.text, Path("/dev/null"), "0" * 64, "path")

        def _load(self, weights: Weights, device: str) -> None:
            # The CPU here stands for the GPU until the model falls back.
            self.device = "cuda" if self.device_setting != "cpu" else "cpu"

        def _unload(self) -> None:
            pass

        def embed_images(self, batch: np.ndarray) -> np.ndarray:
            gpu.calls.append((self.device, len(batch)))
            if self.device == "cuda" and (gpu.never or len(batch) > gpu.fits):
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
            flat = batch.reshape(len(batch), -1)[:, :4].astype(np.float32)
            return flat / np.linalg.norm(flat, axis=1, keepdims=True)

    model = Fake("open_clip:fake-gpu:local", "auto")
    model.load()
    model.device = "cuda"
    return model


def _embed_batch(model: Any, n: int) -> tuple[list[Any], Any]:
    import numpy as np

    from engine.config import Settings
    from engine.pipeline.embed import EmbedStage
    from engine.pipeline.types import StageContext

    stage = EmbedStage(Settings(), spec="open_clip:fake-gpu:local")
    stage.model = lambda ctx: model  # type: ignore[method-assign]
    rng = np.random.default_rng(0)
    inputs = [rng.random((3, 2, 2), dtype=np.float32) + 0.1 for _ in range(n)]
    out = stage.run_batch(inputs, StageContext(Path("/nonexistent")))
    return out, np.stack([o.vector for o in out])  # type: ignore[union-attr]


def test_cuda_out_of_memory_halves_the_batch_and_remembers_what_fitted() -> None:
    import numpy as np

    reference = _fake_embedder(_GreedyOnTheGpu(fits=64))
    _, expected = _embed_batch(reference, 32)
    gpu = _GreedyOnTheGpu(fits=5)
    model = _fake_embedder(gpu)
    out, vectors = _embed_batch(model, 32)
    assert len(out) == 32 and np.allclose(vectors, expected)
    # 32 → 16 → 8 → 4 fits; then the rest in pieces of 4, on the "GPU".
    assert [n for _, n in gpu.calls[:4]] == [32, 16, 8, 4], gpu.calls
    assert {d for d, _ in gpu.calls} == {"cuda"} and model.fitting_batch == 4
    gpu.calls.clear()
    _embed_batch(model, 12)  # the next batch starts at the size that fitted
    assert [n for _, n in gpu.calls] == [4, 4, 4], gpu.calls
    write_record(
        {"suite": "faults", "kind": "cuda_oom_halving", "seed": 0, "faults": 3, "jobs": 44,
         "jobs_lost": 0, "jobs_duplicated": 0, "ok": True}
    )  # fmt: skip


def test_cuda_out_of_memory_one_at_a_time_moves_the_model_to_the_cpu() -> None:
    import numpy as np

    reference = _fake_embedder(_GreedyOnTheGpu(fits=64))
    _, expected = _embed_batch(reference, 8)
    gpu = _GreedyOnTheGpu(fits=0, never=True)
    model = _fake_embedder(gpu)
    out, vectors = _embed_batch(model, 8)
    assert np.allclose(vectors, expected) and len(out) == 8
    assert [n for d, n in gpu.calls if d == "cuda"] == [8, 4, 2, 1], gpu.calls
    assert [n for d, n in gpu.calls if d == "cpu"] == [8], gpu.calls
    assert model.device == "cpu" and model.state == "loaded"
    write_record(
        {"suite": "faults", "kind": "cuda_oom_cpu_fallback", "seed": 0, "faults": 4, "jobs": 8,
         "jobs_lost": 0, "jobs_duplicated": 0, "ok": True}
    )  # fmt: skip
