"""Watched folders: changes on disk reach the catalog without a manual import."""

from __future__ import annotations

import errno
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import engine.watch as watch_mod
from engine.jobs.host import WorkerHost
from engine.library import Library
from engine.watch import FolderWatcher, add_watch, list_watches, remove_watch
from tests.engine.helpers import jpeg

# watchdog's harmless notice when `mkdir -p` makes it add a folder's watch twice
# (engine.watch silences it at import; pytest resets warning filters per test).
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")


def fast_watcher(lib: Library, *, poll_interval_s: float = 15.0) -> FolderWatcher:
    """Short debounce and refresh, so tests take fractions of a second."""
    return FolderWatcher(
        lib,
        debounce_s=0.1,
        max_batch_delay_s=0.5,
        refresh_interval_s=0.2,
        poll_interval_s=poll_interval_s,
    )


def make_jpeg(path: Path, seed: int, size: tuple[int, int] = (96, 64)) -> Path:
    """A small JPEG whose content depends on `seed`."""
    return jpeg(path, seed, size)


def until(cond: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def item_at(lib: Library, path: Path) -> dict[str, Any] | None:
    for item in lib.items():
        if str(path) in item["paths"]:
            return item
    return None


def missing_paths(lib: Library) -> list[str]:
    return sorted(p for i in lib.items() for p in i["missing_paths"])


def job_count(lib: Library) -> int:
    return int(lib.catalog.read("SELECT count(*) FROM jobs")[0][0])


@pytest.fixture
def watched(tmp_path: Path) -> Path:
    folder = tmp_path / "watched"
    folder.mkdir()
    return folder


@pytest.fixture
def watcher(library: Library, watched: Path) -> Iterator[FolderWatcher]:
    add_watch(library, watched)
    w = fast_watcher(library)
    w.start()
    assert w.wait_ready(10)
    yield w
    w.stop()


def test_add_remove_list_round_trip(library: Library, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    make_jpeg(folder / "a.jpg", 1)
    make_jpeg(folder / "sub" / "b.jpg", 2)
    added = add_watch(library, folder)
    assert added.path == str(folder) and added.session_id is not None
    assert len(library.items()) == 2  # adding a watch imports the folder once
    assert library.session_summary(added.session_id).items_new == 2
    again = add_watch(library, str(folder) + "/")  # idempotent, no second import
    assert again.id == added.id and again.session_id is None
    [listed] = list_watches(library)
    assert (listed.id, listed.path, listed.exists) == (added.id, str(folder), True)
    assert listed.as_dict()["path"] == str(folder)
    assert remove_watch(library, folder) is True
    assert remove_watch(library, folder) is False
    assert list_watches(library) == []
    assert len(library.items()) == 2  # items stay when a folder is no longer watched

    with pytest.raises(FileNotFoundError):
        add_watch(library, tmp_path / "nowhere")
    with pytest.raises(NotADirectoryError):
        add_watch(library, folder / "a.jpg")
    with pytest.raises(ValueError):
        add_watch(library, library.root / "thumbs")


def test_copied_file_is_catalogued_and_processed(
    library: Library, watcher: FolderWatcher, watched: Path, tmp_path: Path
) -> None:
    src = make_jpeg(tmp_path / "elsewhere" / "new.jpg", 10)
    shutil.copy(src, watched / "new.jpg")
    make_jpeg(watched / "deep" / "er" / "two.jpg", 11)  # a new sub-folder too
    item = until(lambda: item_at(library, watched / "new.jpg"))
    until(lambda: item_at(library, watched / "deep" / "er" / "two.jpg"))
    assert {s["state"] for s in item["stages"].values()} == {"queued"}
    assert job_count(library) == 4

    host = WorkerHost(library.root, library.catalog, library.registry, library.settings)
    host.start()
    try:
        host.wait_idle(timeout=60)
    finally:
        host.stop()
    [done] = library.items([item["id"]])
    assert done["stages"]["metadata"]["state"] == "done"
    assert done["stages"]["thumbnail"]["state"] == "done"
    assert done["metadata"] is not None and done["thumbnails"]
    assert watcher.wait_idle()
    # Reading the files (hashing, thumbnails) is not a change: nothing new was queued.
    assert job_count(library) == 4


def test_deleted_file_is_marked_missing_not_forgotten(
    library: Library, watched: Path, tmp_path: Path
) -> None:
    make_jpeg(watched / "keep.jpg", 20)
    gone = make_jpeg(watched / "sub" / "gone.jpg", 21)
    make_jpeg(watched / "old" / "x.jpg", 22)
    add_watch(library, watched)
    [gone_item] = [i for i in library.items() if str(gone) in i["paths"]]
    seq = library.seq()
    with fast_watcher(library) as w:
        assert w.wait_ready(10)
        gone.unlink()
        shutil.rmtree(watched / "old")
        until(lambda: missing_paths(library) == [str(watched / "old" / "x.jpg"), str(gone)])
    assert len(library.items()) == 3  # nothing left the catalog
    [item] = library.items([gone_item["id"]])
    assert item["paths"] == [] and item["missing_paths"] == [str(gone)]
    assert gone_item["id"] in library.changes_since(seq).item_ids  # the GUI sees it
    assert item_at(library, watched / "keep.jpg") is not None


def test_renamed_and_moved_files_are_relinked(
    library: Library, watcher: FolderWatcher, watched: Path
) -> None:
    make_jpeg(watched / "a.jpg", 30)
    first = until(lambda: item_at(library, watched / "a.jpg"))
    make_jpeg(watched / "dir" / "b.jpg", 31)
    second = until(lambda: item_at(library, watched / "dir" / "b.jpg"))
    jobs = job_count(library)
    sessions = len(library.sessions())

    os.rename(watched / "a.jpg", watched / "renamed.jpg")
    os.rename(watched / "dir", watched / "moved-dir")  # a folder moved within the tree
    renamed = until(lambda: item_at(library, watched / "renamed.jpg"))
    moved = until(lambda: item_at(library, watched / "moved-dir" / "b.jpg"))
    assert renamed["id"] == first["id"] and moved["id"] == second["id"]
    assert renamed["paths"] == [str(watched / "renamed.jpg")]
    until(
        lambda: missing_paths(library) == [str(watched / "a.jpg"), str(watched / "dir" / "b.jpg")]
    )
    assert library.items([first["id"]])[0]["missing_paths"] == [str(watched / "a.jpg")]
    assert job_count(library) == jobs  # re-linked, not re-processed
    assert len(library.items()) == 2
    assert len(library.sessions()) > sessions


def test_ignores_hidden_unsupported_and_the_library_itself(tmp_path: Path) -> None:
    watched = tmp_path / "home"
    make_jpeg(watched / "photo.jpg", 40)
    lib = Library(watched / "Shoebox Library")  # the library lies inside the watched folder
    try:
        make_jpeg(lib.root / "thumbs" / "not-a-photo.jpg", 41)
        added = add_watch(lib, watched)
        assert [i["paths"] for i in lib.items()] == [[str(watched / "photo.jpg")]]
        assert added.session_id is not None
        with fast_watcher(lib) as w:
            assert w.wait_ready(10)
            make_jpeg(watched / ".hidden.jpg", 42)
            make_jpeg(watched / ".cache" / "inside.jpg", 43)
            make_jpeg(watched / "@eaDir" / "nas.jpg", 44)
            (watched / "notes.txt").write_text("not a photo")
            make_jpeg(lib.root / "thumbs" / "another.jpg", 45)
            make_jpeg(watched / "sub" / "real.jpg", 46)  # the marker that events were handled
            until(lambda: item_at(lib, watched / "sub" / "real.jpg"))
            assert w.wait_idle()
        paths = sorted(p for i in lib.items() for p in i["paths"])
        assert paths == [str(watched / "photo.jpg"), str(watched / "sub" / "real.jpg")]
    finally:
        lib.close()


def test_catch_up_on_start_and_no_empty_sessions(library: Library, watched: Path) -> None:
    make_jpeg(watched / "a.jpg", 50)
    make_jpeg(watched / "b.jpg", 51)
    add_watch(library, watched)
    sessions = len(library.sessions())
    # Nothing changed: starting a watcher starts no import session.
    with fast_watcher(library) as w:
        assert w.wait_ready(10) and w.wait_idle()
        assert [s.mode for s in w.states()] == ["native"]
    assert len(library.sessions()) == sessions
    # Changed while nobody watched: caught up at start.
    (watched / "a.jpg").unlink()
    make_jpeg(watched / "c.jpg", 52)
    with fast_watcher(library) as w:
        assert w.wait_ready(10)
    assert item_at(library, watched / "c.jpg") is not None
    assert len(library.sessions()) == sessions + 1
    missing = [p for i in library.items() for p in i["missing_paths"]]
    assert missing == [str(watched / "a.jpg")]


def test_a_file_still_being_written_is_imported_once(
    library: Library, watched: Path, tmp_path: Path
) -> None:
    data = make_jpeg(tmp_path / "big.jpg", 60, size=(400, 300)).read_bytes()
    with FolderWatcher(library, debounce_s=0.3, max_batch_delay_s=5.0) as w:
        add_watch(library, watched, import_now=False)
        w.refresh()
        until(lambda: w.states() and w.wait_idle(0.1))
        with open(watched / "big.jpg", "wb") as fh:
            step = len(data) // 6 + 1
            for i in range(0, len(data), step):
                fh.write(data[i : i + step])
                fh.flush()
                time.sleep(0.1)  # shorter than the debounce: still one change
        item = until(lambda: item_at(library, watched / "big.jpg"))
        assert w.wait_idle()
    assert len(library.items()) == 1
    assert item["size"] == len(data)


def test_added_while_running_and_removed(library: Library, watched: Path) -> None:
    with fast_watcher(library) as w:
        assert w.wait_ready(10)
        assert w.states() == []
        make_jpeg(watched / "before.jpg", 70)
        add_watch(library, watched, import_now=False)  # e.g. from the CLI, another process
        until(lambda: item_at(library, watched / "before.jpg"))  # imported on the watcher thread
        make_jpeg(watched / "after.jpg", 71)
        until(lambda: item_at(library, watched / "after.jpg"))
        remove_watch(library, watched)
        until(lambda: w.states() == [])
        make_jpeg(watched / "ignored.jpg", 72)
        time.sleep(0.4)
        assert w.wait_idle()
    assert item_at(library, watched / "ignored.jpg") is None


class _FailingObserver:
    """A native observer whose watches all fail, as when inotify's limit is exhausted."""

    def __init__(self) -> None:
        from watchdog.observers.polling import PollingObserver

        self._inner = PollingObserver()

    def start(self) -> None:
        self._inner.start()

    def schedule(self, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    def stop(self) -> None:
        self._inner.stop()

    def join(self, timeout: float | None = None) -> None:
        self._inner.join(timeout)


def test_falls_back_to_polling_when_native_watches_fail(
    library: Library,
    watched: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(watch_mod, "native_observer_factory", _FailingObserver)
    add_watch(library, watched)
    with fast_watcher(library, poll_interval_s=0.1) as w:
        assert w.wait_ready(10)
        assert [s.mode for s in w.states()] == ["polling"]
        make_jpeg(watched / "polled.jpg", 80)
        until(lambda: item_at(library, watched / "polled.jpg"))
    assert "polling it every" in caplog.text


def test_falls_back_to_polling_when_inotify_covers_only_part_of_the_tree(
    library: Library,
    watched: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("counts inotify watches")
    # watchdog skips sub-folders it cannot watch silently; the watcher counts them.
    monkeypatch.setattr(watch_mod, "_count_dirs", lambda root: 10**9)
    add_watch(library, watched)
    with fast_watcher(library, poll_interval_s=0.1) as w:
        assert w.wait_ready(10)
        assert [s.mode for s in w.states()] == ["polling"]
        make_jpeg(watched / "sub" / "polled.jpg", 90)
        until(lambda: item_at(library, watched / "sub" / "polled.jpg"))
    assert "inotify watch limit is exhausted" in caplog.text
