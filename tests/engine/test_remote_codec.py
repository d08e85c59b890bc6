"""What travels to remote workers and back (engine/remote/codec.py): arrays as bytes
with dtype and shape, never pickled; paths from the network kept inside the library;
each model stage's output decodes to what it stores."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from engine.config import DEFAULT_TEXT_MODEL, Settings
from engine.ocr.types import PageText, Word
from engine.pipeline.detect import DetectOutput, DetectStage
from engine.pipeline.embed import EmbedOutput, EmbedStage
from engine.pipeline.ocr import OcrOutput, OcrStage
from engine.pipeline.text_embed import TextEmbedOutput, TextEmbedStage
from engine.pipeline.types import StageOutput
from engine.remote import codec
from engine.remote.codec import CodecError
from engine.search.textvectors import Passage
from models.detect import Detection


@pytest.mark.parametrize("dtype", ["float32", "float16", "int64", "uint8"])
def test_arrays_round_trip_exactly(dtype: str) -> None:
    array = (np.arange(24).reshape(2, 3, 4) * 1.5).astype(dtype)
    back = codec.unpack_array(codec.pack_array(array))
    assert back.dtype == array.dtype and back.shape == (2, 3, 4)
    assert np.array_equal(back, array)


@pytest.mark.parametrize(
    "bad",
    [
        {"dtype": "object", "shape": [1], "b64": ""},
        {"dtype": "float32", "shape": [3], "b64": codec.b64(b"\0" * 8)},  # too few bytes
        {"dtype": "float32", "shape": [-1], "b64": ""},
        {"dtype": "float32", "shape": "2", "b64": ""},
        {"dtype": "float32", "shape": [1], "b64": "not base64!"},
        codec.pack_array(np.array([1.0, np.nan], np.float32)),
        codec.pack_array(np.array([np.inf], np.float32)),
        [1, 2, 3],
    ],
)
def test_arrays_that_do_not_decode_are_refused(bad: Any) -> None:
    with pytest.raises(CodecError):
        codec.unpack_array(bad)


@pytest.mark.parametrize(
    "relpath", ["../catalog.db", "/etc/passwd", "thumbs/../../x", "", ".", "a\\b", "a/./b"]
)
def test_paths_from_the_network_stay_inside_the_library(relpath: str) -> None:
    with pytest.raises(CodecError):
        codec.safe_relpath(relpath)


def test_a_library_path_is_accepted() -> None:
    assert codec.safe_relpath("thumbs/ab/abcd-1280.jpg").parts == ("thumbs", "ab", "abcd-1280.jpg")


def settings() -> Settings:
    s = Settings()
    s.models.embed = "open_clip:tiny-test:local"
    s.models.detect = "transformers:tiny-detr:local"
    s.device = "cpu"
    return s


def round_trip(stage: Any, output: StageOutput) -> StageOutput:
    import json

    wire = json.loads(json.dumps(codec.encode(stage, output), allow_nan=False))
    return codec.decode(stage, wire)


def test_embed_vectors_and_norms_travel() -> None:
    stage = EmbedStage(settings())
    vector = np.linspace(-1, 1, 16, dtype=np.float32)
    out = round_trip(stage, EmbedOutput(data={"dim": 16, "digest": "d"}, vector=vector, norm=3.5))
    assert isinstance(out, EmbedOutput) and out.norm == 3.5
    assert out.vector is not None and np.array_equal(out.vector, vector)
    wrong = codec.encode(stage, EmbedOutput(data={"dim": 8}, vector=vector))
    with pytest.raises(CodecError):
        codec.decode(stage, wrong)  # a vector of another length than the model's


def test_detections_travel_and_non_finite_boxes_are_refused() -> None:
    stage = DetectStage(settings())
    found = [Detection("dog", 0.91, (1.0, 2.0, 30.5, 40.0)), Detection("cat", 0.5, (0, 0, 1, 1))]
    out = round_trip(stage, DetectOutput(data={"count": 2}, detections=found, frame=(640, 480)))
    assert isinstance(out, DetectOutput) and out.frame == (640, 480)
    assert [(d.label, d.score, d.box) for d in out.detections] == [
        ("dog", 0.91, (1.0, 2.0, 30.5, 40.0)),
        ("cat", 0.5, (0.0, 0.0, 1.0, 1.0)),
    ]
    bad = codec.encode(stage, DetectOutput(data={}, detections=found, frame=(1, 1)))
    bad["detections"][0][2] = float("inf")
    with pytest.raises(CodecError):
        codec.decode(stage, bad)


def test_ocr_pages_with_words_travel() -> None:
    stage = OcrStage(Settings())
    page = PageText(
        "INVOICE 4711", 91.5, [Word(1, 2, 30, 12, 96.0, 0, 7)], 800, 600, 90, "ocr", "eng", "osd"
    )
    out = round_trip(stage, OcrOutput(data={"pages": 1}, pages=[page]))
    assert isinstance(out, OcrOutput) and out.pages[0].to_json() == page.to_json()


def test_passages_and_their_vectors_travel_together() -> None:
    s = Settings()
    s.models.text = DEFAULT_TEXT_MODEL
    stage = TextEmbedStage(s)
    vectors = np.ones((2, 384), np.float32)
    passages = [Passage(0, 0, 10), Passage(1, 5, 90)]
    out = round_trip(stage, TextEmbedOutput(data={"passages": 2}, passages=passages,
                                            vectors=vectors))  # fmt: skip
    assert isinstance(out, TextEmbedOutput) and out.passages == passages
    assert out.vectors is not None and out.vectors.shape == (2, 384)
    bad = codec.encode(stage, TextEmbedOutput(data={}, passages=passages, vectors=vectors[:1]))
    with pytest.raises(CodecError):
        codec.decode(stage, bad)


def test_a_plain_stage_sends_its_data_and_refuses_what_json_cannot_carry() -> None:
    from tests.engine.remote_stages import Crunch

    stage = Crunch()
    assert round_trip(stage, StageOutput(data={"digest": "ab"})).data == {"digest": "ab"}
    with pytest.raises(TypeError):
        codec.encode(stage, EmbedOutput(data={}))  # carries more than its data
    with pytest.raises(CodecError):
        codec.decode(stage, {"nodata": 1})
