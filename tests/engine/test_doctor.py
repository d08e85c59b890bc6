"""`shoebox doctor [--repair]`: each check finds what is wrong, and repairs it."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from engine import doctor
from engine.backup import library_lock
from engine.importing.importer import create_session
from engine.jobs import recovery
from engine.library import Library
from engine.store.db import next_seq
from tests.engine.helpers import jpeg, run_host_until_idle
from tests.engine.test_cli import run

HOUR = 3600.0


def _processed(tmp_path: Path, n: int = 2) -> Library:
    for i in range(n):
        jpeg(tmp_path / "src" / f"{i}.jpg", i)
    lib = Library(tmp_path / "lib")
    lib.settings.ocr.enabled = False  # metadata and thumbnails are enough here
    lib.import_paths([tmp_path / "src"])
    run_host_until_idle(lib)
    return lib


def _found(report: doctor.Report) -> dict[str, tuple[int, int]]:
    return {name: (c.found, c.fixed) for name, c in report.checks.items() if c.found or c.fixed}


def test_a_healthy_library_has_nothing_to_report(tmp_path: Path) -> None:
    lib = _processed(tmp_path)
    report = doctor.run(lib, repair=True)
    assert report.ok and _found(report) == {}
    assert list(report.as_dict()) == ["repair", "ok", *doctor.CHECKS]
    lib.close()


def test_a_lost_thumbnail_is_queued_again_and_made(tmp_path: Path) -> None:
    lib = _processed(tmp_path)
    rel = lib.catalog.read("SELECT path FROM thumbnails WHERE size = 'thumb' ORDER BY item_id")
    (lib.root / rel[0][0]).unlink()
    lib.catalog.conn.execute("DELETE FROM thumbnails WHERE item_id = 2 AND size = 'preview'")
    report = doctor.run(lib)
    assert _found(report) == {"thumbnails": (2, 0)} and not report.ok
    assert "thumb missing" in report.checks["thumbnails"].details[0]
    repaired = doctor.run(lib, repair=True)
    assert _found(repaired) == {"thumbnails": (2, 2)} and repaired.ok
    states = lib.catalog.read("SELECT state, count(*) FROM jobs WHERE stage = 'thumbnail'")
    assert [tuple(r) for r in states] == [("queued", 2)]
    run_host_until_idle(lib)
    assert (lib.root / rel[0][0]).is_file()
    assert _found(doctor.run(lib)) == {}
    lib.close()


def _fake_done_job(lib: Library, item_id: int, stage: str) -> int:
    with lib.catalog.write() as conn:
        seq = next_seq(conn)
        return int(
            conn.execute(
                """INSERT INTO jobs (item_id, stage, version, result_version, lane, state,
                                     max_attempts, created_at, finished_at, seq)
                   VALUES (?, ?, '1', '1', 'import', 'done', 3, 0, 0, ?)""",
                (item_id, stage, seq),
            ).lastrowid
            or 0
        )


def test_a_done_embedding_without_its_vector_is_queued_again(tmp_path: Path) -> None:
    import numpy as np

    from engine.vectors import store_vectors

    lib = _processed(tmp_path)
    jobs = [_fake_done_job(lib, item, "embed") for item in (1, 2)]
    with lib.catalog.write() as conn:
        store_vectors(conn, [(1, "m", np.ones(4), "d")], next_seq(conn))
    report = doctor.run(lib)
    assert _found(report) == {"vectors": (1, 0)}
    assert _found(doctor.run(lib, repair=True)) == {"vectors": (1, 1)}
    states = dict(lib.catalog.read("SELECT id, state FROM jobs WHERE stage = 'embed'"))
    assert states == {jobs[0]: "done", jobs[1]: "queued"}
    lib.close()


def test_a_moved_file_is_relinked_from_the_known_folders(tmp_path: Path) -> None:
    lib = _processed(tmp_path, 3)
    (tmp_path / "src" / "deeper").mkdir()
    os.rename(tmp_path / "src" / "1.jpg", tmp_path / "src" / "deeper" / "moved.jpg")
    (tmp_path / "src" / "2.jpg").unlink()  # gone for good
    lib.catalog.conn.execute("UPDATE paths SET missing = 1 WHERE display NOT LIKE '%0.jpg'")
    assert lib.status()["missing_items"] == 2
    report = doctor.run(lib)
    assert _found(report) == {"missing_items": (2, 0)}
    assert any("moved.jpg" in d for d in report.checks["missing_items"].details)
    assert lib.status()["missing_items"] == 2  # checking changes nothing
    repaired = doctor.run(lib, repair=True)
    assert _found(repaired) == {"missing_items": (2, 1)} and not repaired.ok
    assert lib.status()["missing_items"] == 1
    [paths] = [i["paths"] for i in lib.items([2])]
    assert paths == [str(tmp_path / "src" / "deeper" / "moved.jpg")]
    # Re-linked, not re-processed: no new jobs for the item.
    assert (
        lib.catalog.read("SELECT count(*) FROM jobs WHERE item_id = 2 AND state = 'queued'")[0][0]
        == 0
    )
    lib.close()


def test_jobs_left_running_by_a_dead_host_are_recovered(tmp_path: Path) -> None:
    lib = _processed(tmp_path)
    owner = recovery.local_owner_prefix() + "999999"
    lib.catalog.conn.execute(
        "UPDATE jobs SET state = 'running', owner = ?, lease_until = ?, attempts = 1"
        " WHERE stage = 'thumbnail'",
        (owner, time.time() + HOUR),
    )
    with library_lock(lib.root):  # a live host holds the library: its jobs are its own
        report = doctor.run(lib, repair=True)
    assert _found(report) == {}
    assert "worker host is running" in report.checks["stuck_jobs"].details[0]
    assert _found(doctor.run(lib)) == {"stuck_jobs": (2, 0)}
    assert _found(doctor.run(lib, repair=True)) == {"stuck_jobs": (2, 2)}
    rows = lib.catalog.read("SELECT state, suspect FROM jobs WHERE stage = 'thumbnail'")
    assert [tuple(r) for r in rows] == [("queued", 1), ("queued", 1)]
    run_host_until_idle(lib)
    assert _found(doctor.run(lib)) == {}
    lib.close()


def test_imports_left_scanning_by_a_crash_are_swept(tmp_path: Path) -> None:
    lib = _processed(tmp_path)
    old = create_session(lib.catalog, [str(tmp_path / "src")])
    recent = create_session(lib.catalog, [str(tmp_path / "src")])
    lib.catalog.conn.execute(
        "UPDATE sessions SET started_at = started_at - ? WHERE id = ?", (2 * HOUR, old)
    )
    report = doctor.run(lib)
    assert _found(report) == {"scanning_sessions": (1, 0)}
    assert any("scanning now" in d for d in report.checks["scanning_sessions"].details)
    assert _found(doctor.run(lib, repair=True)) == {"scanning_sessions": (1, 1)}
    states = dict(lib.catalog.read("SELECT id, state FROM sessions WHERE id IN (?, ?)",
                                   (old, recent)))  # fmt: skip
    assert states == {old: "processing", recent: "scanning"}
    problems = lib.catalog.read("SELECT reason FROM scan_problems WHERE session_id = ?", (old,))
    assert [r[0] for r in problems] == [doctor.INTERRUPTED_SCAN]
    lib.close()


def test_orphan_files_older_than_the_grace_are_removed(tmp_path: Path) -> None:
    lib = _processed(tmp_path)
    old = time.time() - 2 * HOUR
    orphans = [lib.root / "thumbs" / "zz" / "gone-256.jpg", lib.root / "label-models" / "9/v1.npz"]
    fresh = lib.root / "thumbs" / "zz" / ".tmp-being-written.jpg"
    for path in [*orphans, fresh]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    for path in orphans:
        os.utime(path, (old, old))
    used = [lib.root / r[0] for r in lib.catalog.read("SELECT path FROM thumbnails")]
    for path in used:
        os.utime(path, (old, old))
    assert _found(doctor.run(lib)) == {"orphan_files": (2, 0)}
    assert _found(doctor.run(lib, repair=True)) == {"orphan_files": (2, 2)}
    assert [p.exists() for p in orphans] == [False, False]
    assert fresh.exists() and all(p.is_file() for p in used) and len(used) == 4
    lib.close()


def test_foreign_keys_and_index_damage(tmp_path: Path) -> None:
    lib = _processed(tmp_path)
    lib.close()
    catalog = lib.root / "catalog.db"
    conn = sqlite3.connect(catalog, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("INSERT INTO thumbnails VALUES (99, 'thumb', 'thumbs/x.jpg', 1, 1)")
    # An index whose entries no longer match its table: defined on another column while
    # rows are written, then given its own definition back.
    conn.execute("PRAGMA writable_schema = ON")
    real = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'items_seq'").fetchone()[0]
    conn.execute(
        "UPDATE sqlite_master SET sql = ? WHERE name = 'items_seq'",
        (real.replace("(seq)", "(size)"),),
    )
    conn.close()
    conn = sqlite3.connect(catalog, isolation_level=None)
    conn.execute("UPDATE items SET seq = seq + 1000")
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'items_seq'", (real,))
    conn.close()
    with Library(lib.root) as again:
        again.settings.ocr.enabled = False
        report = doctor.run(again)
        assert report.checks["foreign_keys"].found == 1
        assert report.checks["catalog"].found > 0
        assert any("items_seq" in d for d in report.checks["catalog"].details)
        repaired = doctor.run(again, repair=True)
        assert repaired.checks["catalog"].fixed == repaired.checks["catalog"].found
        assert again.catalog.read("PRAGMA integrity_check")[0][0] == "ok"
        assert repaired.checks["foreign_keys"].fixed == 0  # reported, never guessed at
        assert "restore" not in " ".join(repaired.checks["catalog"].details)


def test_the_doctor_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import main

    lib = _processed(tmp_path)
    (lib.root / str(lib.catalog.read("SELECT path FROM thumbnails LIMIT 1")[0][0])).unlink()
    lib.close()
    where = str(tmp_path / "lib")
    assert main(["--library", where, "doctor", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert (out["ok"], out["repair"], out["thumbnails"]["found"]) == (False, False, 1)
    fixed = run(capsys, "--library", where, "doctor", "--repair", "--json")
    assert isinstance(fixed, dict) and fixed["thumbnails"]["fixed"] == 1 and fixed["ok"]
    assert main(["--library", where, "doctor"]) == 0
    assert "thumbnails" in capsys.readouterr().out
