"""One read of a session's counts (`engine.progress.session_counts`) behind the import
summary, the sessions list and the whole-queue bar; and read models that work on a
catalog with or without the job core's columns (skipped, planned, kind, task jobs,
per-job progress)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import progress
from engine.jobs import ledger
from engine.library import Library
from engine.store.db import Catalog
from tests.engine.helpers import jpeg, run_host_until_idle


def _folder(tmp_path: Path, good: int = 3) -> Path:
    src = tmp_path / "photos"
    for i in range(good):
        jpeg(src / f"p{i}.jpg", i)
    (src / "bad.jpg").write_bytes(b"")  # every stage fails: one failed item, two failed jobs
    return src


def test_import_summary_and_sessions_json_come_from_one_read(
    library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = library.import_paths([_folder(tmp_path)]).session_id
    run_host_until_idle(library)
    reads: list[object] = []
    real = progress.session_counts

    def counting(*args: Any, **kwargs: Any) -> list[progress.SessionCounts]:
        reads.append(kwargs.get("session_ids"))
        return real(*args, **kwargs)

    monkeypatch.setattr(progress, "session_counts", counting)
    summary = library.session_summary(sid).as_dict()
    [listed] = [s for s in library.sessions() if s["id"] == sid]
    assert reads == [[sid], None]  # both built from the same function

    assert summary["jobs_queued"] == listed["jobs_total"] == 8
    assert summary["files_seen"] == listed["files"] == 4
    assert summary["items_new"] == listed["items_new"] == 4
    assert summary["failed"] == 1  # items: the bad file's two failed jobs are one item
    assert listed["jobs"]["failed"] == listed["failed"] == 2
    assert listed["jobs"] == {s: listed["jobs"][s] for s in ledger.STATES}
    assert (listed["kind"], listed["state"], listed["remaining"]) == ("import", "done", 0)
    assert not summary["cancelled"]


def test_skipped_jobs_are_finished_like_failed_ones(library: Library, tmp_path: Path) -> None:
    if "skipped" not in ledger.STATES:
        pytest.skip("the ledger has no skipped state yet")
    sid = library.import_paths([_folder(tmp_path, good=1)]).session_id
    conn = library.catalog.conn
    now = time.time()
    ids = [r[0] for r in conn.execute("SELECT id FROM jobs WHERE session_id = ?", (sid,))]
    with library.catalog.write() as w:
        w.execute(
            "UPDATE jobs SET state = 'done', started_at = ?, finished_at = ? WHERE id = ?",
            (now - 2, now - 1, ids[0]),
        )
        w.execute(
            "UPDATE jobs SET state = 'skipped', started_at = ?, finished_at = ? WHERE id != ?",
            (now - 2, now - 1, ids[0]),
        )
    [s] = progress.session_progress(conn, session_ids=[sid], now=now)
    assert (s.state, s.total, s.finished, s.remaining, s.eta_s) == ("done", 4, 4, 0, 0.0)
    assert (s.done, s.skipped) == (1, 3) and s.as_dict()["jobs"]["skipped"] == 3
    assert not progress.queue_progress(conn, now=now).busy
    assert "skipped" in progress.FINISHED_STATES
    assert progress._recent_finished(conn, now, 30.0)[sid].finished == 4
    assert library.status()["lanes"]["import"]["skipped"] == 3


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A catalog with every migration applied (the job core's columns included)."""
    cat = Catalog(tmp_path / "catalog.db")
    yield cat.conn
    cat.close()


def _session(conn: sqlite3.Connection, **columns: object) -> int:
    values = {"roots": json.dumps(["/photos"]), "state": "processing", "started_at": 1.0}
    values.update(columns)
    values["seq"] = 1
    names = ", ".join(values)
    cur = conn.execute(
        f"INSERT INTO sessions ({names}) VALUES ({','.join('?' * len(values))})",
        tuple(values.values()),
    )
    return int(cur.lastrowid or 0)


def _jobs(
    conn: sqlite3.Connection, session_id: int, lane: str, states: list[str], **columns: object
) -> list[int]:
    ids = []
    for state in states:
        item = conn.execute(
            """INSERT INTO items (hash, kind, format, size, added_at, seq)
               VALUES (hex(randomblob(8)), 'photo', 'jpeg', 1, 1, 1)"""
        ).lastrowid
        conn.execute(
            """INSERT INTO paths (raw, display, item_id, size, mtime_ns, first_seen, last_seen)
               VALUES (?, ?, ?, 1, 1, 1, 1)""",
            (f"/photos/{item}.jpg".encode(), f"/photos/{item}.jpg", item),
        )
        values: dict[str, object] = {
            "item_id": item,
            "stage": "thumbnail",
            "version": "1",
            "lane": lane,
            "session_id": session_id,
            "state": state,
            "max_attempts": 3,
            "created_at": 1.0,
            "seq": 1,
            "attempts": 1 if state != "queued" else 0,
            "started_at": 10.0 if state != "queued" else None,
        }
        values.update(columns)
        cur = conn.execute(
            f"INSERT INTO jobs ({', '.join(values)}) VALUES ({','.join('?' * len(values))})",
            tuple(values.values()),
        )
        ids.append(int(cur.lastrowid or 0))
    return ids


def test_an_import_reads_the_same_on_either_catalog(catalog: sqlite3.Connection) -> None:
    sid = _session(catalog, files_seen=3, items_new=3, scanned_at=2.0)
    _jobs(catalog, sid, "import", ["done", "running", "queued"])
    [c] = progress.session_counts(catalog, failed_items=True)
    assert (c.kind, c.planned, c.planning, c.lanes) == ("import", None, False, ("import",))
    assert (c.created, c.total, c.finished, c.remaining, c.failed_items) == (3, 3, 1, 2, 0)
    [s] = progress.session_progress(catalog, now=100.0)
    data = s.as_dict()
    assert (data["kind"], data["jobs_total"], data["jobs_finished"], data["remaining"]) == (
        "import",
        3,
        1,
        2,
    )
    q = progress.queue_progress(catalog, now=100.0)
    assert (q.total, q.finished, q.remaining, q.active_imports) == (3, 1, 2, 1)
    [r] = progress.running_jobs(catalog)
    assert r.file_name.endswith(".jpg") and r.task_key is None
    assert (r.progress_done, r.progress_total, r.progress_note, r.fraction) == (
        None,
        None,
        None,
        None,
    )
    assert {"progress_done", "progress_total", "progress_note"} <= r.as_dict().keys()


def test_a_running_job_reports_its_own_progress(catalog: sqlite3.Connection) -> None:
    sid = _session(catalog, scanned_at=2.0)
    _jobs(
        catalog,
        sid,
        "import",
        ["running"],
        progress_done=3,
        progress_total=12,
        progress_note="page 3 of 12",
    )
    [r] = progress.running_jobs(catalog)
    assert (r.progress_done, r.progress_total, r.progress_note) == (3, 12, "page 3 of 12")
    assert r.fraction == pytest.approx(0.25)
    assert r.as_dict()["progress_note"] == "page 3 of 12"


def test_a_reindex_counts_its_planned_jobs_while_it_creates_them(
    catalog: sqlite3.Connection,
) -> None:
    sid = _session(catalog, kind="reindex", planned=10, roots=json.dumps(["Re-index: thumbnail"]))
    ids = _jobs(catalog, sid, "batch", ["done", "done", "failed", "queued"])
    for job_id in ids[:3]:
        catalog.execute("UPDATE jobs SET finished_at = 95 WHERE id = ?", (job_id,))
    [s] = progress.session_progress(catalog, now=100.0, window_s=30)
    assert (s.kind, s.state, s.planned, s.total, s.finished, s.remaining) == (
        "reindex",
        "processing",
        10,
        10,
        3,
        7,
    )
    assert s.name == "Re-index: thumbnail" and s.rate == pytest.approx(3 / 30)
    assert s.eta_s == pytest.approx(7 / 0.1)  # the planned jobs are still to do
    q = progress.queue_progress(catalog, now=100.0, window_s=30)
    assert (q.total, q.finished, q.remaining, q.active_imports) == (10, 3, 7, 1)

    catalog.execute("UPDATE lanes SET paused = 1 WHERE name = 'batch'")  # its lane
    [s] = progress.session_progress(catalog, now=100.0)
    assert s.lane_paused and s.eta_s is None
    catalog.execute("UPDATE lanes SET paused = 0")

    # every job created (some items needed none): the total is what was created
    catalog.execute("UPDATE sessions SET scanned_at = 99 WHERE id = ?", (sid,))
    [s] = progress.session_progress(catalog, now=100.0)
    assert (s.total, s.remaining, s.state) == (4, 1, "processing")
    catalog.execute("UPDATE jobs SET state = 'done' WHERE id = ?", (ids[3],))
    [s] = progress.session_progress(catalog, now=100.0)
    assert (s.state, s.total, s.finished, s.eta_s) == ("done", 4, 4, 0.0)
    assert not progress.queue_progress(catalog, now=100.0).busy


def test_task_jobs_are_listed_without_an_item(library: Library) -> None:
    conn = library.catalog.conn
    with library.catalog.write() as w:
        for state in ("running", "failed"):
            w.execute(
                """INSERT INTO jobs (item_id, task_key, stage, version, lane, state, attempts,
                                     max_attempts, error, created_at, started_at, seq,
                                     progress_done, progress_total)
                   VALUES (NULL, ?, 'train', '1', 'learning', ?, 1, 3, 'no examples', 1, 2, 1,
                           1, 4)""",
                (f"label:{state}", state),
            )
    [r] = progress.running_jobs(conn)
    assert (r.item_id, r.task_key, r.path, r.file_name, r.fraction) == (
        None,
        "label:running",
        "",
        "",
        0.25,
    )
    [p] = progress.problem_jobs(conn)
    assert (p.item_id, p.task_key, p.error) == (None, "label:failed", "no examples")
