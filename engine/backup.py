"""Backups of `catalog.db`, and restoring one (docs/architecture.md, "Backups").

A backup is a copy made with SQLite's backup API from a connection of its own, in
one step: one read snapshot, so the copy is consistent while the app and workers
keep writing (WAL: readers never block the writer). It is written to a temporary
name, fsynced and renamed, so a half-written backup never exists under a backup's
name. Backups live in `<library>/backups/`, named

    catalog-<kind>-<UTC time>-v<schema>-s<seq>.db

with `kind` one of `daily`, `migration` (before a schema migration), `manual`
(`shoebox backup`) and `restore` (the catalog as it was before a restore). Each kind
keeps its newest `KEEP[kind]`; `shoebox backup --to DIR` writes outside the
library and is never rotated.

Restoring copies the backup *into* the live catalog with the backup API: one write
transaction, so a crash mid-way leaves the old catalog, and a process that still
has the catalog open sees the restored content (a file rename would leave it
writing to the replaced file). Only a catalog SQLite can no longer open is replaced
as a file.
"""

from __future__ import annotations

import calendar
import contextlib
import fcntl
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

BACKUPS_DIR = "backups"
CATALOG_FILE = "catalog.db"
KINDS = ("daily", "migration", "manual", "restore")
KEEP = {"daily": 7, "migration": 3, "manual": 10, "restore": 3}
DAILY_S = 24 * 3600.0
CHECK_EVERY_S = 600.0  # how often a long-running host asks whether a daily one is due
STALE_TMP_S = 3600.0  # a temporary copy this old belongs to no running backup
LIVE_HOST_S = 30.0  # a host row with a heartbeat this recent is alive (as cli_models)
_NAME = re.compile(
    r"^catalog-(?P<kind>[a-z]+)-(?P<stamp>\d{8}T\d{6}\.\d{3}Z)(?:-(?P<n>\d+))?"
    r"-v(?P<schema>\d+)-s(?P<seq>\d+)\.db$"
)


class BackupError(Exception):
    """A backup or restore that could not be done; the message says why, for people."""


class LibraryBusyError(BackupError):
    """The app or a worker is using the library."""


@dataclass(frozen=True)
class BackupInfo:
    path: str
    kind: str
    created_at: float
    schema: int
    seq: int
    size: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def backups_dir(library_dir: Path) -> Path:
    return Path(library_dir) / BACKUPS_DIR


def parse_name(path: Path) -> BackupInfo | None:
    m = _NAME.match(path.name)
    if m is None or m["kind"] not in KINDS:
        return None
    created = float(calendar.timegm(time.strptime(m["stamp"][:15], "%Y%m%dT%H%M%S")))
    created += int(m["stamp"][16:19]) / 1000
    try:
        size = path.stat().st_size
    except OSError:
        return None
    return BackupInfo(str(path), m["kind"], created, int(m["schema"]), int(m["seq"]), size)


def list_backups(library_dir: Path, kind: str | None = None) -> list[BackupInfo]:
    """The library's backups, newest first."""
    folder = backups_dir(library_dir)
    try:
        names = list(folder.iterdir())
    except FileNotFoundError:
        return []
    found = [b for p in names if (b := parse_name(p)) is not None]
    found = [b for b in found if kind is None or b.kind == kind]
    return sorted(found, key=lambda b: (b.created_at, b.path), reverse=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_state(conn: sqlite3.Connection) -> tuple[int, int]:
    schema = int(conn.execute("PRAGMA user_version").fetchone()[0])
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
    except sqlite3.DatabaseError:
        row = None
    return schema, int(row[0]) if row else 0


def _stamp(now: float) -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def _check_room(catalog_path: Path, dest_dir: Path) -> None:
    """A backup must not be what fills the disk (the library's work pauses below the
    same mark, engine/diskspace.py)."""
    from engine.diskspace import format_size, free_bytes, pause_below_bytes

    need = catalog_path.stat().st_size + pause_below_bytes()
    free = free_bytes(dest_dir)
    if free is not None and free < need:
        raise BackupError(
            f"Not enough space to back up the catalog in {dest_dir} "
            f"({format_size(free)} free, {format_size(need)} needed)."
        )


def backup_catalog(
    catalog_path: Path, dest_dir: Path, kind: str, *, now: float | None = None
) -> BackupInfo:
    """Copy the catalog (consistently, while others write) into `dest_dir`.

    Raises BackupError with a readable reason (disk full, unreadable catalog)."""
    if kind not in KINDS:
        raise ValueError(f"unknown backup kind {kind!r}")
    now = time.time() if now is None else now
    dest_dir = Path(dest_dir)
    tmp: Path | None = None
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        _check_room(catalog_path, dest_dir)
        src = sqlite3.connect(f"file:{catalog_path}?mode=ro", uri=True, isolation_level=None)
        try:
            src.execute("BEGIN")  # one snapshot: the name's seq is the copy's seq
            schema, seq = _read_state(src)
            fd, name = _tmp_name(dest_dir)
            os.close(fd)
            tmp = Path(name)
            dst = sqlite3.connect(tmp, isolation_level=None)
            try:
                src.backup(dst)  # pages=-1: everything in one step, one snapshot
                dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
            finally:
                dst.close()
            src.execute("COMMIT")
        finally:
            src.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        final = _unique(dest_dir, f"catalog-{kind}-{_stamp(now)}", f"-v{schema}-s{seq}.db")
        os.replace(tmp, final)
        tmp = None
        _fsync_dir(dest_dir)
    except (OSError, sqlite3.Error) as exc:
        raise BackupError(f"Could not back up the catalog to {dest_dir}: {_reason(exc)}") from exc
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    info = parse_name(final)
    assert info is not None
    return info


def _tmp_name(folder: Path) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(dir=folder, prefix=".tmp-catalog-", suffix=".db")


def _unique(folder: Path, head: str, tail: str) -> Path:
    path = folder / f"{head}{tail}"
    n = 2
    while path.exists():
        path = folder / f"{head}-{n}{tail}"
        n += 1
    return path


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == 28:
        return "the disk is full."
    if isinstance(exc, sqlite3.Error) and "full" in str(exc):
        return "the disk is full."
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"{text}."


def rotate(library_dir: Path, kind: str) -> list[str]:
    """Remove the oldest backups of `kind` beyond KEEP[kind]; returns what went."""
    removed = []
    folder = backups_dir(library_dir)
    stale = time.time() - STALE_TMP_S
    with contextlib.suppress(OSError):
        for tmp in folder.glob(".tmp-catalog-*"):  # a copy cut short (the process died)
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime < stale:
                    tmp.unlink()
                    removed.append(str(tmp))
    for old in list_backups(library_dir, kind)[KEEP[kind] :]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(old.path)
            removed.append(old.path)
    return removed


def backup_library(
    library_dir: Path, kind: str = "manual", *, to: Path | None = None, now: float | None = None
) -> BackupInfo:
    """A backup of the library's catalog: into `backups/` (rotated) or into `to`."""
    library_dir = Path(library_dir)
    info = backup_catalog(
        library_dir / CATALOG_FILE, to if to is not None else backups_dir(library_dir), kind,
        now=now,
    )  # fmt: skip
    if to is None:
        rotate(library_dir, kind)
    return info


# -- the daily backup -------------------------------------------------------------------


def daily_due(library_dir: Path, catalog_seq: int, now: float | None = None) -> bool:
    """Is a daily backup due? When the newest is more than a day old (or there is
    none), and the catalog changed since (the same content is not copied again)."""
    now = time.time() if now is None else now
    newest = list_backups(library_dir, "daily")
    if not newest:
        return True
    return now - newest[0].created_at >= DAILY_S and newest[0].seq != catalog_seq


def ensure_daily(library_dir: Path, now: float | None = None) -> BackupInfo | None:
    """Make the daily backup if it is due; returns it, or None."""
    library_dir = Path(library_dir)
    catalog = library_dir / CATALOG_FILE
    if not catalog.exists():
        return None
    conn = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)
    try:
        _, seq = _read_state(conn)
    finally:
        conn.close()
    if not daily_due(library_dir, seq, now):
        return None
    return backup_library(library_dir, "daily", now=now)


class DailyBackups:
    """For a long-running process (the worker host): `tick()` from its housekeeping
    checks at most every CHECK_EVERY_S and makes the backup in a thread of its own, so
    feeding never waits for a copy. A failure (disk full) is logged and tried again
    at the next check."""

    def __init__(self, library_dir: Path, check_every_s: float = CHECK_EVERY_S) -> None:
        self.library_dir = Path(library_dir)
        self.check_every_s = check_every_s
        self._next = 0.0
        self._thread: threading.Thread | None = None
        self.last: BackupInfo | None = None
        self.last_error: str | None = None

    def tick(self, mono: float | None = None) -> bool:
        """Start a check if one is due; True when one was started."""
        mono = time.monotonic() if mono is None else mono
        if mono < self._next or (self._thread is not None and self._thread.is_alive()):
            return False
        self._next = mono + self.check_every_s
        self._thread = threading.Thread(target=self.run, name="shoebox-backup", daemon=True)
        self._thread.start()
        return True

    def run(self) -> None:
        import logging

        try:
            made = ensure_daily(self.library_dir)
        except (BackupError, sqlite3.Error, OSError) as exc:
            self.last_error = str(exc)
            logging.getLogger(__name__).warning("daily backup: %s", exc)
            return
        if made is not None:
            self.last, self.last_error = made, None
            logging.getLogger(__name__).info("daily backup written: %s", made.path)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


# -- before a migration ---------------------------------------------------------------


def before_migration(conn: sqlite3.Connection, old: int, new: int) -> BackupInfo | None:
    """Called by `schema.migrate` before it changes a catalog written at schema `old`:
    a backup of it next to the catalog (`backups/`), from a connection of its own (the
    caller's holds the write lock but has written nothing yet, so a reader sees the
    catalog exactly as it is). An in-memory or new catalog has nothing to keep."""
    if old == 0:
        return None
    row = next((r for r in conn.execute("PRAGMA database_list") if r[1] == "main"), None)
    if row is None or not row[2]:
        return None
    catalog = Path(row[2])
    try:
        info = backup_catalog(catalog, catalog.parent / BACKUPS_DIR, "migration")
    except BackupError as exc:
        raise BackupError(
            f"{exc} Shoebox backs up the catalog before upgrading it (schema {old} → {new}) "
            "and did not upgrade it; free some space and start again."
        ) from exc
    rotate(catalog.parent, "migration")
    return info


# -- restore ------------------------------------------------------------------------------


@contextlib.contextmanager
def library_lock(library_dir: Path) -> Iterator[None]:
    """Hold the library's host lock (engine/jobs/host.py takes the same `flock`), so no
    worker host starts meanwhile; LibraryBusyError when the app or a worker holds it."""
    path = Path(library_dir) / "host.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise LibraryBusyError(
                "Shoebox is using this library (the app or `shoebox work` is running); "
                "close it first."
            ) from exc
        yield
    finally:
        os.close(fd)


def live_remote_hosts(conn: sqlite3.Connection, now: float | None = None) -> list[str]:
    """Hosts elsewhere (a shared broker) with a recent heartbeat."""
    import socket

    now = time.time() if now is None else now
    try:
        rows = conn.execute(
            "SELECT owner FROM hosts WHERE stopped_at IS NULL AND heartbeat_at > ?",
            (now - LIVE_HOST_S,),
        ).fetchall()
    except sqlite3.DatabaseError:
        return []
    local = f"{socket.gethostname()}:"
    return [str(r[0]) for r in rows if not str(r[0]).startswith(local)]


def validate(path: Path) -> tuple[int, int]:
    """A file fit to restore: a whole SQLite database (`PRAGMA integrity_check`), a
    Shoebox catalog, of a schema this version understands. Returns (schema, seq)."""
    from engine.store.schema import MIGRATIONS

    if not path.is_file():
        raise BackupError(f"No such backup file: {path}")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            problems = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise BackupError(
                    f"{path} is damaged (integrity check: {'; '.join(problems[:3])}); "
                    "choose another backup."
                )
            tables = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master")}
            if not {"meta", "items", "paths", "jobs"} <= tables:
                raise BackupError(f"{path} is not a Shoebox catalog.")
            schema, seq = _read_state(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a readable catalog ({exc}).") from exc
    if schema > len(MIGRATIONS):
        raise BackupError(
            f"{path} was written by a newer Shoebox (schema {schema}); this version "
            f"understands up to {len(MIGRATIONS)}."
        )
    return schema, seq


@dataclass(frozen=True)
class RestoreResult:
    restored: str
    schema: int
    seq: int
    previous: str | None  # the backup of the catalog as it was before
    replaced_file: bool  # the old catalog could not be opened and was replaced as a file

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def restore(library_dir: Path, backup: Path) -> RestoreResult:
    """Replace the library's catalog with `backup` (see the module's docstring).

    Refuses while a worker host (the app's, `shoebox work`) serves the library; holds
    the host lock meanwhile. The current catalog is backed up first (`restore` kind);
    when it is too damaged for that, its file is kept as it is beside the backups."""
    library_dir = Path(library_dir)
    backup = Path(backup).absolute()
    schema, seq = validate(backup)
    catalog = library_dir / CATALOG_FILE
    with library_lock(library_dir):
        previous: str | None = None
        dest: sqlite3.Connection | None = None
        if catalog.exists():
            dest, previous = _keep_current(library_dir, catalog)
        replaced = dest is None
        try:
            if dest is not None:
                src = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
                try:
                    src.backup(dest)  # one write transaction on the live catalog
                finally:
                    src.close()
                    dest.close()
            else:
                _replace_file(catalog, backup)
        except (OSError, sqlite3.Error) as exc:
            raise BackupError(f"Could not restore {backup}: {_reason(exc)}") from exc
    return RestoreResult(str(backup), schema, seq, previous, replaced)


def _keep_current(library_dir: Path, catalog: Path) -> tuple[sqlite3.Connection | None, str | None]:
    """Back up the catalog about to be replaced; returns a connection to restore into
    (None: SQLite cannot use it, replace the file) and where the old one was kept."""
    try:
        dest = sqlite3.connect(catalog, isolation_level=None, timeout=10)
        dest.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError:
        return None, _keep_damaged(library_dir, catalog)
    try:
        remote = live_remote_hosts(dest)
        if remote:
            raise LibraryBusyError(
                f"Worker hosts elsewhere are using this library ({', '.join(remote)}); "
                "stop them first."
            )
        try:
            previous = backup_catalog(catalog, backups_dir(library_dir), "restore").path
        except BackupError as exc:
            cause = exc.__cause__
            if not isinstance(cause, sqlite3.DatabaseError) or "full" in str(cause):
                raise  # the disk is full: never replace a catalog without a copy of it
            dest.close()
            return None, _keep_damaged(library_dir, catalog)
        rotate(library_dir, "restore")
    except BaseException:
        dest.close()
        raise
    return dest, previous


def _keep_damaged(library_dir: Path, catalog: Path) -> str:
    """The catalog SQLite cannot back up: keep its files as they are, for a person."""
    import shutil

    folder = backups_dir(library_dir)
    folder.mkdir(parents=True, exist_ok=True)
    base = _unique(folder, f"damaged-catalog-{_stamp(time.time())}", ".db")
    try:
        shutil.copyfile(catalog, base)
        for suffix in ("-wal",):
            side = catalog.with_name(catalog.name + suffix)
            if side.exists():
                shutil.copyfile(side, base.with_name(base.name + suffix))
    except OSError as exc:
        base.unlink(missing_ok=True)
        raise BackupError(
            f"The catalog is damaged, and keeping a copy of it failed: {_reason(exc)}"
        ) from exc
    return str(base)


def _replace_file(catalog: Path, backup: Path) -> None:
    """No process can use a catalog SQLite cannot open: copy the backup beside it,
    drop the old WAL (it belongs to the old file) and rename over it."""
    import shutil

    fd, name = _tmp_name(catalog.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        shutil.copyfile(backup, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        for suffix in ("-wal", "-shm", "-journal"):
            catalog.with_name(catalog.name + suffix).unlink(missing_ok=True)
        os.replace(tmp, catalog)
        _fsync_dir(catalog.parent)
    finally:
        tmp.unlink(missing_ok=True)
