"""The reliability report's writer (tests/reliability/run.py) on synthetic records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.reliability import run as report


def _write(directory: Path, records: list[dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for i, record in enumerate(records):
        (directory / f"r{i}.json").write_text(json.dumps(record))
    (directory / "not-a-record.json").write_text(json.dumps({"hello": 1}))
    return directory


def _fault(kind: str, seed: int, **counts: Any) -> dict[str, Any]:
    base = {"suite": "faults", "kind": kind, "seed": seed, "runs": 3, "faults": 2, "items": 40}
    base.update(jobs=80, items_lost=0, items_duplicated=0, jobs_lost=0, jobs_duplicated=0)
    base.update(originals_changed=0, integrity="ok", problems=[], ok=True)
    base.update(counts)
    return base


GOOD = [
    _fault("sigkill_host", 1),
    _fault("sigkill_host", 2, faults=3),
    _fault("disk_full", 0, faults=1),
    {"suite": "bad_files", "kind": "truncated", "seed": 0, "outcome": "failed",
     "reason": "The file is damaged (cut short).", "hung": False, "host_crashes": 0, "ok": True},
    {"suite": "bad_files", "kind": "truncated", "seed": 0, "outcome": "done", "reason": None,
     "hung": False, "host_crashes": 0, "ok": True},
    {"suite": "bad_files", "kind": "special", "seed": 0, "outcome": "not catalogued",
     "reason": None, "hung": False, "host_crashes": 0, "ok": True},
    {"suite": "metadata", "kind": "taken_at", "seed": 0, "agree": 50, "compared": 55,
     "disagreements": ["a.jpg: 2001 vs 2002"], "ok": True},
    {"suite": "originals", "kind": "session", "seed": 0, "tests_guarded": 9,
     "files_checked": 120, "originals_changed": 0, "writes_blocked": 0, "ok": True},
    {"suite": "security", "kind": "no_listening_port", "seed": 0, "ok": True},
]  # fmt: skip


def test_a_clean_set_of_records_is_a_clean_verdict(tmp_path: Path) -> None:
    records = report.load_records(_write(tmp_path / "records", GOOD))
    assert len(records) == len(GOOD)  # the file without suite/kind is not a record
    assert report.totals(records) == dict.fromkeys(report.MUST_BE_ZERO, 0)
    assert report.verdict_ok(records, None)
    text = report.render(records, None, "abc123")
    assert "| sigkill_host | 2 | 2 | 5 | 6 | 80 | 160 | 0 | 0 | 0 | 0 | 0 | 0 | 2/2 |" in text
    assert "| truncated | 2 | 1 | 1 | 0 | 0 | 0 | The file is damaged (cut short). |" in text
    assert "| taken_at | 50 | 55 | 90.9% | a.jpg: 2001 vs 2002 |" in text
    assert "## Originals" in text and "files_checked 120" in text
    assert "## Security" in text  # a suite the writer has no section for is still shown


def test_anything_lost_doubled_hung_or_corrupt_fails_the_verdict(tmp_path: Path) -> None:
    bad = [
        *GOOD,
        _fault("sigkill_host", 3, jobs_lost=1, ok=False, problems=["job 7 lost"]),
        _fault("sigkill_store", 4, integrity="*** in database main ***"),
        {"suite": "bad_files", "kind": "bomb", "seed": 0, "outcome": "hung", "hung": True,
         "host_crashes": 2, "ok": False},
    ]  # fmt: skip
    records = report.load_records(_write(tmp_path / "records", bad))
    zero = report.totals(records)
    assert zero["jobs_lost"] == 1 and zero["integrity_failures"] == 1
    assert zero["hangs"] == 1 and zero["host_crashes"] == 2
    assert not report.verdict_ok(records, None)
    text = report.render(records, None, "abc123")
    assert "| jobs lost | 1 |" in text and "| records not ok | 2 |" in text
    assert "job 7 lost" in text


def test_failed_tests_fail_the_verdict_and_are_named(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1" time="61.0">'
        '<testcase classname="tests.a" name="test_ok"/>'
        '<testcase classname="tests.a" name="test_bad"><failure message="x"/></testcase>'
        '<testcase classname="tests.a" name="test_skip"><skipped message="no mount"/></testcase>'
        "</testsuite></testsuites>"
    )
    run = report.read_junit(junit, "pytest -m 'not slow'")
    assert (run.tests, run.passed, run.failed, run.skipped) == (3, 1, 1, 1)
    records = report.load_records(_write(tmp_path / "records", GOOD))
    assert not report.verdict_ok(records, run)
    text = report.render(records, run, "abc123")
    assert "- tests.a::test_bad" in text and "tests.a::test_skip: no mount" in text
    out = tmp_path / "reliability.md"
    assert report.main(["--records", str(tmp_path / "records"), "--out", str(out)]) == 1
    assert out.read_text().startswith("# Reliability")


def test_a_kind_with_several_records_shows_their_sums(tmp_path: Path) -> None:
    """Two originals sessions (the suite, then a rerun of one file) are added up, not
    the last one shown; texts are listed once each."""
    sessions = [
        {"suite": "originals", "kind": "session", "seed": 0, "tests_guarded": 101,
         "files_checked": 955, "originals_changed": 0, "writes_blocked": 0, "ok": True},
        {"suite": "originals", "kind": "session", "seed": 0, "tests_guarded": 1,
         "files_checked": 2, "originals_changed": 0, "writes_blocked": 0, "ok": True},
        {"suite": "security", "kind": "no_connections", "seed": 0, "connects": 0,
         "outcome": "refused", "ok": True},
        {"suite": "security", "kind": "no_connections", "seed": 0, "connects": 0,
         "outcome": "refused", "ok": False},
    ]  # fmt: skip
    records = report.load_records(_write(tmp_path / "records", sessions))
    text = report.render(records, None, "abc123")
    assert (
        "| session | 2 | 2 | files_checked 957, originals_changed 0, tests_guarded 102,"
        " writes_blocked 0 |" in text
    )
    assert "| no_connections | 2 | 1 | connects 0, outcome refused |" in text
