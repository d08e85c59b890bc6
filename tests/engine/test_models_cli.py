"""The model stages end to end through the CLI: tiny models built here, brought in
with `shoebox models import`, run by real worker-host processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from tests.engine.helpers import jpeg
from tests.models.tiny import make_tiny_open_clip
from tests.models.tiny_detr import make_tiny_rtdetr

CLIP = "open_clip:tiny-test:local"
DETR = "transformers:tiny-rtdetr"


@pytest.fixture(autouse=True)
def weights_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "weights"
    monkeypatch.setenv("SHOEBOX_MODELS_DIR", str(cache))
    monkeypatch.setattr("engine.jobs.host.WAKE_CHECK_S", 0.2)
    return cache


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code = main(list(args))
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out) if "--json" in args else out.out


def photos(folder: Path, n: int) -> Path:
    for i in range(n):
        jpeg(folder / f"p{i:02d}.jpg", i, size=(160 + 8 * i, 120))
    return folder


def test_embed_detect_and_tags_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lib = str(tmp_path / "lib")
    imported = cli(
        capsys, "models", "import", str(make_tiny_open_clip(tmp_path / "clip")), "--as", CLIP,
        "--json",
    )  # fmt: skip
    assert imported["spec"] == CLIP and len(imported["digest"]) == 64
    cli(capsys, "models", "import", str(make_tiny_rtdetr(tmp_path / "detr")), "--as", DETR)
    assert {m["spec"] for m in cli(capsys, "models", "list", "--json")} == {CLIP, DETR}
    for key, value in (
        ("models.embed", CLIP),
        ("models.detect", DETR),
        ("tags.min_score", "0"),  # a random model's scores are flat: keep the top ones
        ("detect.min_score", "0.01"),
        ("device", "cpu"),
    ):
        cli(capsys, "--library", lib, "config", "set", key, value)
    assert cli(capsys, "--library", lib, "config", "get", "models.embed", "--json")["value"] == CLIP

    summary = cli(
        capsys, "--library", lib, "import", str(photos(tmp_path / "src", 6)), "--wait", "--json"
    )
    assert summary["items_new"] == 6 and summary["failed"] == 0
    status = cli(capsys, "--library", lib, "status", "--json")
    for stage in ("metadata", "thumbnail", "embed", "tags", "detect"):
        assert status["stages"][stage]["done"] == 6, (stage, status["stages"][stage])
    assert status["queue"]["waiting"] == 0 and status["queue"]["failed"] == 0

    items = cli(capsys, "--library", lib, "items", "--json")
    digest = imported["digest"]
    for item in items:
        assert item["embedding"] == {"model": CLIP, "dim": 32, "digest": digest}
        sources = {t["source"] for t in item["tags"]}
        assert "zero-shot" in sources and "detect" in sources, item["tags"]
        assert item["detections"], "the tiny detector is biased to find something"
        width, height = item["metadata"]["width"], item["metadata"]["height"]
        for det in item["detections"]:
            assert set(det) == {"label", "score", "box"}
            x0, y0, x1, y1 = det["box"]
            assert 0 <= x0 <= x1 <= width + 0.5 and 0 <= y0 <= y1 <= height + 0.5
        assert Path(item["thumbnail"]).is_file()

    found = cli(capsys, "--library", lib, "similar", str(items[0]["id"]), "--json")
    assert [set(hit) for hit in found] == [{"id", "paths", "kind", "score"}] * 5
    assert items[0]["id"] not in [hit["id"] for hit in found]
    assert [hit["score"] for hit in found] == sorted((h["score"] for h in found), reverse=True)

    models = {m["stage"]: m for m in cli(capsys, "--library", lib, "models", "status", "--json")}
    assert models["embed"]["available"] and models["embed"]["digest"] == digest
    assert models["detect"]["spec"] == DETR


def test_offline_without_weights_jobs_wait_then_finish_after_models_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lib = str(tmp_path / "lib")
    cli(capsys, "--library", lib, "config", "set", "models.embed", CLIP)
    cli(capsys, "--library", lib, "config", "set", "device", "cpu")
    summary = cli(
        capsys, "--library", lib, "import", str(photos(tmp_path / "src", 5)), "--wait", "--json"
    )
    assert summary["items_new"] == 5
    status = cli(capsys, "--library", lib, "status", "--json")
    stages = status["stages"]
    assert stages["metadata"]["done"] == 5 and stages["thumbnail"]["done"] == 5
    assert stages["embed"]["waiting"] == 5 and stages["tags"]["waiting"] == 5
    # embed, tags and labels (the last two wait on embed) for each of the 5 photos
    assert status["queue"]["failed"] == 0 and status["queue"]["waiting"] == 15
    items = cli(capsys, "--library", lib, "items", "--json")
    reason = items[0]["stages"]["embed"]["error"]
    assert (
        "is not available offline" in reason and f"shoebox models import FILE --as {CLIP}" in reason
    )
    assert {i["stages"]["embed"]["attempts"] for i in items} == {0}
    statuses = cli(capsys, "--library", lib, "models", "status", "--json")
    assert statuses[0]["state"] == "waiting" and statuses[0]["waiting_jobs"] == 5

    cli(capsys, "models", "import", str(make_tiny_open_clip(tmp_path / "clip")), "--as", CLIP)
    cli(capsys, "--library", lib, "work", "--until-idle")
    status = cli(capsys, "--library", lib, "status", "--json")
    assert status["stages"]["embed"]["done"] == 5 and status["stages"]["tags"]["done"] == 5
    assert status["items"] == 5 and status["queue"]["waiting"] == 0
    sessions = cli(capsys, "--library", lib, "sessions", "--json")
    assert len(sessions) == 1, "nothing was imported again"


def test_config_set_model_reindexes_in_the_batch_lane_while_similar_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lib = str(tmp_path / "lib")
    cli(capsys, "--library", lib, "config", "set", "models.embed", "torchvision:mobilenet_v2")
    cli(capsys, "--library", lib, "config", "set", "device", "cpu")
    cli(capsys, "--library", lib, "import", str(photos(tmp_path / "src", 6)), "--wait")
    items = cli(capsys, "--library", lib, "items", "--json")
    first = items[0]["id"]
    before = cli(capsys, "--library", lib, "similar", str(first), "--json")
    assert len(before) == 5
    assert {i["embedding"]["model"] for i in items} == {"torchvision:mobilenet_v2"}
    assert {t["source"] for i in items for t in i["tags"]} == {"classifier"}

    cli(capsys, "models", "import", str(make_tiny_open_clip(tmp_path / "clip")), "--as", CLIP)
    changed = cli(capsys, "--library", lib, "config", "set", "models.embed", CLIP, "--json")
    assert changed["previous"] == "torchvision:mobilenet_v2" and changed["reindex_sessions"]
    sessions = cli(capsys, "--library", lib, "sessions", "--json")
    reindexes = [s for s in sessions if s["kind"] == "reindex"]
    assert {s["state"] for s in reindexes} == {"processing"}
    # Not re-indexed yet: similar still answers, from the old model's vectors.
    assert [h["id"] for h in cli(capsys, "--library", lib, "similar", str(first), "--json")] == [
        h["id"] for h in before
    ]

    cli(capsys, "--library", lib, "work", "--until-idle")
    status = cli(capsys, "--library", lib, "status", "--json")
    assert status["stages"]["embed"]["done"] == 6 and status["stages"]["tags"]["done"] == 6
    assert status["lanes"]["batch"]["done"] >= 12, "the re-index ran in the batch lane"
    after = cli(capsys, "--library", lib, "items", "--json")
    assert {i["embedding"]["model"] for i in after} == {CLIP}
    assert len(cli(capsys, "--library", lib, "similar", str(first), "--json")) == 5
    sessions = cli(capsys, "--library", lib, "sessions", "--json")
    assert {s["state"] for s in sessions if s["kind"] == "reindex"} == {"done"}
