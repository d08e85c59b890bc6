from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from engine.importing.scan import FoundFile, Skipped, walk
from engine.library import Library
from tests.conftest import REPO, cli_env
from tests.engine.helpers import jpeg, run_without_root_override


def _found(entries: list[FoundFile | Skipped]) -> list[str]:
    return sorted(os.path.basename(e.path) for e in entries if isinstance(e, FoundFile))


def test_walk_skips_hidden_special_and_loops_without_hanging(tmp_path: Path) -> None:
    jpeg(tmp_path / "a" / "one.jpg", 1)
    jpeg(tmp_path / "a" / ".hidden.jpg", 2)
    jpeg(tmp_path / ".git" / "inside.jpg", 3)
    (tmp_path / "a" / "notes.txt").write_text("x")
    (tmp_path / "Thumbs.db").write_bytes(b"x")
    os.mkfifo(tmp_path / "a" / "pipe.jpg")
    os.symlink("..", tmp_path / "a" / "loop")
    entries = list(walk([str(tmp_path)]))
    assert _found(entries) == ["one.jpg"]
    reasons = {os.path.basename(e.path): e.reason for e in entries if isinstance(e, Skipped)}
    assert reasons["pipe.jpg"] == "special"
    assert reasons[".hidden.jpg"] == "hidden"
    assert reasons[".git"] == "hidden"
    assert reasons["notes.txt"] == "unsupported"
    assert reasons["Thumbs.db"] == "system"
    assert "loop" in reasons.values()


def test_non_utf8_names_survive_the_catalog(library: Library, tmp_path: Path) -> None:
    src = tmp_path / "src"
    name = os.fsdecode(b"caf\xe9.jpg")
    jpeg(src / name, 7)
    summary = library.import_paths([src])
    assert summary.items_new == 1
    raw = library.catalog.read("SELECT raw FROM paths")[0][0]
    assert bytes(raw).endswith(b"caf\xe9.jpg")
    assert library.items()[0]["paths"][0].endswith("caf\ufffd.jpg")


def test_duplicates_become_paths_of_one_item(library: Library, tmp_path: Path) -> None:
    src = tmp_path / "src"
    jpeg(src / "a" / "x.jpg", 1)
    (src / "b").mkdir()
    shutil.copy(src / "a" / "x.jpg", src / "b" / "x-copy.jpg")
    jpeg(src / "a" / "y.jpg", 2)
    summary = library.import_paths([src])
    assert (summary.files_seen, summary.items_new, summary.duplicates) == (3, 2, 1)
    items = library.items()
    assert sorted(len(i["paths"]) for i in items) == [1, 2]
    jobs = library.catalog.read("SELECT count(*) FROM jobs")[0][0]
    assert jobs == 4  # two stages per distinct item, none for the duplicate


def _record_hashes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, str]]:
    """Each file the importer reads through, with when it started (time.monotonic)."""
    import time

    import engine.importing.importer as importer

    calls: list[tuple[float, str]] = []
    real = importer.hash_file

    def hash_file(path: str) -> tuple[str, bytes, int]:
        calls.append((time.monotonic(), path))
        return real(path)

    monkeypatch.setattr(importer, "hash_file", hash_file)
    return calls


def test_reimport_of_unchanged_folder_hashes_nothing(
    library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    for i in range(10):
        jpeg(src / f"{i}.jpg", i)
    library.import_paths([src])
    hashed = _record_hashes(monkeypatch)
    again = library.import_paths([src])
    assert hashed == [], "hashed again"
    assert (again.files_seen, again.unchanged, again.items_new, again.jobs_queued) == (10, 10, 0, 0)


def test_moved_file_is_relinked_not_reprocessed(library: Library, tmp_path: Path) -> None:
    src = tmp_path / "src"
    jpeg(src / "old" / "p.jpg", 1)
    library.import_paths([src])
    item_id = library.items()[0]["id"]
    with library.catalog.write() as conn:  # pretend it was processed
        conn.execute("UPDATE jobs SET state = 'done'")
    (src / "new").mkdir()
    os.rename(src / "old" / "p.jpg", src / "new" / "renamed.jpg")
    summary = library.import_paths([src])
    assert (summary.relinked, summary.items_new, summary.missing) == (1, 0, 1)
    [item] = library.items()
    assert item["id"] == item_id
    assert item["paths"] == [str(src / "new" / "renamed.jpg")]
    assert item["missing_paths"] == [str(src / "old" / "p.jpg")]
    states = {s["state"] for s in item["stages"].values()}
    assert states == {"done"}


def test_changed_file_becomes_new_content(library: Library, tmp_path: Path) -> None:
    src = tmp_path / "src"
    jpeg(src / "p.jpg", 1)
    library.import_paths([src])
    jpeg(src / "p.jpg", 2)  # edited in another program
    os.utime(src / "p.jpg", ns=(1, 1_000_000_000))
    summary = library.import_paths([src])
    assert summary.items_new == 1
    items = library.items()
    assert len(items) == 2
    assert [len(i["paths"]) for i in items] == [0, 1]  # the old content is kept, without a path


DENIED = "Shoebox is not allowed to read this file (permission denied)."


def test_bad_files_are_items_and_unreadable_files_are_reported(tmp_path: Path) -> None:
    """chmod 000 before the import: reported, not catalogued. After the import, before
    the work: its jobs fail with the reason. The import and the work run as a child that
    meets file permissions even when the tests run as root (who reads anything)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "empty.jpg").write_bytes(b"")
    (src / "text.jpg").write_text("not an image")
    jpeg(src / "fine.jpg", 1)
    locked = jpeg(src / "locked.jpg", 3)
    later = jpeg(src / "later.jpg", 4)
    locked.chmod(0)
    library_dir = tmp_path / "library"

    def shoebox(*args: str) -> str:
        argv = [sys.executable, "-m", "engine.cli", "--library", str(library_dir), *args]
        done = run_without_root_override(argv, cwd=REPO, env=cli_env())
        assert done.returncode == 0, f"shoebox {' '.join(args)}: {done.stderr[-2000:]}"
        return done.stdout

    try:
        summary = json.loads(shoebox("import", "--json", str(src)))
        later.chmod(0)  # readable when catalogued, not when processed
        shoebox("work", "--until-idle")
    finally:
        locked.chmod(0o644)
        later.chmod(0o644)
    assert summary["unreadable"] == 1, summary
    library = Library(library_dir)
    try:
        problems = [
            (os.path.basename(display), reason)
            for display, reason in library.catalog.read("SELECT display, reason FROM scan_problems")
        ]
        assert problems == [("locked.jpg", DENIED)]
        items = {os.path.basename(i["paths"][0]): i for i in library.items()}
        assert sorted(items) == ["empty.jpg", "fine.jpg", "later.jpg", "text.jpg"]
        assert items["empty.jpg"]["format"] == "empty"
        assert items["text.jpg"]["format"] == "unknown"
        jobs: dict[str, list[tuple[str, str | None]]] = {}
        for display, state, error in library.catalog.read(
            """SELECT p.display, j.state, j.error FROM jobs j JOIN paths p ON p.item_id = j.item_id
               ORDER BY j.stage"""
        ):
            jobs.setdefault(os.path.basename(display), []).append((state, error))
        assert jobs["later.jpg"] and all(job == ("failed", DENIED) for job in jobs["later.jpg"]), (
            jobs["later.jpg"]
        )
        assert jobs["fine.jpg"] and all(job == ("done", None) for job in jobs["fine.jpg"]), jobs[
            "fine.jpg"
        ]
        for name in ("empty.jpg", "text.jpg"):  # failed too, for their own reasons
            assert all(state == "failed" and error != DENIED for state, error in jobs[name])
    finally:
        library.close()


def test_duplicates_in_one_batch_are_duplicates_not_moves(library: Library, tmp_path: Path) -> None:
    src = tmp_path / "src"
    first = jpeg(src / "a.jpg", 1)
    for name in ("b.jpg", "c.jpg"):
        shutil.copy(first, src / name)
    summary = library.import_paths([src])
    assert (summary.items_new, summary.duplicates, summary.relinked) == (1, 2, 0)
    [item] = library.items()
    assert len(item["paths"]) == 3 and item["missing_paths"] == []


def test_file_changing_while_read_is_left_for_later(
    library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    growing = jpeg(src / "copying.jpg", 1)
    jpeg(src / "done.jpg", 2)
    import engine.importing.importer as importer

    real_hash = importer.hash_file

    def hash_while_appending(path: str | os.PathLike[str]) -> tuple[str, bytes, int]:
        result = real_hash(path)
        if str(path).endswith("copying.jpg"):
            with open(growing, "ab") as fh:
                fh.write(b"more bytes arriving")
        return result

    monkeypatch.setattr(importer, "hash_file", hash_while_appending)
    monkeypatch.setattr(importer, "SETTLE_MAX_S", 1.0)  # it keeps growing: give up soon
    summary = library.import_paths([src])
    assert (summary.items_new, summary.changing) == (1, 1)
    monkeypatch.setattr(importer, "hash_file", real_hash)
    again = library.import_paths([src])  # complete now: taken
    assert (again.items_new, again.unchanged) == (1, 1)


def test_cancelled_import_cancels_its_queued_jobs(library: Library, tmp_path: Path) -> None:
    import threading

    src = tmp_path / "src"
    for i in range(5):
        jpeg(src / f"{i}.jpg", i)
    cancel = threading.Event()
    calls = 0

    def progress(_: object) -> None:
        nonlocal calls
        calls += 1
        cancel.set()

    import engine.importing.importer as importer

    old = importer.BATCH_FILES
    importer.BATCH_FILES = 2
    try:
        summary = library.import_paths([src], progress=progress, cancel=cancel)
    finally:
        importer.BATCH_FILES = old
    assert summary.cancelled and 0 < summary.items_new < 5
    states = {r[0] for r in library.catalog.read("SELECT state FROM jobs")}
    assert states == {"cancelled"}
    assert library.sessions()[0]["state"] == "cancelled"


def test_missing_file_that_returns_unchanged_is_not_rehashed(
    library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    path = jpeg(src / "p.jpg", 1)
    library.import_paths([src])
    hidden = tmp_path / "elsewhere.jpg"
    os.rename(path, hidden)
    assert library.import_paths([src]).missing == 1
    assert library.status()["missing_items"] == 1
    os.rename(hidden, path)  # the drive is back
    import engine.importing.importer as importer

    monkeypatch.setattr(importer, "_hash_or_error", lambda found: pytest.fail("rehashed"))
    again = library.import_paths([src])
    assert again.unchanged == 1
    assert library.status()["missing_items"] == 0


def test_a_folder_rate_limit_holds_while_cataloguing_and_other_folders_run_free(
    library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    share, local = tmp_path / "nas", tmp_path / "home"
    for i in range(31):
        jpeg(share / "2020" / f"{i}.jpg", i)
        jpeg(local / f"{i}.jpg", 100 + i)
    library.settings.background.folder_limits = f"{share}=20"
    calls = _record_hashes(monkeypatch)

    free = library.import_paths([local])
    assert (free.items_new, free.rate_limited_s) == (31, 0.0)
    calls.clear()
    limited = library.import_paths([share])
    assert limited.items_new == 31 and not limited.cancelled
    times = sorted(t for t, _ in calls)
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert rate <= 20 * 1.1, rate  # never faster than the limit (beyond 10%)
    assert rate >= 20 / 2, rate  # and not starved
    assert limited.rate_limited_s > 1.0


def test_cancel_stops_an_import_waiting_for_its_folders_rate_limit(
    library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    src = tmp_path / "nas"
    for i in range(40):
        jpeg(src / f"{i}.jpg", i)
    library.settings.background.folder_limits = f"{src}=1"
    calls = _record_hashes(monkeypatch)
    cancel = threading.Event()

    def progress(summary: object) -> None:
        cancel.set()  # after the first batch: one file, at one a second

    began = time.monotonic()
    summary = library.import_paths([src], progress=progress, cancel=cancel)
    took = time.monotonic() - began
    assert summary.cancelled
    assert len(calls) == summary.items_new <= 2  # nothing read after the cancel
    assert took < 5, took  # not the 40 s the limit would take to read them all
    problems = library.catalog.read("SELECT reason FROM scan_problems")
    assert problems == []  # files left unread are not the user's problem
    assert library.sessions()[0]["state"] == "cancelled"
