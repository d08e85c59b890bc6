"""Disk full: the library lives on a small tmpfs that the test fills.

A job that cannot write its thumbnail, or whose result the catalog cannot take, is
handed back (no attempt charged) and the host pauses; `work --until-idle` and
`import --wait` stop with a clear message and exit 4; the catalog stays intact;
once space is freed, `work --until-idle` finishes everything, with no duplicates
(engine/diskspace.py, docs/architecture.md "Disk full").

Mounting needs CAP_SYS_ADMIN (root here and in CI); where it is refused the tests
skip and say so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.diskspace import SpaceReserve
from engine.jobs.supervisor import EXIT_DISK_FULL
from tests.reliability.harness import Harness, seeds

TMPFS_MB = 16


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs for the library."""
    lib = tmp_path / "lib"
    lib.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m", "tmpfs", str(lib)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs CAP_SYS_ADMIN): {proc.stderr.strip()}")
    try:
        yield lib
    finally:
        subprocess.run(["umount", "-l", str(lib)], check=False)


def fill(library: Path, leave: int) -> Path:
    """A filler file that leaves about `leave` bytes free on the library's disk."""
    filler = library / "filler.bin"
    free = shutil.disk_usage(library).free
    with filler.open("wb") as f:
        f.truncate(0)
        chunk = b"\0" * (1 << 20)
        todo = max(0, free - leave)
        while todo > 0:  # written, not sparse: tmpfs counts pages actually used
            n = f.write(chunk[: min(len(chunk), todo)])
            todo -= n
    return filler


def _no_job_blamed(h: Harness) -> None:
    blamed = h.read("SELECT stage, state, error FROM jobs WHERE state IN ('failed', 'dead')")
    assert not blamed, f"jobs failed for the disk: {blamed} {h.tag}"
    charged = h.read("SELECT stage, attempts FROM jobs WHERE state = 'queued' AND attempts > 0")
    assert not charged, f"attempts charged for the disk: {charged} {h.tag}"
    integrity = h.read("PRAGMA integrity_check")[0][0]
    assert integrity == "ok", f"{integrity} {h.tag}"


def _finish_after_freeing(h: Harness, filler: Path, distinct: int, kind: str) -> None:
    snaps = [h.snapshot()]
    filler.unlink()
    stats = h.work_clean()
    assert stats["failed"] == 0 and stats["dead"] == 0, f"{stats} {h.tag}"
    h.next_start_clean()
    check = h.check(distinct, snaps)
    h.record(kind, check, faults=1)
    h.assert_ok(check)


def test_thumbnails_hit_enospc_work_pauses_and_finishes_after_space_is_freed(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real ENOSPC path (no early pause: SHOEBOX_MIN_FREE_MB=0)."""
    monkeypatch.setenv("SHOEBOX_MIN_FREE_MB", "0")
    h = Harness(small_disk.parent, seeds((31,))[0], library=small_disk)
    distinct = h.build_source(40)
    h.import_source()
    assert SpaceReserve(small_disk).ensure()  # as the app's first start leaves it
    filler = fill(small_disk, 600 << 10)  # room for a few thumbnails, not 43
    proc = h.work()
    assert proc.returncode == EXIT_DISK_FULL, f"{proc.returncode}: {proc.stderr[-2000:]} {h.tag}"
    assert "is full" in proc.stderr and "free some space" in proc.stderr, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["disk_full"], proc.stdout
    done = h.count("state = 'done'")
    assert done < h.total_jobs(), f"everything was done: the disk was not full {h.tag}"
    # The reserve made room to hand every running job back: none is left for recovery.
    assert h.count("state = 'running'") == 0, h.read("SELECT * FROM jobs WHERE state='running'")
    _no_job_blamed(h)
    _finish_after_freeing(h, filler, distinct, "disk_full_thumbnails")


def test_below_the_mark_nothing_starts_and_status_says_why(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under SHOEBOX_MIN_FREE_MB free the host starts nothing; `status --json` (asked
    of the disk, not of the host) carries the message."""
    monkeypatch.setenv("SHOEBOX_MIN_FREE_MB", "4")
    h = Harness(small_disk.parent, seeds((32,))[0], library=small_disk)
    distinct = h.build_source(12)
    h.import_source()
    filler = fill(small_disk, 1 << 20)
    env = h.env()
    status = json.loads(h.cli("status", "--json", env=env).stdout)
    assert status["queue"]["disk_full"] and "is full" in status["queue"]["disk_full"], status
    proc = h.work(env)
    assert proc.returncode == EXIT_DISK_FULL, f"{proc.returncode}: {proc.stderr[-2000:]} {h.tag}"
    assert h.count("state = 'done'") == 0, f"work started on a full disk {h.tag}"
    _no_job_blamed(h)
    _finish_after_freeing(h, filler, distinct, "disk_full_below_mark")


def test_the_catalog_fills_during_an_import_and_the_same_import_goes_on(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan's own catalog writes hit SQLITE_FULL: a clear message, exit 4, the
    catalog intact; the same import after freeing space catalogues everything once."""
    monkeypatch.setenv("SHOEBOX_MIN_FREE_MB", "0")
    h = Harness(small_disk.parent, seeds((33,))[0], library=small_disk)
    distinct = h.build_source(400, duplicates=5)
    # A first, small import creates the catalog; then the disk fills.
    first = h.source / "d0"
    assert h.cli("import", str(first), "--json").returncode == 0
    first_items = h.read("SELECT count(*) FROM items")[0][0]
    filler = fill(small_disk, 200 << 10)
    proc = h.cli("import", str(h.source), "--wait", "--json")
    assert proc.returncode == EXIT_DISK_FULL, f"{proc.returncode}: {proc.stderr[-2000:]} {h.tag}"
    assert "is full" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    filler.unlink()  # (even a reader needs room for the WAL index)
    integrity = h.read("PRAGMA integrity_check")[0][0]
    assert integrity == "ok", integrity
    partial = h.read("SELECT count(*) FROM items")[0][0]
    # It failed while cataloguing (some of the second import is in), not at opening.
    assert partial > first_items, f"{partial} items, {first_items} before {proc.stderr[-500:]}"
    again = h.cli("import", str(h.source), "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    items = h.read("SELECT count(*) FROM items")[0][0]
    assert partial < items, f"the disk never filled: {partial} of {items} {h.tag}"
    assert items == distinct, f"{items} items for {distinct} distinct files {h.tag}"
    stats = h.work_clean()
    assert stats["failed"] == 0 and stats["dead"] == 0, stats
    h.next_start_clean()
    check = h.check(distinct, [])
    h.record("disk_full_catalog", check, faults=1)
    h.assert_ok(check)


def test_disk_full_errors_are_recognised() -> None:
    import errno
    import sqlite3

    from engine.diskspace import DiskFullError, is_disk_full_error, library_full

    assert is_disk_full_error(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full_error(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_disk_full_error(sqlite3.OperationalError("database or disk is full"))
    assert is_disk_full_error(DiskFullError("x"))
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("saving failed") from inner
    except RuntimeError as outer:
        assert is_disk_full_error(outer)
    assert not is_disk_full_error(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full_error(sqlite3.OperationalError("database is locked"))
    os.environ.pop("SHOEBOX_MIN_FREE_MB", None)
    assert library_full(Path("/")) is None or "is full" in str(library_full(Path("/")))


def test_a_long_running_host_pauses_and_resumes_by_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's host (no --until-idle) does not exit on a full disk: it starts
    nothing while the disk is below the mark, the status line says why, and it
    finishes the work by itself once there is room (free space simulated)."""
    from engine import diskspace, progress
    from engine.jobs.host import WorkerHost
    from engine.library import Library
    from tests.engine.helpers import jpeg

    free = {"bytes": 1 << 20}
    monkeypatch.setattr(diskspace, "free_bytes", lambda path: free["bytes"])
    monkeypatch.delenv("SHOEBOX_MIN_FREE_MB", raising=False)  # the shipped 64 MiB mark
    for i in range(6):
        jpeg(tmp_path / "src" / f"p{i}.jpg", i)
    lib = Library(tmp_path / "lib")
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    try:
        lib.import_paths([tmp_path / "src"])
        host.start()
        host.check_disk(force=True)
        assert host.disk_full and "is full (1.0 MB free)" in host.disk_full
        assert host.feed_once() == 0
        with pytest.raises(diskspace.DiskFullError):
            host.wait_idle(stop_when_disk_full=True, timeout=10)
        line = progress.summary_text(progress.queue_progress(lib.catalog.conn))
        assert line.startswith("Paused at 0 of 12 · The disk that holds the library"), line
        assert lib.catalog.read("SELECT count(*) FROM jobs WHERE state = 'done'")[0][0] == 0
        free["bytes"] = 50 << 30
        host.wait_idle(timeout=30)  # the feeder's own check resumes it
        assert host.disk_full is None
        assert (lib.root / diskspace.RESERVE_NAME).stat().st_size == diskspace.RESERVE_BYTES
    finally:
        host.stop()
        lib.close()
    with Library(tmp_path / "lib") as again:
        states = dict(again.catalog.read("SELECT state, count(*) FROM jobs GROUP BY state"))
    assert states == {"done": 12}, states
