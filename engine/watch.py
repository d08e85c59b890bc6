"""Watched folders: files added, changed, moved or deleted there reach the catalog by themselves.

The list of watched folders lives in the catalog (`watched`); `add_watch`,
`remove_watch` and `list_watches` edit it. A `FolderWatcher` follows every watched
folder recursively (watchdog: inotify on Linux, falling back to polling where
inotify cannot cover a folder) and, on its own thread:

- collects the paths that events name until they have been quiet for a moment
  (a file being copied sends a create and many modify events), then
- imports what exists (new, changed and moved-in files, new folders) through the
  ordinary importer, which hashes only new or changed files, re-links moved files
  by content hash and makes exact duplicates extra paths of one item, and
- marks what is gone (deleted, moved-out) `missing` in `paths`: catalog rows are
  never deleted, so what the user added to an item is kept for when it comes back.

It only writes catalog rows (the importer queues ledger jobs); whichever worker
host serves the library picks them up. Hidden, system and unsupported files are
ignored as the scanner ignores them, and so is the library folder itself when it
lies inside a watched folder.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import stat
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
    FileSystemMovedEvent,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from engine.importing.formats import is_hidden_or_system, is_supported_name
from engine.importing.importer import ImportSummary, ProgressFn
from engine.importing.scan import FoundFile, display_path, walk
from engine.pipeline.media import offline_folder
from engine.store.db import next_seq

if TYPE_CHECKING:
    from engine.library import Library

log = logging.getLogger("shoebox.watch")

# watchdog warns when a folder created with its parents (mkdir -p) gets its watch
# added twice, once by the parent's recursive walk and once by its own event; the
# second simply replaces the first.
warnings.filterwarnings(
    "ignore", message="Callback with id .* already exists", category=RuntimeWarning
)

# Opened / closed-without-writing events are left out: reading a file (our own
# hashing, the thumbnail stage) must not look like a change.
EVENT_TYPES: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    DirCreatedEvent,
    DirMovedEvent,
    DirDeletedEvent,
]

DEBOUNCE_S = 1.0
MAX_BATCH_DELAY_S = 5.0
REFRESH_INTERVAL_S = 2.0
POLL_INTERVAL_S = 15.0
RESCAN_INTERVAL_S = 3600.0

# The native observer class (inotify on Linux); a module attribute so tests can
# stand in one that fails.
native_observer_factory: Callable[[], BaseObserver] = Observer


@dataclass(frozen=True)
class WatchedFolder:
    id: int
    path: str  # filesystem string (surrogate-escaped where the name is not UTF-8)
    display: str
    added_at: float
    # The import session that `add_watch` ran for a newly added folder; None otherwise.
    session_id: int | None = None

    @property
    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "path": self.display,
            "added_at": self.added_at,
            "exists": self.exists,
            "session_id": self.session_id,
        }


@dataclass(frozen=True)
class WatchState:
    """How a running watcher follows one folder: native events, polling, or not at all
    because the folder is not there (an unplugged drive, say)."""

    path: str
    display: str
    mode: str  # native | polling | unavailable


# -- the list of watched folders ---------------------------------------------------


def normalize(path: str | os.PathLike[str]) -> str:
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def _is_within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _library_folders(lib: Library) -> set[str]:
    root = os.fspath(lib.root)
    return {os.path.abspath(root), os.path.realpath(root)}


def add_watch(
    lib: Library,
    path: str | os.PathLike[str],
    *,
    import_now: bool = True,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> WatchedFolder:
    """Watch a folder (idempotent). A newly added folder is imported once, here,
    unless `import_now` is false (a running FolderWatcher then imports it on its
    own thread when it picks the folder up)."""
    folder = normalize(path)
    if not os.path.exists(folder):
        raise FileNotFoundError(f"There is no folder {display_path(folder)}.")
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"{display_path(folder)} is not a folder.")
    real = os.path.realpath(folder)
    if any(_is_within(f, lib_dir) for f in (folder, real) for lib_dir in _library_folders(lib)):
        raise ValueError("A folder inside the Shoebox library itself cannot be watched.")
    raw = os.fsencode(folder)
    with lib.catalog.write() as conn:
        row = conn.execute(
            "SELECT id, raw, display, added_at FROM watched WHERE raw = ?", (raw,)
        ).fetchone()
        if row is not None:
            return _folder(row)
        now = time.time()
        cur = conn.execute(
            "INSERT INTO watched (raw, display, added_at) VALUES (?, ?, ?)",
            (raw, display_path(folder), now),
        )
        watch_id = int(cur.lastrowid or 0)
    session_id = None
    roots = import_roots(folder, _library_folders(lib), skip_hidden=lib.settings.skip_hidden)
    if import_now and roots:
        session_id = lib.new_session([folder])
        lib.import_paths(roots, session_id=session_id, progress=progress, cancel=cancel)
    return WatchedFolder(watch_id, folder, display_path(folder), now, session_id)


def remove_watch(lib: Library, path: str | os.PathLike[str]) -> bool:
    """Stop watching a folder. Its items stay in the catalog. False if it was not watched."""
    raw = os.fsencode(normalize(path))
    with lib.catalog.write() as conn:
        cur = conn.execute("DELETE FROM watched WHERE raw = ?", (raw,))
        return cur.rowcount > 0


def list_watches(lib: Library) -> list[WatchedFolder]:
    rows = lib.catalog.read("SELECT id, raw, display, added_at FROM watched ORDER BY raw")
    return [_folder(r) for r in rows]


def _folder(row: sqlite3.Row) -> WatchedFolder:
    return WatchedFolder(int(row[0]), os.fsdecode(bytes(row[1])), str(row[2]), float(row[3]))


# -- catalog helpers ---------------------------------------------------------------


def _prefix_params(path: str) -> tuple[bytes, bytes, bytes]:
    base = os.fsencode(path).rstrip(b"/") or b"/"
    return base, base + b"/", base + b"0"  # b"0" sorts right after b"/"


def mark_missing(lib: Library, paths: Iterable[str]) -> int:
    """Mark catalogued paths at or under `paths` missing, if they are really gone.

    Rows are kept (the item's history and the user's work survive); the items get a
    new change sequence number so the GUI refreshes them. Returns how many paths.
    """
    gone: list[tuple[int, int]] = []
    conn = lib.catalog.conn
    watched = [w.path for w in list_watches(lib)]
    for path in paths:
        if _offline(path, watched):
            continue
        rows = conn.execute(
            """SELECT id, raw, item_id FROM paths
               WHERE missing = 0 AND (raw = ? OR (raw > ? AND raw < ?))""",
            _prefix_params(path),
        ).fetchall()
        gone.extend(
            (int(path_id), int(item_id))
            for path_id, raw, item_id in rows
            if not os.path.lexists(os.fsdecode(bytes(raw)))
        )
    if not gone:
        return 0
    with lib.catalog.write() as wconn:
        seq = next_seq(wconn)
        for path_id, item_id in gone:
            wconn.execute("UPDATE paths SET missing = 1 WHERE id = ?", (path_id,))
            wconn.execute("UPDATE items SET seq = ? WHERE id = ?", (seq, item_id))
    return len(gone)


def _offline(path: str, watched: list[str]) -> bool:
    """Is `path` under a watched folder that is itself not there (an unplugged drive)?
    Its files are then offline, not deleted: they are not marked missing. Outside any
    watched folder, a path whose own folder is not there counts as offline too."""
    owners = [w for w in watched if _is_within(path, w)]
    if owners:
        return not all(os.path.isdir(w) for w in owners)
    return offline_folder(path) is not None


def import_roots(folder: str, excluded: set[str], *, skip_hidden: bool) -> list[str]:
    """What to hand the importer for `folder`: the folder itself, or, where an
    excluded folder (the library) lies inside it, its other entries along the way."""
    if any(_is_within(folder, ex) for ex in excluded):
        return []
    if not any(_is_within(ex, folder) for ex in excluded):
        return [folder]
    out: list[str] = []
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return []
    for entry in entries:
        if skip_hidden and is_hidden_or_system(entry.name):
            continue
        try:
            if entry.is_dir(follow_symlinks=True):
                out.extend(import_roots(entry.path, excluded, skip_hidden=skip_hidden))
            elif entry.is_file(follow_symlinks=True) and is_supported_name(entry.name):
                out.append(entry.path)
        except OSError:
            continue
    return out


def needs_import(lib: Library, root: str) -> bool:
    """Would importing `root` change anything? A stat walk that hashes nothing: a
    new or changed file, a known one that came back, or one that is gone."""
    known: dict[bytes, tuple[int, int, bool]] = {
        bytes(raw): (size, mtime_ns, bool(missing))
        for raw, size, mtime_ns, missing in lib.catalog.conn.execute(
            """SELECT raw, size, mtime_ns, missing FROM paths
               WHERE raw = ? OR (raw > ? AND raw < ?)""",
            _prefix_params(root),
        )
    }
    seen: set[bytes] = set()
    for entry in walk([root], skip_hidden=lib.settings.skip_hidden):
        if not isinstance(entry, FoundFile):
            continue
        raw = os.fsencode(entry.path)
        prior = known.get(raw)
        if prior is None or prior != (entry.size, entry.mtime_ns, False):
            return True
        seen.add(raw)
    return any(
        not missing and raw not in seen and not os.path.lexists(os.fsdecode(raw))
        for raw, (_, _, missing) in known.items()
    )


def _unchanged(lib: Library, path: str, st: os.stat_result) -> bool:
    row = lib.catalog.conn.execute(
        "SELECT size, mtime_ns, missing FROM paths WHERE raw = ?", (os.fsencode(path),)
    ).fetchone()
    return row is not None and tuple(row) == (st.st_size, st.st_mtime_ns, 0)


# -- inotify coverage --------------------------------------------------------------


def _inotify_watch_count(observer: BaseObserver) -> int | None:
    """How many inotify watches the observer's inotify instance holds (Linux), or None."""
    if not hasattr(observer, "_inotify_fd"):
        return None
    inotify = observer._inotify_fd
    if inotify is None:
        # watchdog >= 7.1.1 opens its inotify instance on the first schedule().
        return 0
    fd = getattr(inotify, "_inotify_fd", None)
    if not isinstance(fd, int):
        return None
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii", errors="replace") as fh:
            return sum(1 for line in fh if line.startswith("inotify wd:"))
    except OSError:
        return None


def _count_dirs(root: str) -> int:
    """Directories inotify needs a watch for under `root` (as watchdog adds them)."""
    count = 1
    for parent, dirnames, _ in os.walk(root, followlinks=False):
        for name in dirnames:
            full = os.path.join(parent, name)
            if not os.path.islink(full) and os.access(full, os.R_OK):
                count += 1
    return count


# -- the watcher -------------------------------------------------------------------


@dataclass
class WatcherStats:
    batches: int = 0  # imports started by the watcher (one import session each)
    files_imported: int = 0  # files and folders handed to the importer
    marked_missing: int = 0
    errors: int = 0
    last_summary: ImportSummary | None = None


@dataclass
class _Root:
    path: str
    mode: str  # native | polling
    watch: ObservedWatch
    ident: tuple[int, int]


@dataclass
class _Batch:
    roots: list[str] = field(default_factory=list)  # watched folders concerned
    imports: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: FolderWatcher) -> None:
        self._watcher = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        self._watcher._on_event(event)


class FolderWatcher:
    """Follows every watched folder of a library and keeps the catalog in step.

    `start()` returns at once; all work (scheduling, catching up with what changed
    while nobody watched, importing, marking missing) runs on the watcher's own
    thread. The list of folders is re-read every `refresh_interval_s` (and on
    `refresh()`), so folders added or removed by another process are picked up.
    """

    def __init__(
        self,
        lib: Library,
        *,
        debounce_s: float = DEBOUNCE_S,
        max_batch_delay_s: float = MAX_BATCH_DELAY_S,
        refresh_interval_s: float = REFRESH_INTERVAL_S,
        poll_interval_s: float = POLL_INTERVAL_S,
        rescan_on_start: bool = True,
        rescan_interval_s: float | None = RESCAN_INTERVAL_S,
        force_polling: bool = False,
    ) -> None:
        self.lib = lib
        self.debounce_s = debounce_s
        self.max_batch_delay_s = max_batch_delay_s
        self.refresh_interval_s = refresh_interval_s
        self.poll_interval_s = poll_interval_s
        self.rescan_on_start = rescan_on_start
        self.rescan_interval_s = rescan_interval_s
        self.force_polling = force_polling
        self.stats = WatcherStats()
        self._excluded = _library_folders(lib)
        self._handler = _Handler(self)
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}  # path -> monotonic time of its last event
        self._last_event = 0.0
        self._busy = False
        self._wake = threading.Event()
        self._refresh = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._native: BaseObserver | None = None
        self._polling: BaseObserver | None = None
        self._native_failed = False
        self._roots: dict[str, _Root] = {}  # outermost watched folders being followed
        self._absent: set[str] = set()  # watched folders that are not there
        self._owners: list[str] = []  # outermost watched folders, longest first
        self._started_up = threading.Event()

    # -- life cycle ------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the folder watcher is already running")
        self._stop.clear()
        self._started_up.clear()
        self._thread = threading.Thread(target=self._run, name="shoebox-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop watching; an import in progress is cancelled (the next start catches up)."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        self._wake.set()
        thread.join(timeout)
        if thread.is_alive():
            log.warning("the folder watcher did not stop within %s s", timeout)
            return
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> FolderWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def refresh(self) -> None:
        """Re-read the list of watched folders now (after add_watch / remove_watch)."""
        self._refresh.set()
        self._wake.set()

    def states(self) -> list[WatchState]:
        with self._lock:
            out = [WatchState(r.path, display_path(r.path), r.mode) for r in self._roots.values()]
            out += [WatchState(p, display_path(p), "unavailable") for p in self._absent]
        return sorted(out, key=lambda s: s.path)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the folders are being watched and the start-up catch-up is done."""
        return self._started_up.wait(timeout)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no event is waiting to be handled (for tests and scripts)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending and not self._busy and self._started_up.is_set():
                    return True
            time.sleep(0.02)
        return False

    # -- the watcher thread ----------------------------------------------------

    def _run(self) -> None:
        try:
            self._start_observers()
            next_rescan = (
                time.monotonic() + self.rescan_interval_s if self.rescan_interval_s else None
            )
            self._guarded(lambda: self._sync_roots(catch_up=self.rescan_on_start))
            self._started_up.set()
            next_refresh = time.monotonic() + self.refresh_interval_s
            while not self._stop.is_set():
                with self._lock:
                    waiting = bool(self._pending)
                tick = max(0.02, min(self.debounce_s, self.max_batch_delay_s) / 4)
                self._wake.wait(tick if waiting else max(0.02, next_refresh - time.monotonic()))
                self._wake.clear()
                if self._stop.is_set():
                    break
                now = time.monotonic()
                if self._refresh.is_set() or now >= next_refresh:
                    self._refresh.clear()
                    self._guarded(lambda: self._sync_roots(catch_up=True))
                    next_refresh = time.monotonic() + self.refresh_interval_s
                if next_rescan is not None and now >= next_rescan:
                    self._guarded(lambda: self._catch_up(list(self._roots)))
                    next_rescan = time.monotonic() + (self.rescan_interval_s or 0)
                batch = self._take_ready(time.monotonic())
                if batch:
                    self._guarded(functools.partial(self._process, batch))
        except Exception:
            log.exception("the folder watcher stopped after an error")
            self.stats.errors += 1
        finally:
            self._started_up.set()
            self._stop_observers()

    def _guarded(self, fn: Callable[[], None]) -> None:
        with self._lock:
            self._busy = True
        try:
            fn()
        except Exception:
            self.stats.errors += 1
            log.exception("folder watcher: handling changes failed (the next rescan retries)")
        finally:
            with self._lock:
                self._busy = False

    def _start_observers(self) -> None:
        if self.force_polling:
            return
        try:
            native = native_observer_factory()
            native.start()
        except OSError as exc:
            self._native_failed = True
            log.warning(
                "Native file-system events are unavailable (%s); watched folders are polled "
                "every %s s instead.",
                exc,
                self.poll_interval_s,
            )
            return
        self._native = native

    def _stop_observers(self) -> None:
        for observer in (self._native, self._polling):
            if observer is None:
                continue
            try:
                observer.stop()
                observer.join(10)
            except Exception:
                log.exception("stopping a file-system observer failed")
        self._native = self._polling = None
        with self._lock:
            self._roots.clear()
            self._absent.clear()

    # -- which folders ---------------------------------------------------------

    def _wanted(self) -> list[str]:
        """The outermost watched folders (a folder inside another is covered by it)."""
        paths = sorted({w.path for w in list_watches(self.lib)})
        out: list[str] = []
        for p in paths:
            if any(_is_within(p, q) for q in out):
                continue
            if any(_is_within(p, ex) for ex in self._excluded):
                continue
            out.append(p)
        return out

    def _sync_roots(self, *, catch_up: bool) -> None:
        wanted = self._wanted()
        with self._lock:
            self._owners = sorted(wanted, key=len, reverse=True)
        fresh: list[str] = []
        for path in list(self._roots):
            root = self._roots[path]
            ident = _ident(path)
            if path not in wanted or ident != root.ident:
                self._unschedule(root)
                with self._lock:
                    del self._roots[path]
        with self._lock:
            self._absent &= set(wanted)
        for path in wanted:
            if path in self._roots:
                continue
            ident = _ident(path)
            if ident is None:
                if path not in self._absent:
                    log.warning(
                        "Watched folder %s is not there (unplugged?); its items are kept.",
                        display_path(path),
                    )
                with self._lock:
                    self._absent.add(path)
                continue
            root = self._schedule(path, ident)
            with self._lock:
                self._absent.discard(path)
                self._roots[path] = root
            fresh.append(path)
        if fresh and catch_up:
            self._catch_up(fresh)

    def _schedule(self, path: str, ident: tuple[int, int]) -> _Root:
        if self._native is not None:
            before = _inotify_watch_count(self._native)
            try:
                watch = self._native.schedule(
                    self._handler, path, recursive=True, event_filter=EVENT_TYPES
                )
            except OSError as exc:
                log.warning(
                    "Cannot follow %s with native events (%s); polling it every %s s instead. "
                    "On Linux, raising fs.inotify.max_user_watches lifts the limit.",
                    display_path(path),
                    exc,
                    self.poll_interval_s,
                )
            else:
                after = _inotify_watch_count(self._native)
                if before is None or after is None:
                    return _Root(path, "native", watch, ident)
                needed = _count_dirs(path)
                if after - before >= needed:
                    return _Root(path, "native", watch, ident)
                self._native.unschedule(watch)
                log.warning(
                    "The inotify watch limit is exhausted: %s has %d folders but only %d could "
                    "be watched; polling it every %s s instead. Raising "
                    "fs.inotify.max_user_watches lets Shoebox follow it natively.",
                    display_path(path),
                    needed,
                    after - before,
                    self.poll_interval_s,
                )
        if self._polling is None:
            self._polling = PollingObserver(timeout=self.poll_interval_s)
            self._polling.start()
        watch = self._polling.schedule(
            self._handler, path, recursive=True, event_filter=EVENT_TYPES
        )
        return _Root(path, "polling", watch, ident)

    def _unschedule(self, root: _Root) -> None:
        observer = self._native if root.mode == "native" else self._polling
        if observer is None:
            return
        try:
            observer.unschedule(root.watch)
        except (KeyError, OSError):
            log.debug("unscheduling %s failed", root.path, exc_info=True)

    # -- events ------------------------------------------------------------------

    def _on_event(self, event: FileSystemEvent) -> None:
        """On an observer thread: note the paths, nothing else."""
        paths = [event.src_path]
        if isinstance(event, FileSystemMovedEvent):
            paths.append(event.dest_path)
        now = time.monotonic()
        noted = False
        with self._lock:
            for p in paths:
                path = os.fsdecode(p)
                if path and self._relevant(path, event.is_directory):
                    self._pending[path] = now
                    noted = True
            if noted:
                self._last_event = now
        if noted:
            self._wake.set()

    def _relevant(self, path: str, is_dir: bool) -> bool:
        owner = next((r for r in self._owners if _is_within(path, r)), None)
        if owner is None:
            return False
        if any(_is_within(path, ex) for ex in self._excluded):
            return False
        rel = path[len(owner) :].strip(os.sep)
        if (
            rel
            and self.lib.settings.skip_hidden
            and any(is_hidden_or_system(part) for part in rel.split(os.sep))
        ):
            return False
        return is_dir or is_supported_name(os.path.basename(path))

    def _take_ready(self, now: float) -> list[str]:
        """Paths quiet for `debounce_s`, once everything is quiet, or when the oldest
        has waited `max_batch_delay_s` (a long copy still shows progress)."""
        with self._lock:
            if not self._pending:
                return []
            ready = [p for p, t in self._pending.items() if now - t >= self.debounce_s]
            if not ready:
                return []
            quiet = now - self._last_event >= self.debounce_s
            oldest = min(self._pending[p] for p in ready) + self.debounce_s
            if not quiet and now - oldest < self.max_batch_delay_s:
                return []
            for p in ready:
                del self._pending[p]
            self._busy = True  # cleared by _guarded
            return ready

    def _process(self, paths: list[str]) -> None:
        batch = _Batch()
        files: list[str] = []
        dirs: list[str] = []
        # The list may have changed since these events arrived (a folder unwatched a
        # moment ago): act only on paths still inside a watched folder.
        still = [w.path for w in list_watches(self.lib)]
        paths = [p for p in paths if any(_is_within(p, w) for w in still)]
        for path in sorted(set(paths)):
            try:
                st = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                batch.gone.append(path)
                continue
            except OSError as exc:
                log.info("cannot look at %s: %s", display_path(path), exc)
                continue
            if stat.S_ISDIR(st.st_mode):
                dirs.append(path)
            elif (
                stat.S_ISREG(st.st_mode)
                and is_supported_name(os.path.basename(path))
                and not _unchanged(self.lib, path, st)
            ):
                files.append(path)
        outer: list[str] = []
        for d in dirs:  # sorted: a folder comes before what is inside it
            if not any(_is_within(d, o) for o in outer):
                outer.append(d)
        for d in outer:
            for root in import_roots(d, self._excluded, skip_hidden=self.lib.settings.skip_hidden):
                if needs_import(self.lib, root):
                    batch.imports.append(root)
        batch.imports += [f for f in files if not any(_is_within(f, o) for o in outer)]
        if batch.gone:
            self.stats.marked_missing += mark_missing(self.lib, batch.gone)
        if batch.imports:
            with self._lock:
                owners = list(self._owners)
            batch.roots = sorted(
                {next((r for r in owners if _is_within(p, r)), p) for p in batch.imports}
            )
            self._import(batch.roots, batch.imports)

    def _catch_up(self, roots: list[str]) -> None:
        """Bring the catalog in step with folders nobody watched for a while; an import
        session is started only if something changed."""
        skip_hidden = self.lib.settings.skip_hidden
        for root in roots:
            if self._stop.is_set():
                return
            if _being_imported(self.lib, root):
                continue  # the app is importing it right now (a watch just added)
            parts = import_roots(root, self._excluded, skip_hidden=skip_hidden)
            todo = [p for p in parts if needs_import(self.lib, p)]
            if parts != [root]:  # the library lies inside: gone files outside `parts` too
                self.stats.marked_missing += mark_missing(self.lib, [root])
            if todo:
                self._import([root], todo)

    def _import(self, roots: list[str], paths: list[str]) -> None:
        session_id = self.lib.new_session(roots)
        summary = self.lib.import_paths(paths, session_id=session_id, cancel=self._stop)
        self.stats.batches += 1
        self.stats.files_imported += len(paths)
        self.stats.marked_missing += summary.missing
        self.stats.last_summary = summary
        log.info(
            "watched folders: %d new, %d re-linked, %d duplicate, %d missing (session %d)",
            summary.items_new,
            summary.relinked,
            summary.duplicates,
            summary.missing,
            session_id,
        )


RECENT_SCAN_S = 600.0


def _being_imported(lib: Library, root: str) -> bool:
    """Is an import of this folder scanning right now? (Recent ones only: an importer
    that crashed leaves its session 'scanning' forever.)"""
    display = display_path(root)
    rows = lib.catalog.read(
        "SELECT roots FROM sessions WHERE state = 'scanning' AND started_at > ?",
        (time.time() - RECENT_SCAN_S,),
    )
    return any(display in json.loads(r[0]) for r in rows)


def _ident(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        return None
    return (st.st_dev, st.st_ino)
