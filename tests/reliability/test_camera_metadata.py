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
from tests.reliability.harness import write_record

pytestmark = pytest.mark.reliability

# The share of files (where exiftool has a value) Shoebox must read the same. Measured
# on Pillow 13.0.0's 165 files: taken_at 53/55 (two multi-page TIFFs: exiftool reports
# the last page's ModifyDate), camera_make 18/19 (exiftool prints '?' for a blank),
# orientation 89/91 and width/height 160/163 (damaged TIFFs Shoebox rejects whole).
THRESHOLDS = {
    "taken_at": 0.95,
    "camera_make": 0.94,
    "camera_model": 1.0,
    "gps": 1.0,
    "orientation": 0.97,
    "width": 0.98,
    "height": 0.98,
}


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
    assert set(report["fields"]) == set(FIELDS)
    low = {}
    for kind, threshold in THRESHOLDS.items():
        counts = report["fields"][kind]
        compared, agree = counts["files"], counts["agree"]
        ok = compared > 0 and agree / compared >= threshold
        write_record(
            {
                "suite": "metadata",
                "kind": kind,
                "seed": 0,
                "ok": ok,
                "agree": agree,
                "compared": compared,
                "threshold": threshold,
                "disagreements": counts["examples"],
            }
        )
        if not ok:
            low[kind] = (agree, compared, counts["examples"])
    assert not low, low
    assert report["fields"]["gps"]["files"] >= 2, "GPS is compared on real files"
