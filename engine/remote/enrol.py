"""Enrolling worker hosts: `shoebox workers add|remove|list` (keys live in the catalog).

A worker is enrolled explicitly and gets one line, its token (`WorkerToken`): its own
key (results, leases and heartbeats are signed with it) and the library's dispatch key
(jobs are signed with it, so a worker runs only what this library sent). Removing a
worker revokes its key at once: the owner refuses whatever it sends from then on. The
dispatch key is shared by the enrolled workers; the broker's own password or ACL user
(docs/scale-out.md) is what keeps a removed worker from reading the queue.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from engine.errors import ShoeboxError
from engine.remote.signing import Key, KeyLookup, WorkerToken, new_key

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class WorkerError(ShoeboxError):
    """A `workers` command that cannot be done (bad name, already enrolled, unknown)."""


@dataclass(frozen=True)
class WorkerRecord:
    name: str
    key_id: str
    created_at: float
    revoked_at: float | None
    last_seen_at: float | None
    jobs_done: int
    errors: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key_id": self.key_id,
            "created_at": self.created_at,
            "revoked": self.revoked_at is not None,
            "revoked_at": self.revoked_at,
            "last_seen_at": self.last_seen_at,
            "jobs_done": self.jobs_done,
            "errors": self.errors,
        }


def identity(conn: sqlite3.Connection, now: float | None = None) -> tuple[str, Key]:
    """The library's id and dispatch key, made on first use (inside a write transaction
    when it may be made)."""
    row = conn.execute("SELECT library_id, key_id, secret FROM remote_identity").fetchone()
    if row is not None:
        return str(row[0]), Key(str(row[1]), bytes(row[2]))
    key = new_key()
    library_id = "lib_" + secrets.token_hex(8)
    conn.execute(
        "INSERT INTO remote_identity (library_id, key_id, secret, created_at) VALUES (?, ?, ?, ?)",
        (library_id, key.key_id, key.secret, time.time() if now is None else now),
    )
    return library_id, key


def add_worker(conn: sqlite3.Connection, name: str, now: float | None = None) -> WorkerToken:
    """Enrol `name` (inside a write transaction); its token, to give to that machine."""
    if not NAME_RE.match(name):
        raise WorkerError(
            f"{name!r} is not a worker name: use letters, digits, '.', '_' or '-' "
            "(up to 64), starting with a letter or digit"
        )
    now = time.time() if now is None else now
    row = conn.execute("SELECT revoked_at FROM workers WHERE name = ?", (name,)).fetchone()
    if row is not None and row[0] is None:
        raise WorkerError(
            f"a worker named {name!r} is already enrolled: `shoebox workers remove {name}` "
            "first, or choose another name"
        )
    library_id, dispatch = identity(conn, now)
    key = new_key(name)
    conn.execute(
        """INSERT INTO workers (name, key_id, secret, created_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id,
               secret = excluded.secret, created_at = excluded.created_at,
               revoked_at = NULL, last_seen_at = NULL, jobs_done = 0, errors = 0""",
        (name, key.key_id, key.secret, now),
    )
    return WorkerToken(library_id=library_id, worker=key, dispatch=dispatch)


def remove_worker(conn: sqlite3.Connection, name: str, now: float | None = None) -> None:
    """Revoke `name`'s key (inside a write transaction)."""
    done = conn.execute(
        "UPDATE workers SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
        (time.time() if now is None else now, name),
    )
    if done.rowcount == 0:
        known = conn.execute("SELECT 1 FROM workers WHERE name = ?", (name,)).fetchone()
        why = "was removed already" if known else "is not enrolled (see `shoebox workers list`)"
        raise WorkerError(f"worker {name!r} {why}")


def list_workers(conn: sqlite3.Connection) -> list[WorkerRecord]:
    rows = conn.execute(
        """SELECT name, key_id, created_at, revoked_at, last_seen_at, jobs_done, errors
           FROM workers ORDER BY revoked_at IS NOT NULL, name"""
    ).fetchall()
    return [WorkerRecord(*row) for row in rows]


def key_lookup(conn: sqlite3.Connection) -> KeyLookup:
    """The keys the owner checks messages with: every worker's, revoked ones marked."""

    def lookup(key_id: str) -> Key | None:
        row = conn.execute(
            "SELECT name, secret, revoked_at FROM workers WHERE key_id = ?", (key_id,)
        ).fetchone()
        if row is None:
            return None
        return Key(key_id, bytes(row[1]), name=str(row[0]), revoked=row[2] is not None)

    return lookup
