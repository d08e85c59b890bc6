"""Cataloguing: every supported file becomes a path of an item at once; work is queued.

Hashing is the only per-file cost, and only for new or changed files: a file whose
path, size and mtime are already known is skipped after its `stat`, so re-importing
an unchanged folder is a stat walk. A known hash at a new path is a duplicate (the
item also lives elsewhere) or a move (its old paths are gone): either way the item
is re-linked, never re-processed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from engine.config import Settings
from engine.importing.formats import kind_for, sniff_format
from engine.importing.hashing import hash_file, read_head
from engine.importing.scan import FoundFile, Skipped, display_path, walk
from engine.jobs.ledger import add_jobs_for_item, cancel_session
from engine.jobs.throttle import LIMITS_DIR, RateLimits, parse_limits
from engine.pipeline.registry import StageRegistry
from engine.store.db import Catalog, next_seq

BATCH_FILES = 64
BATCH_SECONDS = 0.25  # commit at least this often so new items show up at once
HASH_THREADS = 2
# A file this large whose first bytes are no photo or PDF is not read through to be
# hashed: no stage could read it, and hashing a 4 GB disk image (or a sparse file's
# holes: 11 s for 4 GB here) would stall the scan. It is listed as a scan problem.
UNRECOGNISED_HASH_LIMIT = 64 * 1024 * 1024
# Files still being written (a copy in progress): one whose size or mtime moved while
# it was hashed, or that was modified in the last QUIET_S and does not end the way its
# format ends (JPEG EOI, PNG IEND, GIF trailer, PDF %%EOF, RIFF size), is not
# catalogued at once. After the scan the importer looks again every SETTLE_POLL_S and
# takes it once its stat held still for a poll and it looks complete or has been
# quiet QUIET_S (then it is a truncated file, and the stages say so); after
# SETTLE_MAX_S it is left as a scan problem. See docs/architecture.md, "Sources that
# change or vanish".
QUIET_S = 2.0
VANISHED_REASON = (
    "The folder disappeared during the import (drive unplugged?). What was found before "
    "is catalogued; import it again when it is back."
)
SETTLE_POLL_S = 0.5
SETTLE_MAX_S = 30.0


@dataclass
class ImportSummary:
    session_id: int
    files_seen: int = 0  # supported regular files found
    items_new: int = 0  # new distinct contents
    duplicates: int = 0  # files whose content was already catalogued at another live path
    relinked: int = 0  # known content found at a new path, old path gone (moved/renamed)
    unchanged: int = 0  # already catalogued at this path, same size and mtime
    skipped: int = 0  # hidden/system files, unsupported types, special files, symlink loops
    unreadable: int = 0  # could not be read at all (see scan_problems)
    changing: int = 0  # changed while being read (still being copied?): left for later
    missing: int = 0  # catalogued paths under the roots that no longer exist
    jobs_queued: int = 0
    failed: int = 0  # items of this import with a failed or dead stage (after waiting)
    cancelled: bool = False
    rate_limited_s: float = 0.0  # seconds hashing waited for a folder's rate limit

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class _Known:
    path_id: int
    item_id: int
    size: int
    mtime_ns: int
    missing: bool


ProgressFn = Callable[[ImportSummary], None]


def create_session(catalog: Catalog, roots: Iterable[str]) -> int:
    with catalog.write() as conn:
        seq = next_seq(conn)
        cur = conn.execute(
            "INSERT INTO sessions (roots, state, started_at, seq) VALUES (?, 'scanning', ?, ?)",
            (json.dumps([display_path(os.path.abspath(r)) for r in roots]), time.time(), seq),
        )
        return int(cur.lastrowid or 0)


class Importer:
    def __init__(self, catalog: Catalog, registry: StageRegistry, settings: Settings) -> None:
        self.catalog = catalog
        self.registry = registry
        self.settings = settings

    def run(
        self,
        roots: list[str],
        *,
        session_id: int | None = None,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> ImportSummary:
        if session_id is None:
            session_id = create_session(self.catalog, roots)
        summary = ImportSummary(session_id=session_id)
        # `[background] folder_limits` holds for cataloguing too: hashing reads every
        # byte of a file, the heaviest read a network share gets from Shoebox.
        folder_limits = parse_limits(self.settings.background.folder_limits, folders=True)
        limits = RateLimits({}, folder_limits, shared_dir=self.catalog.path.parent / LIMITS_DIR)
        # A batch takes about a second at the slowest limit, so items still show up as
        # they are read rather than 64 at a time.
        batch_files = max(
            1, min(BATCH_FILES, int(min(folder_limits.values(), default=BATCH_FILES)))
        )
        read = _Reader(limits, cancel)
        known = self._load_known(roots)
        seen: set[bytes] = set()
        pending: list[FoundFile] = []
        returned: list[bytes] = []  # known paths that were missing and are back, unchanged
        unsettled: list[FoundFile] = []  # still being written: looked at again after the scan
        vanished: set[str] = set()  # roots that disappeared during the scan (unplugged)
        last_flush = time.monotonic()

        with ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="shoebox-hash") as pool:
            for entry in walk(roots, skip_hidden=self.settings.skip_hidden):
                if cancel is not None and cancel.is_set():
                    summary.cancelled = True
                    break
                if isinstance(entry, Skipped):
                    gone_root = (
                        _vanished_root(entry.path, roots) if entry.reason == "unreadable" else None
                    )
                    if gone_root is not None:  # one reason for the root, not one per folder
                        summary.unreadable += 1
                        vanished.add(gone_root)
                    elif entry.reason == "unreadable":
                        summary.unreadable += 1
                        self._problem(session_id, entry.path, f"Cannot read: {entry.detail}.")
                    else:
                        summary.skipped += 1
                    continue
                summary.files_seen += 1
                raw = os.fsencode(entry.path)
                seen.add(raw)
                prior = known.get(raw)
                if (
                    prior is not None
                    and prior.size == entry.size
                    and prior.mtime_ns == entry.mtime_ns
                ):
                    # Same size and mtime: trusted unchanged without hashing, also when it
                    # comes back after being missing (a re-plugged drive).
                    summary.unchanged += 1
                    if prior.missing:
                        returned.append(raw)
                    continue
                pending.append(entry)
                if len(pending) >= batch_files or time.monotonic() - last_flush > BATCH_SECONDS:
                    unsettled += self._catalogue(pending, known, summary, pool, read)
                    pending = []
                    last_flush = time.monotonic()
                    if progress:
                        progress(summary)
            if pending:
                unsettled += self._catalogue(pending, known, summary, pool, read)
            if unsettled and not summary.cancelled:
                self._settle(unsettled, known, summary, pool, read)
            summary.cancelled = bool(cancel is not None and cancel.is_set())
        summary.rate_limited_s = round(limits.waited_s, 3)
        if returned:
            self._mark_returned(returned)
        vanished.update(r for r in map(os.path.abspath, roots) if not os.path.lexists(r))
        for root in sorted(vanished):
            self._problem(session_id, root, VANISHED_REASON)

        if not summary.cancelled:
            summary.missing = self._mark_missing(known, seen, roots)
        else:
            with self.catalog.write() as conn:  # what it queued so far goes too
                cancel_session(conn, session_id, time.time(), self.registry)
        self._finish_session(summary)
        if progress:
            progress(summary)
        return summary

    # -- steps ---------------------------------------------------------------

    def _load_known(self, roots: list[str]) -> dict[bytes, _Known]:
        known: dict[bytes, _Known] = {}
        conn = self.catalog.conn
        for root in roots:
            base = os.fsencode(os.path.abspath(root)).rstrip(b"/")
            rows = conn.execute(
                """SELECT raw, id, item_id, size, mtime_ns, missing FROM paths
                   WHERE raw = ? OR (raw > ? AND raw < ?)""",
                (base, base + b"/", base + b"0"),  # b"0" sorts right after b"/"
            )
            for raw, path_id, item_id, size, mtime_ns, missing in rows:
                known[bytes(raw)] = _Known(path_id, item_id, size, mtime_ns, bool(missing))
        return known

    def _catalogue(
        self,
        files: list[FoundFile],
        known: dict[bytes, _Known],
        summary: ImportSummary,
        pool: ThreadPoolExecutor,
        read: _Reader,
    ) -> list[FoundFile]:
        """Catalogue a batch; returns the files still being written (not catalogued)."""
        hashed = list(pool.map(read, files))
        changing: list[FoundFile] = []
        live_elsewhere = self._live_elsewhere(files, hashed)  # filesystem checks, before locking
        now = time.time()
        linked_here: set[int] = set()  # items given a path in this batch (in-batch duplicates)
        with self.catalog.write() as conn:
            seq = next_seq(conn)
            for found, result in zip(files, hashed, strict=True):
                if result == CHANGING:
                    changing.append(found)
                    continue
                if result == NOT_READ:
                    continue  # cancelled while it waited for its folder's rate limit
                if isinstance(result, str):
                    summary.unreadable += 1
                    conn.execute(
                        "INSERT INTO scan_problems (session_id, display, reason) VALUES (?, ?, ?)",
                        (summary.session_id, display_path(found.path), result),
                    )
                    continue
                digest, head, size = result
                raw = os.fsencode(found.path)
                row = conn.execute("SELECT id FROM items WHERE hash = ?", (digest,)).fetchone()
                if row is None:
                    fmt = sniff_format(head, size)
                    kind = kind_for(fmt, os.path.splitext(found.path)[1].lower())
                    item_id = int(
                        conn.execute(
                            """INSERT INTO items
                                 (hash, kind, format, size, added_at, session_id, seq)
                               VALUES (?, ?, ?, ?, ?, ?, ?)""",
                            (digest, kind, fmt, size, now, summary.session_id, seq),
                        ).lastrowid
                        or 0
                    )
                    summary.items_new += 1
                    summary.jobs_queued += add_jobs_for_item(
                        conn,
                        self.registry,
                        self.settings,
                        item_id,
                        kind,
                        summary.session_id,
                        seq,
                        now,
                    )
                else:
                    item_id = int(row[0])
                    prior = known.get(raw)
                    if prior is not None and prior.item_id == item_id:
                        summary.unchanged += 1  # touched (mtime changed), same content
                    elif item_id in linked_here or live_elsewhere.get(raw, False):
                        summary.duplicates += 1
                    else:
                        summary.relinked += 1
                        conn.execute(  # the old places are gone: it moved
                            "UPDATE paths SET missing = 1 WHERE item_id = ? AND raw != ?",
                            (item_id, raw),
                        )
                    conn.execute("UPDATE items SET seq = ? WHERE id = ?", (seq, item_id))
                conn.execute(
                    """INSERT INTO paths (raw, display, item_id, size, mtime_ns, session_id,
                                          missing, first_seen, last_seen)
                       VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)
                       ON CONFLICT (raw) DO UPDATE SET item_id = excluded.item_id,
                         size = excluded.size, mtime_ns = excluded.mtime_ns, missing = 0,
                         last_seen = excluded.last_seen""",
                    (
                        raw,
                        display_path(found.path),
                        item_id,
                        found.size,
                        found.mtime_ns,
                        summary.session_id,
                        now,
                        now,
                    ),
                )
                known[raw] = _Known(0, item_id, found.size, found.mtime_ns, False)
                linked_here.add(item_id)
            self._write_counters(conn, summary, seq)
        return changing

    def _settle(
        self,
        files: list[FoundFile],
        known: dict[bytes, _Known],
        summary: ImportSummary,
        pool: ThreadPoolExecutor,
        read: _Reader,
    ) -> None:
        """Files still being written, looked at again until they settle (see QUIET_S)."""
        cancel = read.cancel
        last = {f.path: f for f in files}
        deadline = time.monotonic() + SETTLE_MAX_S
        while last and time.monotonic() < deadline and not (cancel and cancel.is_set()):
            time.sleep(SETTLE_POLL_S)
            ready: list[FoundFile] = []
            for path, before in list(last.items()):
                try:
                    st = os.stat(path)
                except OSError:
                    del last[path]  # gone (a copy cancelled): nothing to catalogue
                    continue
                now = FoundFile(path, st.st_size, st.st_mtime_ns)
                last[path] = now
                if (now.size, now.mtime_ns) == (before.size, before.mtime_ns) and (
                    _quiet(now) or looks_complete(path, now.size)
                ):
                    ready.append(now)
            if ready:
                left = {f.path for f in self._catalogue(ready, known, summary, pool, read)}
                for f in ready:
                    if f.path not in left:
                        del last[f.path]
        summary.changing += len(last)
        if cancel is not None and cancel.is_set():
            return  # not "still being written": the import was stopped
        for path in sorted(last):
            self._problem(
                summary.session_id,
                path,
                f"Not catalogued yet: the file was still being written after {SETTLE_MAX_S:g} s"
                " (a copy in progress?); import it again when the copy is done.",
            )

    def _live_elsewhere(
        self, files: list[FoundFile], hashed: list[tuple[str, bytes, int] | str]
    ) -> dict[bytes, bool]:
        """For files whose content is already catalogued: does it still exist at another
        path? Read-only queries and `stat`s, done before the write lock is taken so a slow
        disk never stalls the workers' writes."""
        conn = self.catalog.conn
        answers: dict[bytes, bool] = {}
        for found, result in zip(files, hashed, strict=True):
            if isinstance(result, str):
                continue
            raw = os.fsencode(found.path)
            others = conn.execute(
                """SELECT p.raw FROM paths p JOIN items i ON i.id = p.item_id
                   WHERE i.hash = ? AND p.missing = 0 AND p.raw != ?""",
                (result[0], raw),
            ).fetchall()
            answers[raw] = any(os.path.isfile(os.fsdecode(bytes(o[0]))) for o in others)
        return answers

    def _mark_returned(self, raws: list[bytes]) -> None:
        with self.catalog.write() as conn:
            seq = next_seq(conn)
            for raw in raws:
                row = conn.execute(
                    "UPDATE paths SET missing = 0 WHERE raw = ? RETURNING item_id", (raw,)
                ).fetchone()
                if row:
                    conn.execute("UPDATE items SET seq = ? WHERE id = ?", (seq, row[0]))

    def _mark_missing(self, known: dict[bytes, _Known], seen: set[bytes], roots: list[str]) -> int:
        """Known paths under the roots that are gone; not under a root that is itself not
        there (an unplugged drive: its files are offline, not deleted)."""
        absent = [
            os.fsencode(os.path.abspath(r)).rstrip(b"/")
            for r in roots
            if not os.path.lexists(os.path.abspath(r))
        ]
        gone = [
            raw
            for raw, k in known.items()
            if raw not in seen
            and not k.missing
            and not any(raw == a or raw.startswith(a + b"/") for a in absent)
            and not os.path.lexists(os.fsdecode(raw))
        ]
        if not gone:
            return 0
        with self.catalog.write() as conn:
            seq = next_seq(conn)
            for raw in gone:
                row = conn.execute(
                    "UPDATE paths SET missing = 1 WHERE raw = ? RETURNING item_id", (raw,)
                ).fetchone()
                if row:
                    conn.execute("UPDATE items SET seq = ? WHERE id = ?", (seq, row[0]))
        return len(gone)

    def _problem(self, session_id: int, path: str, reason: str) -> None:
        with self.catalog.write() as conn:
            conn.execute(
                "INSERT INTO scan_problems (session_id, display, reason) VALUES (?, ?, ?)",
                (session_id, display_path(path), reason),
            )

    @staticmethod
    def _write_counters(conn: sqlite3.Connection, summary: ImportSummary, seq: int) -> None:
        conn.execute(
            """UPDATE sessions SET files_seen = ?, items_new = ?, duplicates = ?, relinked = ?,
                   unchanged = ?, skipped = ?, unreadable = ?, seq = ? WHERE id = ?""",
            (
                summary.files_seen,
                summary.items_new,
                summary.duplicates,
                summary.relinked,
                summary.unchanged,
                summary.skipped,
                summary.unreadable,
                seq,
                summary.session_id,
            ),
        )

    def _finish_session(self, summary: ImportSummary) -> None:
        with self.catalog.write() as conn:
            seq = next_seq(conn)
            self._write_counters(conn, summary, seq)
            state = "cancelled" if summary.cancelled else "processing"
            conn.execute(
                "UPDATE sessions SET state = ?, scanned_at = ? WHERE id = ? AND state = 'scanning'",
                (state, time.time(), summary.session_id),
            )


CHANGING = "changing"
NOT_READ = "not read"


class _Cancelled(Exception):
    pass


class _Reader:
    """Hashes a file once its folder's rate limit lets it (a hash thread waits, checking
    for cancel every quarter second); NOT_READ if the import is cancelled meanwhile."""

    def __init__(self, limits: RateLimits, cancel: threading.Event | None) -> None:
        self.limits = limits
        self.cancel = cancel

    def _check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise _Cancelled

    def __call__(self, found: FoundFile) -> tuple[str, bytes, int] | str:
        if self.limits:
            try:
                self._check()
                self.limits.wait("", [found.path], True, self._check)
            except _Cancelled:
                return NOT_READ
        return _hash_or_error(found)


def _hash_or_error(found: FoundFile) -> tuple[str, bytes, int] | str:
    """(hash, head, size), or a reason it cannot be read, or CHANGING when the file changed
    while it was read (still being copied): cataloguing it now would record half a file."""
    try:
        if (
            found.size > UNRECOGNISED_HASH_LIMIT
            and sniff_format(read_head(found.path), found.size) == "unknown"
        ):
            return (
                f"Not catalogued: {_size_text(found.size)} whose contents are not a photo or "
                "PDF (the name says otherwise); files over "
                f"{UNRECOGNISED_HASH_LIMIT >> 20} MB that Shoebox cannot recognise are not read."
            )
        result = hash_file(found.path)
        after = os.stat(found.path)
        if (after.st_size, after.st_mtime_ns) != (found.size, found.mtime_ns) or (
            result[2] != found.size
        ):
            return CHANGING
        if not _quiet(found) and not looks_complete(found.path, found.size, result[1]):
            return CHANGING  # written a moment ago and not ending as its format ends
        return result
    except FileNotFoundError:
        return "The file disappeared while it was being catalogued."
    except PermissionError:
        return "Shoebox is not allowed to read this file (permission denied)."
    except OSError as exc:
        return f"Cannot read the file: {exc.strerror or exc}."


def _quiet(found: FoundFile) -> bool:
    """Not modified for QUIET_S: no copy is writing it now."""
    return time.time() - found.mtime_ns / 1e9 >= QUIET_S


def looks_complete(path: str, size: int, head: bytes | None = None) -> bool:
    """Does the file end the way its format ends? (A copy cut short, or in progress,
    does not.) Formats without a trailer to check (TIFF, HEIF, BMP) count as complete;
    so does anything that cannot be read here (the hash or the stages will say)."""
    try:
        with open(path, "rb") as fh:
            head = head if head is not None else fh.read(16)
            fh.seek(max(0, size - 1024))
            tail = fh.read(1024)
    except OSError:
        return True
    fmt = sniff_format(head, size)
    trimmed = tail.rstrip(b"\x00\r\n ")  # padding some cameras and tools append
    if fmt == "jpeg":
        return trimmed.endswith(b"\xff\xd9")
    if fmt == "png":
        return b"IEND" in tail[-16:]
    if fmt == "gif":
        return trimmed.endswith(b"\x3b")
    if fmt == "pdf":
        return b"%%EOF" in tail
    if fmt == "webp":
        return int.from_bytes(head[4:8], "little") + 8 <= size
    return True


def _vanished_root(path: str, roots: list[str]) -> str | None:
    """The import root containing `path`, if that root is no longer there."""
    for root in map(os.path.abspath, roots):
        if (path == root or path.startswith(root.rstrip(os.sep) + os.sep)) and not os.path.lexists(
            root
        ):
            return root
    return None


def _size_text(size: int) -> str:
    if size >= 1 << 30:
        return f"{size / (1 << 30):.1f} GB"
    return f"{size / (1 << 20):.0f} MB"
