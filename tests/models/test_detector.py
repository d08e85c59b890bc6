"""The transformers object detector, on a tiny random RT-DETRv2 built here and loaded
the way an imported checkpoint folder is (from the weights cache, offline)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models import weights
from models.detect import Detection, ObjectDetector, create_detector
from models.detect.transformers_detr import TransformersDetector
from models.errors import ModelUnavailable, WeightsError
from tests.models.tiny_detr import TINY_IMAGE_PX, TINY_LABEL, TINY_LABELS, make_tiny_rtdetr

TINY = "transformers:tiny-rtdetr"
SIZES = [(320, 240), (97, 203), (64, 64)]


def _image(size: tuple[int, int], seed: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(size[1] // 8, 1), max(size[0] // 8, 1), 3), dtype=np.uint8)
    img = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    return img if mode == "RGB" else img.convert(mode)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_rtdetr(tmp_path_factory.mktemp("detr") / "tiny-rtdetr")


@pytest.fixture(scope="module")
def detector(
    tiny_folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ObjectDetector]:
    """The tiny model imported into a private weights cache, loaded once on the CPU."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHOEBOX_MODELS_DIR", str(tmp_path_factory.mktemp("models")))
        imported = weights.import_weights(tiny_folder, TINY)
        assert imported.path.name == "files"
        model = create_detector(TINY, "cpu")
        model.load()
        yield model
        model.unload()


def test_the_tiny_checkpoint_loads_from_the_weights_cache(detector: ObjectDetector) -> None:
    assert isinstance(detector, TransformersDetector)
    assert detector.state == "loaded" and detector.device == "cpu" and not detector.half
    assert detector.weights is not None and detector.weights.origin == "cache"
    assert detector.identity.startswith(f"{TINY}@") and len(detector.digest) == 64
    assert detector.labels == TINY_LABELS


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_preprocess_matches_the_checkpoints_image_processor(
    detector: ObjectDetector, tiny_folder: Path, mode: str
) -> None:
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(str(tiny_folder), local_files_only=True)
    for seed, size in enumerate(SIZES):
        img = _image(size, seed, mode)
        ours = detector.preprocess(img)
        theirs = processor(images=img.convert("RGB"), return_tensors="np")["pixel_values"][0]
        assert ours.dtype == np.float32 and ours.flags.c_contiguous
        assert ours.shape == theirs.shape == (3, TINY_IMAGE_PX, TINY_IMAGE_PX)
        # The same bilinear resize, at most one 8-bit step apart (rounding).
        assert np.abs(ours - theirs).max() <= 1.01 / 255
        assert np.abs(ours - theirs).mean() < 1e-3


@pytest.fixture(scope="module")
def batch(detector: ObjectDetector) -> list[np.ndarray]:
    return [detector.preprocess(_image(size, seed)) for seed, size in enumerate(SIZES)]


@pytest.fixture(scope="module")
def found(detector: ObjectDetector, batch: list[np.ndarray]) -> list[list[Detection]]:
    return detector.detect(batch, SIZES, 0.5)


def test_detections_carry_labels_scores_and_boxes_in_the_given_size(
    found: list[list[Detection]],
) -> None:
    assert len(found) == len(SIZES)
    for (w, h), detections in zip(SIZES, found, strict=True):
        assert detections, "the biased class head finds something in every image"
        assert {d.label for d in detections} == {TINY_LABEL}
        for d in detections:
            assert isinstance(d, Detection)
            assert d.label in TINY_LABELS.values()
            assert 0.5 <= d.score <= 1.0
            x0, y0, x1, y1 = d.box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        scores = [d.score for d in detections]
        assert scores == sorted(scores, reverse=True)


def test_a_batch_gives_what_each_image_gives_alone(
    detector: ObjectDetector, batch: list[np.ndarray], found: list[list[Detection]]
) -> None:
    for i in (0, 1):
        [alone] = detector.detect([batch[i]], [SIZES[i]], 0.5)
        assert [d.label for d in alone] == [d.label for d in found[i]]
        for a, b in zip(alone, found[i], strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-4)
            assert a.box == pytest.approx(b.box, abs=0.05)


def test_min_score_filters_and_nothing_reaches_above_one(
    detector: ObjectDetector, batch: list[np.ndarray], found: list[list[Detection]]
) -> None:
    assert detector.detect(batch, SIZES, 1.01) == [[], [], []]
    everything = detector.detect(batch, SIZES, 0.0)
    for low, high in zip(everything, found, strict=True):
        assert len(low) >= len(high) and all(d.score >= 0.0 for d in low)
        assert [d for d in low if d.score >= 0.5] == high
    assert detector.detect([], [], 0.5) == []
    with pytest.raises(ValueError, match="sizes"):
        detector.detect(batch, [], 0.5)


def test_a_processor_without_a_fixed_size_is_used_as_it_is(
    tiny_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DETR-style aspect-preserving resizing: inputs of different shapes in one batch
    run as separate forward passes, and boxes still come back in each image's size."""
    folder = tmp_path / "tiny-aspect"
    shutil.copytree(tiny_folder, folder)
    config_path = folder / "preprocessor_config.json"
    config = json.loads(config_path.read_text())
    config["size"] = {"shortest_edge": 64, "longest_edge": 128}
    config_path.write_text(json.dumps(config))
    monkeypatch.setenv("SHOEBOX_MODELS_DIR", str(tmp_path / "models"))
    weights.import_weights(folder, "transformers:tiny-aspect")
    model = create_detector("transformers:tiny-aspect", "cpu").load()
    assert isinstance(model, ObjectDetector)
    sizes = [(256, 128), (96, 192)]  # RT-DETR wants sides divisible by 32
    batch = [model.preprocess(_image(size, seed)) for seed, size in enumerate(sizes)]
    assert [b.shape for b in batch] == [(3, 64, 128), (3, 128, 64)]
    found = model.detect(batch, sizes, 0.5)
    for (w, h), detections in zip(sizes, found, strict=True):
        assert detections and all(
            0 <= d.box[0] < d.box[2] <= w and 0 <= d.box[1] < d.box[3] <= h for d in detections
        )


def test_missing_weights_say_how_to_import_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOEBOX_MODELS_DIR", str(tmp_path / "empty"))
    model = create_detector("transformers:not-here/rtdetr", "cpu")
    with pytest.raises(ModelUnavailable, match="shoebox models import") as caught:
        model.load()
    assert caught.value.spec == "transformers:not-here/rtdetr"
    assert model.state == "unavailable"
    reason = model.availability()  # the failed (offline) download is not retried at once
    assert reason is not None and "shoebox models import" in reason


def test_a_folder_that_is_no_detection_checkpoint_is_a_weights_error(
    tiny_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "no-processor"
    shutil.copytree(tiny_folder, folder)
    (folder / "preprocessor_config.json").unlink()
    monkeypatch.setenv("SHOEBOX_MODELS_DIR", str(tmp_path / "models"))
    weights.import_weights(folder, "transformers:no-processor")
    model = create_detector("transformers:no-processor", "cpu")
    with pytest.raises(WeightsError, match="not a transformers object-detection checkpoint"):
        model.load()
    assert model.state == "unavailable"  # set aside: the stage waits for new weights
    assert weights.find_local("transformers:no-processor") is None
    with pytest.raises(RuntimeError, match="load"):
        model.preprocess(_image((64, 64), 0))
