"""Progress read models (engine/progress.py) over real imports processed by a worker host."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine import progress
from engine.jobs import ledger
from engine.library import Library
from engine.store.db import next_seq
from tests.engine.helpers import jpeg, run_host_until_idle

GOOD = 5


def _folder(tmp_path: Path, good: int = GOOD) -> Path:
    src = tmp_path / "photos"
    for i in range(good):
        jpeg(src / f"p{i}.jpg", i)
    (src / "bad.jpg").write_bytes(b"")  # zero bytes: every stage fails permanently
    return src


def _imported(library: Library, tmp_path: Path) -> int:
    return library.import_paths([_folder(tmp_path)]).session_id


def test_lane_counts_equal_status_lanes_before_and_after_processing(
    library: Library, tmp_path: Path
) -> None:
    _imported(library, tmp_path)
    conn = library.catalog.conn

    def as_status() -> dict[str, dict[str, object]]:
        return {lane: c.as_dict() for lane, c in progress.lane_counts(conn).items()}

    assert as_status() == library.status()["lanes"]
    assert progress.lane_counts(conn)["import"].queued == 2 * (GOOD + 1)

    library.pause("batch")
    run_host_until_idle(library)
    lanes = progress.lane_counts(conn)
    assert as_status() == library.status()["lanes"]
    assert list(lanes) == ["interactive", "import", "batch", "learning"]
    assert (lanes["import"].done, lanes["import"].failed, lanes["import"].queued) == (
        2 * GOOD,
        2,
        0,
    )
    assert lanes["batch"].paused and not lanes["import"].paused


def test_session_progress_counts_and_state(library: Library, tmp_path: Path) -> None:
    sid = _imported(library, tmp_path)
    conn = library.catalog.conn
    [before] = progress.session_progress(conn)
    assert (before.id, before.state, before.total, before.finished) == (sid, "processing", 12, 0)
    assert (before.queued, before.remaining, before.files, before.items_new) == (12, 12, 6, 6)
    assert before.name == "photos" and before.roots == [str(tmp_path / "photos")]
    assert before.eta_s is None  # nothing finished yet: no rate, no estimate
    assert before.active and before.fraction == 0.0

    run_host_until_idle(library)
    [after] = progress.session_progress(conn)
    assert (after.state, after.total, after.finished) == ("done", 12, 12)
    assert (after.done, after.failed, after.dead, after.remaining) == (10, 2, 0, 0)
    assert after.eta_s == 0.0 and after.fraction == 1.0 and not after.active
    # the same numbers as `shoebox sessions --json`
    [cli] = library.sessions()
    assert cli["jobs_total"] == after.total and cli["jobs_finished"] == after.finished
    assert cli["jobs"]["failed"] == after.failed


def test_rate_and_eta_from_finished_at_over_a_sliding_window(
    library: Library, tmp_path: Path
) -> None:
    sid = _imported(library, tmp_path)
    conn = library.catalog.conn
    now = 1_000_000.0
    ids = [r[0] for r in conn.execute("SELECT id FROM jobs ORDER BY id")]

    def finish(job_id: int, started: float, finished: float) -> None:
        with library.catalog.write() as w:  # one transaction per finish, as workers do
            w.execute(
                "UPDATE jobs SET state='done', started_at=?, finished_at=?, seq=? WHERE id=?",
                (started, finished, next_seq(w), job_id),
            )

    # 2 jobs finished long ago, then 6 in the last 10 s (they started 12 s ago), 4 to go
    for job_id in ids[6:8]:
        finish(job_id, now - 500, now - 400)
    for k, job_id in enumerate(ids[:6]):
        finish(job_id, now - 12, now - 10 + k)
    [s] = progress.session_progress(conn, now=now, window_s=30)
    assert s.state == "processing" and s.finished == 8 and s.remaining == 4
    assert s.rate == pytest.approx(6 / 12)  # span starts at the first start, not 30 s ago
    assert s.eta_s == pytest.approx(4 / 0.5)
    q = progress.queue_progress(conn, now=now, window_s=30)
    assert (q.total, q.finished, q.remaining, q.active_imports) == (12, 8, 4, 1)
    assert q.rate == pytest.approx(0.5) and q.eta_s == pytest.approx(8.0)
    # a window that has moved past every finish: no rate, no estimate
    [later] = progress.session_progress(conn, now=now + 100, window_s=30)
    assert later.rate == 0.0 and later.eta_s is None
    # pausing the import (or its lane) removes the estimate
    library.pause_session(sid)
    [paused] = progress.session_progress(conn, now=now, window_s=30)
    assert paused.paused and paused.eta_s is None
    assert progress.queue_progress(conn, now=now).paused


def test_queue_progress_and_summary_text(library: Library, tmp_path: Path) -> None:
    conn = library.catalog.conn
    assert progress.summary_text(progress.queue_progress(conn)).startswith("Library empty")
    _imported(library, tmp_path)
    q = progress.queue_progress(conn)
    assert (q.items, q.total, q.finished, q.queued, q.busy, q.paused) == (6, 12, 0, 12, True, False)
    assert progress.summary_text(q) == "Processing 0 of 12"

    library.pause()
    q = progress.queue_progress(conn)
    assert q.paused and progress.summary_text(q) == "Paused · 0 of 12"
    library.resume()

    run_host_until_idle(library)
    q = progress.queue_progress(conn)
    assert not q.busy and q.total == 0 and q.failed == 2
    assert progress.summary_text(q) == "All done · 6 items · 2 failed"


def test_problem_jobs_show_the_bad_file_and_its_reason_paged(
    library: Library, tmp_path: Path
) -> None:
    _imported(library, tmp_path)
    run_host_until_idle(library)
    conn = library.catalog.conn
    problems = progress.problem_jobs(conn)
    assert len(problems) == progress.problem_count(conn) == 2
    assert {p.stage for p in problems} == {"metadata", "thumbnail"}
    for p in problems:
        assert (p.file_name, p.state, p.attempts) == ("bad.jpg", "failed", 1)
        assert p.error == "The file is empty (0 bytes)."
        assert p.path == str(tmp_path / "photos" / "bad.jpg")
    page2 = progress.problem_jobs(conn, limit=1, offset=1)
    assert [p.job_id for p in page2] == [problems[1].job_id]
    assert progress.problem_jobs(conn, states=("dead",)) == []
    assert progress.problem_count(conn, states=("dead",)) == 0
    assert progress.problem_count(conn, lane="batch") == 0

    # retry puts them back to queued; they leave the list
    assert library.retry(job_ids=[problems[0].job_id]) == 1
    assert progress.problem_count(conn) == 1
    assert progress.lane_counts(conn)["import"].queued == 1
    [s] = progress.session_progress(conn)
    assert s.state == "processing" and s.remaining == 1


def test_running_jobs_lists_the_item_file_and_stage(library: Library, tmp_path: Path) -> None:
    _imported(library, tmp_path)
    conn = library.catalog.conn
    assert progress.running_jobs(conn) == []
    now = time.time()
    with library.catalog.write() as w:
        [(job_id, token)] = ledger.take_for_dispatch(w, "import", 1, now)
        assert ledger.claim(w, job_id, token, "test", now, 60) is not None
    [r] = progress.running_jobs(conn)
    assert r.job_id == job_id and r.attempts == 1 and r.started_at == pytest.approx(now)
    assert r.lane == "import" and r.stage in ("metadata", "thumbnail")
    assert r.file_name.endswith(".jpg") and r.as_dict()["file_name"] == r.file_name
    assert progress.lane_counts(conn)["import"].running == 1


def test_tracker_bounds_the_rate_query_and_agrees_with_a_full_scan(
    library: Library, tmp_path: Path
) -> None:
    _imported(library, tmp_path)
    conn = library.catalog.conn
    clock = [1_000_000.0]
    tracker = progress.ProgressTracker(window_s=10, clock=lambda: clock[0])
    first = tracker.queue(conn)
    seq_at_start = library.seq()
    assert tracker._samples[0] == (clock[0], seq_at_start)
    clock[0] += 20  # more than a window later: the first sample becomes the floor
    ids = [r[0] for r in conn.execute("SELECT id FROM jobs ORDER BY id LIMIT 3")]
    with library.catalog.write() as w:
        seq = next_seq(w)
        for job_id in ids:
            w.execute(
                "UPDATE jobs SET state='done', started_at=?, finished_at=?, seq=? WHERE id=?",
                (clock[0] - 4, clock[0] - 1, seq, job_id),
            )
    tracked = tracker.queue(conn)
    scanned = progress.queue_progress(conn, now=clock[0], window_s=10)
    assert first.rate == 0.0
    assert tracked.rate == pytest.approx(scanned.rate) == pytest.approx(3 / 4)
    # the rate query read only rows changed after the sample a window old
    assert tracker._floor(conn, clock[0]) == seq_at_start
    clock[0] += 12
    assert tracker._floor(conn, clock[0]) == seq > seq_at_start
    assert len(tracker._samples) <= 3
    fresh = progress.ProgressTracker(window_s=10, clock=lambda: clock[0])
    assert fresh._floor(conn, clock[0]) == 0  # no sample a window old yet: full scan
    [s] = tracker.sessions(conn)
    assert s.finished == 3


def test_words() -> None:
    assert progress.format_eta(None) == ""
    assert progress.format_eta(0.2) == "almost done"
    assert progress.format_eta(42) == "about 40 s left"
    assert progress.format_eta(125) == "about 2 min left"
    assert progress.format_eta(3 * 3600) == "about 3 h left"
    assert progress.format_rate(38.2) == "38/s"
    assert progress.format_rate(2.46) == "2.5/s"
    assert progress.format_rate(0.05) == "3.0/min"
    q = progress.QueueProgress(
        items=5000,
        total=5000,
        finished=1234,
        queued=3700,
        running=66,
        failed=0,
        waiting=0,
        skipped=0,
        active_imports=1,
        paused=False,
        rate=38.0,
        eta_s=99.0,
    )
    assert progress.summary_text(q) == "Processing 1,234 of 5,000 · 38/s · about 2 min left"


def test_rate_ignores_cancelled_jobs_and_stops_at_old_finishes(
    library: Library, tmp_path: Path
) -> None:
    sid = _imported(library, tmp_path)
    conn = library.catalog.conn
    now = 2_000_000.0
    ids = [r[0] for r in conn.execute("SELECT id FROM jobs ORDER BY id")]
    with library.catalog.write() as w:  # one old batch of finishes (e.g. a recovery)
        seq = next_seq(w)
        w.execute(
            "UPDATE jobs SET state='done', started_at=?, finished_at=?, seq=? WHERE id <= ?",
            (now - 900, now - 800, seq, ids[3]),
        )
    with library.catalog.write() as w:
        w.execute(
            "UPDATE jobs SET state='done', started_at=?, finished_at=?, seq=? WHERE id = ?",
            (now - 8, now - 4, next_seq(w), ids[4]),
        )
    library.cancel_session(sid)  # the rest: cancelled just now, which is no throughput
    with library.catalog.write() as w:
        w.execute("UPDATE jobs SET finished_at = ? WHERE state = 'cancelled'", (now - 1,))
    q = progress.queue_progress(conn, now=now, window_s=30)
    assert q.total == 0 and not q.busy  # the cancelled import has nothing left to do
    [s] = progress.session_progress(conn, now=now, window_s=30)
    assert (s.state, s.done, s.cancelled, s.eta_s) == ("cancelled", 5, 7, None)
    recent = progress._recent_finished(conn, now, 30, 0)
    assert recent == {sid: progress._Recent(1, now - 8)}


def test_rate_query_reads_only_the_window_through_its_index(library: Library) -> None:
    """A "retry all" touches every job in one transaction; the rate query must still read
    only what finished in the last 30 s (an index range), not walk the whole ledger."""
    conn = library.catalog.conn
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        assert progress._recent_finished(conn, 1_000.0, 30.0) == {}
    finally:
        conn.set_trace_callback(None)
    [query] = [s for s in statements if "FROM jobs" in s]
    plan = " ".join(str(tuple(r)) for r in conn.execute("EXPLAIN QUERY PLAN " + query))
    assert "jobs_finished" in plan, plan


def test_rate_query_skips_waiting_jobs_in_its_index(library: Library, tmp_path: Path) -> None:
    """Jobs waiting for a model or a source folder carry a `finished_at`; a library
    full of them (offline, 200,000 in the last 30 s) made every rate read walk them on
    the GUI thread. The index holds only the ends a rate counts."""
    sid = _imported(library, tmp_path)
    conn = library.catalog.conn
    now = 2_000_000.0
    ids = [r[0] for r in conn.execute("SELECT id FROM jobs ORDER BY id")]
    with library.catalog.write() as w:
        seq = next_seq(w)
        w.execute(
            "UPDATE jobs SET state='waiting', finished_at=?, seq=? WHERE id > ?",
            (now - 2, seq, ids[2]),
        )
        w.execute(
            "UPDATE jobs SET state='done', started_at=?, finished_at=?, seq=? WHERE id <= ?",
            (now - 10, now - 5, seq, ids[2]),
        )
    spelled = "state IN (" + ", ".join(f"'{s}'" for s in progress.FINISHED_STATES) + ")"
    assert spelled == progress.FINISHED_CONDITION
    [index_sql] = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'jobs_finished'"
    ).fetchone()
    assert index_sql.endswith("WHERE " + progress.FINISHED_CONDITION), index_sql
    assert progress._recent_finished(conn, now, 30) == {sid: progress._Recent(3, now - 10)}
