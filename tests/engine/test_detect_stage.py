"""The detect stage through the real worker host: photos imported, previews made,
the tiny RT-DETRv2 run on them; boxes stored in pixels of the upright original,
detected labels stored as tags; running it again replaces rows, never adds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from engine.config import Settings
from engine.jobs import ledger
from engine.library import Library
from engine.pipeline.detect import DetectOutput, DetectStage
from engine.pipeline.metadata import MetadataStage
from engine.pipeline.thumbnail import PREVIEW_PX, ThumbnailStage, thumb_relpath
from engine.pipeline.types import ItemRef, StageContext
from models import weights
from tests.engine.helpers import jpeg
from tests.engine.jobstages import fast_settings, library_with, run_until_idle, states
from tests.models.tiny_detr import TINY_LABEL, make_tiny_rtdetr

TINY = "transformers:tiny-rtdetr"
N_PHOTOS = 8
BIG_ROTATED = "rotated-big.jpg"  # 2000x1500 stored, EXIF 6: upright 1500x2000


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_rtdetr(tmp_path_factory.mktemp("detr") / "tiny-rtdetr")


@pytest.fixture
def settings(tiny_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("SHOEBOX_MODELS_DIR", str(tmp_path / "models"))
    weights.import_weights(tiny_folder, TINY)
    s = Settings()
    s.models.detect = TINY
    s.models.download = False
    s.device = "cpu"
    s.detect.min_score = 0.5
    return s


def _photos(src: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    jpeg(src / BIG_ROTATED, 100, (2000, 1500), exif)
    jpeg(src / "rotated-small.jpg", 101, (320, 240), exif)
    for i in range(N_PHOTOS - 2):
        jpeg(src / f"p{i}.jpg", i, (320 + 40 * i, 240))
    Image.new("RGB", (300, 400), (250, 250, 250)).save(src / "doc.pdf", "PDF")


def _library(tmp_path: Path, settings: Settings) -> tuple[Library, DetectStage]:
    stage = DetectStage(settings)
    lib = library_with(tmp_path / "lib", MetadataStage(), ThumbnailStage(), stage)
    fast_settings(lib)
    lib.settings.device = "cpu"
    src = tmp_path / "src"
    _photos(src)
    lib.import_paths([src])
    return lib, stage


def _rows(lib: Library, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in lib.catalog.read(sql, params)]


def _item_id(lib: Library, name: str) -> int:
    [(item_id,)] = _rows(lib, "SELECT item_id FROM paths WHERE display LIKE ?", (f"%{name}",))
    return int(item_id)


def test_photos_get_boxes_in_upright_original_pixels_and_tags(
    tmp_path: Path, settings: Settings
) -> None:
    lib, stage = _library(tmp_path, settings)
    try:
        assert stage.batch_size == 4  # CPU default, worked out on first read
        run_until_idle(lib, timeout=60)
        assert states(lib, "detect") == {"done": N_PHOTOS}  # photos only: no job for the PDF
        assert states(lib, "metadata") == {"done": N_PHOTOS + 1}

        sizes = {
            int(r[0]): (int(r[1]), int(r[2]))
            for r in _rows(lib, "SELECT id, width, height FROM items WHERE kind = 'photo'")
        }
        assert len(sizes) == N_PHOTOS
        big = _item_id(lib, BIG_ROTATED)
        assert sizes[big] == (1500, 2000)  # upright, not the stored 2000x1500

        boxes = _rows(lib, "SELECT item_id, model, label, score, x0, y0, x1, y1 FROM detections")
        assert {r[0] for r in boxes} == set(sizes)  # every photo has boxes
        for item_id, model, label, score, x0, y0, x1, y1 in boxes:
            w, h = sizes[item_id]
            assert model == TINY and label == TINY_LABEL and 0.5 <= score <= 1.0
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h

        tags = _rows(lib, "SELECT item_id, tag, source, score, model FROM item_tags")
        assert {(r[0], r[1], r[2], r[4]) for r in tags} == {
            (i, TINY_LABEL, "detect", TINY) for i in sizes
        }
        for item_id, _, _, score, _ in tags:
            best = max(r[3] for r in boxes if r[0] == item_id)
            assert score == pytest.approx(best, abs=1e-4)

        for item_id, data in _rows(lib, "SELECT item_id, data FROM results WHERE stage = 'detect'"):
            result = json.loads(data)
            count = sum(1 for r in boxes if r[0] == item_id)
            assert result["model"] == TINY and len(result["digest"]) == 64
            assert result["count"] == count and result["labels"] == {TINY_LABEL: count}
            assert tuple(result["frame"]) == sizes[item_id]

        # The big photo's boxes are the detector's boxes on its preview, scaled up.
        preview = Image.open(lib.root / thumb_relpath(_hash(lib, big), PREVIEW_PX))
        assert preview.size == (960, 1280)
        model = stage.holder.instance()
        model.load()  # the host released it when it stopped
        [on_preview] = model.detect([model.preprocess(preview.convert("RGB"))], [preview.size], 0.5)
        stored = sorted(r[4:] for r in boxes if r[0] == big)
        expected = sorted(
            (
                d.box[0] * 1500 / 960,
                d.box[1] * 2000 / 1280,
                d.box[2] * 1500 / 960,
                d.box[3] * 2000 / 1280,
            )
            for d in on_preview
        )
        assert len(stored) == len(expected)
        for a, b in zip(stored, expected, strict=True):
            assert a == pytest.approx(b, abs=0.5)
    finally:
        lib.close()


def test_running_detect_again_replaces_its_rows(tmp_path: Path, settings: Settings) -> None:
    lib, _ = _library(tmp_path, settings)
    try:
        run_until_idle(lib, timeout=60)
        query = "SELECT item_id, label, score, x0, y0, x1, y1 FROM detections ORDER BY 1, 3, 4"
        first = _rows(lib, query)
        first_tags = _rows(lib, "SELECT * FROM item_tags ORDER BY 1, 2")
        assert first and first_tags
        jobs = [int(r[0]) for r in _rows(lib, "SELECT id FROM jobs WHERE stage = 'detect'")]
        with lib.catalog.write() as conn:
            assert ledger.retry(conn, states=("done",), job_ids=jobs) == N_PHOTOS
        run_until_idle(lib, timeout=60)
        assert states(lib, "detect") == {"done": N_PHOTOS}
        second = _rows(lib, query)
        assert len(second) == len(first)
        for a, b in zip(second, first, strict=True):
            assert a[:2] == b[:2] and a[2:] == pytest.approx(b[2:], abs=1e-3)
        assert len(_rows(lib, "SELECT * FROM item_tags")) == len(first_tags)
        assert _rows(lib, "SELECT count(*) FROM results WHERE stage = 'detect'") == [(N_PHOTOS,)]
    finally:
        lib.close()


def test_store_replaces_rows_and_falls_back_to_preview_pixels(
    tmp_path: Path, settings: Settings
) -> None:
    """Storing twice leaves one set of rows; an item whose metadata found no size keeps
    its boxes in preview pixels (and says so in `frame`)."""
    from models.detect import Detection

    stage = DetectStage(settings)
    lib = library_with(tmp_path / "lib", MetadataStage(), ThumbnailStage(), stage)
    try:
        src = tmp_path / "src"
        jpeg(src / "a.jpg", 1, (320, 240))
        lib.import_paths([src])
        item_id = _item_id(lib, "a.jpg")
        item = ItemRef(item_id, _hash(lib, item_id), "photo", "jpeg", 1, ())
        dets = [
            Detection("Dog", 0.9, (10.0, 20.0, 110.0, 120.0)),
            Detection("dog", 0.7, (0.0, 0.0, 50.0, 50.0)),
            Detection("Car", 0.6, (100.0, 100.0, 200.0, 200.0)),
        ]
        output = DetectOutput(
            data={
                "model": TINY,
                "digest": "d",
                "count": 3,
                "labels": {"Dog": 1, "dog": 1, "Car": 1},
            },
            detections=dets,
            frame=(200, 200),
        )
        for width in (400, None):  # the original's size; then none known
            with lib.catalog.write() as conn:
                conn.execute(
                    "UPDATE items SET width = ?, height = ? WHERE id = ?", (width, width, item_id)
                )
                stage.store_many(conn, [(item, output)], 1)
                stage.store_many(conn, [(item, output)], 2)
            boxes = _rows(
                lib,
                "SELECT label, x0, y0, x1, y1 FROM detections WHERE item_id = ? ORDER BY 2",
                (item_id,),
            )
            scale = 2.0 if width else 1.0
            assert boxes == sorted(
                [(d.label, *(v * scale for v in d.box)) for d in dets], key=lambda r: r[1]
            )
            tags = _rows(
                lib, "SELECT tag, score FROM item_tags WHERE item_id = ? ORDER BY 1", (item_id,)
            )
            assert tags == [("car", 0.6), ("dog", 0.9)]
            [(data,)] = _rows(
                lib, "SELECT data FROM results WHERE item_id = ? AND stage = 'detect'", (item_id,)
            )
            assert json.loads(data)["frame"] == ([400, 400] if width else [200, 200])
    finally:
        lib.close()


def test_the_stage_is_built_without_loading_its_model(settings: Settings) -> None:
    stage = DetectStage(settings)
    assert stage.name == "detect" and stage.version == f"1+{TINY}"
    assert stage.kinds == frozenset({"photo"}) and not stage.reads_original
    assert stage.requires == ("metadata", "thumbnail")
    assert stage.availability() is None  # the weights are in the cache
    assert stage.model_status()["state"] == "unloaded"
    settings.models.detect_batch = 7
    assert DetectStage(settings).batch_size == 7
    missing = DetectStage(settings, spec="transformers:not-imported")
    reason = missing.availability()
    assert reason is not None and "shoebox models import" in reason
    with pytest.raises(ValueError):
        DetectStage(settings, spec="")


def test_a_missing_model_makes_detect_jobs_wait(tmp_path: Path, settings: Settings) -> None:
    from engine.errors import WaitingError

    stage = DetectStage(settings, spec="transformers:not-imported")
    with pytest.raises(WaitingError, match="shoebox models import"):
        stage.prepare(ItemRef(1, "h", "photo", "jpeg", 1, ()), StageContext(tmp_path))


def _hash(lib: Library, item_id: int) -> str:
    [(content_hash,)] = _rows(lib, "SELECT hash FROM items WHERE id = ?", (item_id,))
    return str(content_hash)
