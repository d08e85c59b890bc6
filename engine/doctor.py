"""`shoebox doctor [--repair]`: what is wrong with a library, and the safe repairs.

Each check reports what it `found` and, with `repair`, what it `fixed`, with a few
`details` for people (docs/architecture.md, "Doctor"). Nothing here touches an
original: a moved file is re-linked through the ordinary importer, reading it only.

- `catalog`: `PRAGMA integrity_check`. Damage confined to indexes is repaired with
  `REINDEX`; anything else needs `shoebox restore` (the details name the newest backup).
- `foreign_keys`: `PRAGMA foreign_key_check` rows (reported; a restore repairs them).
- `thumbnails`: `thumbnail` jobs `done` whose thumbnail row or file is gone → queued again.
- `vectors`: `embed` jobs `done` without a vector, `text_embed` jobs `done` with
  passages but no passage vectors → queued again.
- `missing_items`: items none of whose files exists. The library's known roots (the
  folders it imported, the watched folders) are walked for files of the same size
  that no path knows; those with the same content hash are imported, which re-links
  them (the importer's own rule: known content at a new path, old paths gone).
- `stuck_jobs`: jobs `running` while no worker host holds the library (checked by
  taking its lock, which also keeps one from starting meanwhile) → recovery
  (engine/jobs/recovery.py), as a host does when it starts.
- `scanning_sessions`: imports still `scanning` long after they started (an importer
  that died) → `processing`, with a scan problem saying the scan was interrupted.
- `orphan_files`: files in `thumbs/` and `label-models/` that no row refers to, older
  than an hour (a worker may be about to record a newer one) → removed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.store.db import next_seq

if TYPE_CHECKING:
    from engine.library import Library

CHECKS = (
    "catalog",
    "foreign_keys",
    "thumbnails",
    "vectors",
    "missing_items",
    "stuck_jobs",
    "scanning_sessions",
    "orphan_files",
)
MAX_DETAILS = 20
STALE_SCAN_S = 600.0  # as engine/watch.py's RECENT_SCAN_S: an older `scanning` is dead
ORPHAN_GRACE_S = 3600.0
INTERRUPTED_SCAN = (
    "The scan of this import was interrupted (Shoebox stopped); import the folder "
    "again to catalogue the rest."
)


@dataclass
class Check:
    found: int = 0
    fixed: int = 0
    details: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.details) < MAX_DETAILS:
            self.details.append(text)

    def as_dict(self) -> dict[str, Any]:
        return {"found": self.found, "fixed": self.fixed, "details": self.details}


@dataclass
class Report:
    repair: bool
    checks: dict[str, Check]

    @property
    def ok(self) -> bool:
        """Nothing left wrong (after the repairs, when asked for)."""
        return all(c.found == c.fixed for c in self.checks.values())

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"repair": self.repair, "ok": self.ok}
        out.update({name: check.as_dict() for name, check in self.checks.items()})
        return out


def run(lib: Library, *, repair: bool = False, now: float | None = None) -> Report:
    now = time.time() if now is None else now
    checks = {name: Check() for name in CHECKS}
    _catalog(lib, checks["catalog"], repair)
    _foreign_keys(lib, checks["foreign_keys"])
    requeue: list[int] = []
    _thumbnails(lib, checks["thumbnails"], requeue if repair else None)
    vec_jobs: list[int] = []
    _vectors(lib, checks["vectors"], vec_jobs if repair else None)
    if repair and (requeue or vec_jobs):
        from engine.jobs import ledger

        with lib.catalog.write() as conn:
            for ids in (requeue, vec_jobs):
                if ids:
                    ledger.retry(conn, states=("done",), job_ids=ids, registry=lib.registry)
        checks["thumbnails"].fixed = len(requeue)
        checks["vectors"].fixed = len(vec_jobs)
    _missing_items(lib, checks["missing_items"], repair)
    _stuck_jobs(lib, checks["stuck_jobs"], repair, now)
    _scanning_sessions(lib, checks["scanning_sessions"], repair, now)
    _orphan_files(lib, checks["orphan_files"], repair, now)
    return Report(repair, checks)


# -- the checks -----------------------------------------------------------------------


def _integrity(conn: sqlite3.Connection) -> list[str]:
    lines = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
    return [] if lines == ["ok"] else lines


def _catalog(lib: Library, check: Check, repair: bool) -> None:
    conn = lib.catalog.conn
    try:
        problems = _integrity(conn)
    except sqlite3.DatabaseError as exc:
        problems = [str(exc)]
    check.found = len(problems)
    for line in problems:
        check.note(line)
    if not problems:
        return
    index_only = all("index" in p for p in problems)
    if repair and index_only:
        with lib.catalog.write() as wconn:
            wconn.execute("REINDEX")
        left = _integrity(conn)
        check.fixed = check.found - len(left)
        check.note(f"REINDEX: {len(left)} problems left")
        if not left:
            return
    from engine.backup import list_backups

    newest = list_backups(lib.root)
    hint = f"`shoebox restore {newest[0].path}`" if newest else "`shoebox restore FILE`"
    check.note(f"The catalog is damaged; restore a backup: {hint}")


def _foreign_keys(lib: Library, check: Check) -> None:
    rows = lib.catalog.conn.execute("PRAGMA foreign_key_check").fetchall()
    check.found = len(rows)
    for table, rowid, parent, _ in rows:
        check.note(f"{table} row {rowid} refers to a missing {parent} row")


def _thumbnails(lib: Library, check: Check, requeue: list[int] | None) -> None:
    rows = lib.catalog.conn.execute(
        """SELECT j.id, j.item_id, group_concat(t.size || '=' || t.path, char(10))
           FROM jobs j LEFT JOIN thumbnails t ON t.item_id = j.item_id
           WHERE j.stage = 'thumbnail' AND j.state = 'done' AND j.item_id IS NOT NULL
           GROUP BY j.id"""
    ).fetchall()
    for job_id, item_id, joined in rows:
        files = dict(line.split("=", 1) for line in (joined or "").splitlines())
        gone = [s for s in ("thumb", "preview") if s not in files]
        gone += [s for s, rel in files.items() if not (lib.root / rel).is_file()]
        if gone:
            check.found += 1
            check.note(f"item {item_id}: {', '.join(sorted(set(gone)))} missing")
            if requeue is not None:
                requeue.append(int(job_id))


def _vectors(lib: Library, check: Check, requeue: list[int] | None) -> None:
    conn = lib.catalog.conn
    rows = conn.execute(
        """SELECT j.id, j.item_id, j.stage FROM jobs j
           WHERE j.stage = 'embed' AND j.state = 'done' AND j.item_id IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM vectors v WHERE v.item_id = j.item_id)
           UNION ALL
           SELECT j.id, j.item_id, j.stage FROM jobs j
             JOIN results r ON r.item_id = j.item_id AND r.stage = j.stage
                           AND r.version = j.result_version
           WHERE j.stage = 'text_embed' AND j.state = 'done'
             AND coalesce(json_extract(r.data, '$.passages'), 0) > 0
             AND NOT EXISTS (SELECT 1 FROM text_vectors t WHERE t.item_id = j.item_id)"""
    ).fetchall()
    for job_id, item_id, stage in rows:
        check.found += 1
        check.note(f"item {item_id}: {stage} is done but its vectors are gone")
        if requeue is not None:
            requeue.append(int(job_id))


def known_roots(conn: sqlite3.Connection) -> list[str]:
    """Folders the library knows: what it imported, and the watched folders."""
    roots: set[str] = set()
    for (text,) in conn.execute("SELECT roots FROM sessions WHERE kind = 'import'"):
        try:
            roots.update(str(r) for r in json.loads(text))
        except (ValueError, TypeError):
            continue
    roots.update(os.fsdecode(bytes(r[0])) for r in conn.execute("SELECT raw FROM watched"))
    existing = sorted(r for r in roots if os.path.isdir(r))
    # A root inside another is walked with it.
    return [r for r in existing if not any(r.startswith(o.rstrip(os.sep) + os.sep)
                                           for o in existing if o != r)]  # fmt: skip


def _missing_items(lib: Library, check: Check, repair: bool) -> None:
    from engine.importing.hashing import hash_file
    from engine.importing.scan import FoundFile, walk

    conn = lib.catalog.conn
    wanted: dict[int, dict[str, int]] = {}  # size → {hash: item id}
    rows = conn.execute("SELECT id, hash, size FROM items WHERE missing = 1").fetchall()
    for item_id, digest, size in rows:
        wanted.setdefault(int(size), {})[str(digest)] = int(item_id)
    check.found = len(rows)
    if not rows:
        return
    known = {bytes(r[0]) for r in conn.execute("SELECT raw FROM paths")}
    found: dict[int, str] = {}  # item id → a file holding its content
    for entry in walk(known_roots(conn), skip_hidden=lib.settings.skip_hidden):
        if not isinstance(entry, FoundFile) or entry.size not in wanted:
            continue
        if os.fsencode(entry.path) in known:
            continue
        try:
            digest = hash_file(entry.path)[0]
        except OSError:
            continue
        item_id = wanted[entry.size].get(digest)
        if item_id is not None and item_id not in found:
            found[item_id] = entry.path
    for item_id, path in sorted(found.items()):
        check.note(f"item {item_id} found at {os.fsencode(path).decode('utf-8', 'replace')}")
    if len(found) < len(rows):
        check.note(f"{len(rows) - len(found)} items not found under the library's folders")
    if repair and found:
        summary = lib.import_paths(sorted(found.values()))
        check.fixed = min(summary.relinked, len(found))
        check.note(f"re-linked through import {summary.session_id}")


def _stuck_jobs(lib: Library, check: Check, repair: bool, now: float) -> None:
    from engine.backup import LibraryBusyError, library_lock
    from engine.jobs import recovery

    prefix = recovery.local_owner_prefix()
    try:
        with library_lock(lib.root):
            # No host here holds the library: its running jobs are orphans, and so are
            # other machines' whose lease ran out (recovery's own rule).
            like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stuck = lib.catalog.conn.execute(
                """SELECT count(*) FROM jobs WHERE state = 'running'
                     AND (owner IS NULL OR owner LIKE ? ESCAPE '\\' OR lease_until < ?)""",
                (like, now),
            ).fetchone()[0]
            check.found = int(stuck)
            if stuck:
                check.note(f"{stuck} jobs are running with no worker alive")
            if repair and stuck:
                with lib.catalog.write() as conn:
                    counts = recovery.recover(conn, now, prefix, lib.registry)
                check.fixed = counts["requeued"] + counts["dead"] + counts["refunded"]
                check.note(
                    f"recovered: {counts['requeued']} queued again, {counts['refunded']} "
                    f"batch members queued again, {counts['dead']} dead (out of attempts)"
                )
    except LibraryBusyError:
        check.note("a worker host is running: its running jobs are its own")


def _scanning_sessions(lib: Library, check: Check, repair: bool, now: float) -> None:
    conn = lib.catalog.conn
    rows = conn.execute(
        "SELECT id, roots, started_at FROM sessions WHERE state = 'scanning' ORDER BY id"
    ).fetchall()
    stale = [int(r[0]) for r in rows if float(r[2]) < now - STALE_SCAN_S]
    for session_id, roots, started in rows:
        if int(session_id) in stale:
            check.note(f"import {session_id} ({roots}) was left scanning")
        else:
            check.note(f"import {session_id} is scanning now (started {now - started:.0f} s ago)")
    check.found = len(stale)
    if repair and stale:
        with lib.catalog.write() as wconn:
            seq = next_seq(wconn)
            for session_id in stale:
                cur = wconn.execute(
                    """UPDATE sessions SET state = 'processing', scanned_at = ?, seq = ?
                       WHERE id = ? AND state = 'scanning'""",
                    (now, seq, session_id),
                )
                if cur.rowcount:
                    check.fixed += 1
                    wconn.execute(
                        """INSERT INTO scan_problems (session_id, display, reason)
                           VALUES (?, ?, ?)""",
                        (session_id, "", INTERRUPTED_SCAN),
                    )


def _orphan_files(lib: Library, check: Check, repair: bool, now: float) -> None:
    from engine.learning.training import MODELS_DIR

    conn = lib.catalog.conn
    referenced = {lib.root / str(r[0]) for r in conn.execute("SELECT path FROM thumbnails")}
    referenced |= {
        lib.root / MODELS_DIR / str(r[0]) for r in conn.execute("SELECT file FROM label_versions")
    }
    for folder in (lib.root / "thumbs", lib.root / MODELS_DIR):
        for path in sorted(_files(folder)):
            if path in referenced:
                continue
            try:
                if path.lstat().st_mtime > now - ORPHAN_GRACE_S:
                    continue  # perhaps about to be recorded by a running worker
            except FileNotFoundError:
                continue
            check.found += 1
            check.note(f"{path.relative_to(lib.root)} is not used")
            if repair:
                try:
                    path.unlink()
                    check.fixed += 1
                except FileNotFoundError:
                    check.fixed += 1
                except OSError as exc:
                    check.note(f"could not remove {path.name}: {exc.strerror}")


def _files(folder: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, _dirs, names in os.walk(folder):
        out += [Path(dirpath) / n for n in names]
    return out
