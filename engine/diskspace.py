"""The disk that holds the library: when it is (nearly) full, work pauses.

A full disk is nobody's file's fault, so a job that hits it is handed back (no
attempt charged) and the worker host stops feeding until there is room again. The
host pauses below `pause_below_bytes()` free (64 MiB: a thumbnail batch, a vector
file and the catalog's WAL fit in it many times over, so the catalog itself is
rarely the write that fails) and after any ENOSPC; it resumes when the free space is
above the mark again (and, after an ENOSPC, after a back-off, since the write that
failed may have needed more than the mark). Readers (the status bar, `shoebox
status`) ask the same question of the disk themselves: a host on a full disk may
not be able to write its state into the catalog.

SHOEBOX_MIN_FREE_MB overrides the mark (tests fill a small tmpfs; 0: pause only on
ENOSPC).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
from pathlib import Path

from engine.errors import ShoeboxError

DEFAULT_MIN_FREE_MB = 64
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13


class DiskFullError(ShoeboxError):
    """The disk holding the library is full (the message says how to go on)."""


def pause_below_bytes() -> int:
    value = os.environ.get("SHOEBOX_MIN_FREE_MB")
    try:
        mb = float(value) if value else DEFAULT_MIN_FREE_MB
    except ValueError:
        mb = DEFAULT_MIN_FREE_MB
    return max(0, int(mb * 1024 * 1024))


def is_disk_full_error(exc: BaseException | None) -> bool:
    """ENOSPC/EDQUOT, or SQLite's "database or disk is full", anywhere in the chain."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, DiskFullError):
            return True
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return True
        if isinstance(exc, sqlite3.Error) and (
            getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL
            or "database or disk is full" in str(exc)
        ):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def format_size(n: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def full_message(library: Path, free: int | None) -> str:
    left = f"{format_size(free)} free" if free is not None else "no space left"
    return (
        f"The disk that holds the library ({library}) is full ({left}). Work is paused; "
        "free some space and it goes on where it stopped."
    )


def library_full(library: Path) -> str | None:
    """The message when the library's disk is below the mark, else None."""
    free = free_bytes(library)
    if free is None or free >= pause_below_bytes():
        return None
    return full_message(library, free)


def library_of(conn: sqlite3.Connection) -> Path | None:
    """The library folder of a catalog connection (its main database's folder)."""
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main" and file:
            return Path(file).parent
    return None


RESERVE_NAME = ".disk-reserve"
RESERVE_BYTES = 2 << 20


class SpaceReserve:
    """A few MiB set aside in the library (a ballast file): when the disk fills, the
    host deletes it, so that handing its jobs back and the catalog's last writes
    still fit; it is put back once there is room again."""

    def __init__(self, library: Path, size: int = RESERVE_BYTES) -> None:
        self.path = library / RESERVE_NAME
        self.size = size

    @property
    def held(self) -> bool:
        try:
            return self.path.stat().st_size >= self.size
        except OSError:
            return False

    def ensure(self) -> bool:
        """Put the reserve in place if there is room for it above the pause mark."""
        if self.held:
            return True
        free = free_bytes(self.path.parent)
        if free is None or free < self.size + pause_below_bytes() + self.size:
            return False
        tmp = self.path.with_suffix(".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                # Blocks allocated, not a sparse file: the space must really be taken.
                os.posix_fallocate(fd, 0, self.size)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            return True
        except (OSError, AttributeError):
            with contextlib.suppress(OSError):
                tmp.unlink()
            return False

    def release(self) -> bool:
        """Free the reserve; True when there was one."""
        try:
            self.path.unlink()
            return True
        except OSError:
            return False
