"""Connections to `catalog.db`.

One connection per thread (SQLite connections are not shared across threads),
WAL so readers never block the writer, and `BEGIN IMMEDIATE` for every write so
two writers queue on SQLite's lock (busy timeout) instead of failing half-way
with "database is locked".
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.store.schema import migrate

BUSY_TIMEOUT_S = 60.0

# Writers in one process take turns on a Python lock before SQLite's: when SQLite's
# lock is busy it sleeps in steps of up to 100 ms, which cost worker threads most of
# their time (measured: BEGIN IMMEDIATE/COMMIT were 28% of a worker host's samples).
_WRITE_LOCKS: dict[str, threading.RLock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(path: Path) -> threading.RLock:
    key = os.path.realpath(path)
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, threading.RLock())


class Catalog:
    """The library's catalog database, safe to use from many threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._write_lock = _write_lock(path)
        with self.write() as conn:
            migrate(conn)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives any process crash; a power cut may roll back the
        # last commits, which the ledger then simply re-runs (results are idempotent).
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA temp_store=MEMORY")
        # 16 MB of page cache (SQLite's default is 2 MB): with the ledger's indexes a
        # 200,000-job import's working set no longer fits in 2 MB.
        conn.execute("PRAGMA cache_size=-16384")
        with self._lock:
            self._connections.append(conn)
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit; use `write()` for transactions)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on this thread's connection, committed on success."""
        conn = self.conn
        if conn.in_transaction:  # nested use joins the outer transaction
            yield conn
            return
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def read(
        self, sql: str, params: tuple[object, ...] | dict[str, object] = ()
    ) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.ProgrammingError):  # closed already
                    conn.close()
            self._connections.clear()
        self._local = threading.local()


def next_seq(conn: sqlite3.Connection) -> int:
    """Take the next change-sequence number (inside a write transaction).

    Every row a transaction touches gets this number, so "what changed since N?"
    is `WHERE seq > N` on an index, for the GUI, the CLI and remote hosts alike.
    """
    row = conn.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'seq' RETURNING value"
    ).fetchone()
    return int(row[0])


@contextlib.contextmanager
def suspended_trigger(conn: sqlite3.Connection, name: str) -> Iterator[None]:
    """Drop a trigger for a bulk load and put it back exactly as the schema defines it.

    For tests and benchmarks that fill 100,000 rows at once and keep them consistent
    by hand; inside the caller's transaction.
    """
    row = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)
    ).fetchone()
    if row is None:
        raise KeyError(f"no trigger {name!r}")
    conn.execute(f"DROP TRIGGER {name}")
    try:
        yield
    finally:
        conn.execute(row[0])


def current_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
    return int(row[0])


def open_catalog(path: Path) -> Catalog:
    return Catalog(path)
