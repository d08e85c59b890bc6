"""Metadata that users trust (issue 16): Shoebox's reading of real camera files against
exiftool's, per field (tests/reliability/camera_corpus.py). In `make reliability`:
it downloads Pillow's source distribution once and needs exiftool."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.reliability.camera_corpus import FIELDS, assemble, compare

pytestmark = pytest.mark.reliability


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="needs exiftool (the reference)")
def test_camera_metadata_agrees_with_exiftool() -> None:
    files = assemble()
    if not files:
        pytest.skip("could not download Pillow's source distribution (the camera files)")
    report = compare(files)
    out = os.environ.get("SHOEBOX_RELIABILITY_OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "camera_metadata.json").write_text(json.dumps(report, indent=2))
    assert report["files"] >= 100, "the corpus is there"
    # Camera and GPS: what exiftool reads, Shoebox reads the same.
    for field in ("camera_model", "gps_lon"):
        counts = report["fields"][field]
        assert counts["differ"] == 0 and counts["missing"] == 0, (field, counts["examples"])
    assert set(report["fields"]) == set(FIELDS)
