"""The library facade: one object per library folder, used by the CLI and the GUI.

Every front-end action is a method here; front ends hold no business logic.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

from engine.config import LANES, Settings, load_settings, save_settings
from engine.diskspace import DiskFullError
from engine.errors import ShoeboxError
from engine.importing.importer import Importer, ImportSummary, ProgressFn, create_session
from engine.jobs import ledger
from engine.pipeline.registry import StageRegistry, default_registry
from engine.store.db import Catalog, current_seq, next_seq

CATALOG_FILE = "catalog.db"
CHANGES_LIMIT = 5000


@dataclass(frozen=True)
class Changes:
    """What changed since a sequence number: the GUI refreshes only these."""

    seq: int
    item_ids: list[int]
    session_ids: list[int]
    overflow: bool = False  # too many items changed to list: refresh everything shown


def _is_access_error(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("readonly", "read-only", "unable to open", "disk i/o"))


class LibraryAccessError(ShoeboxError):
    """The library folder cannot be written: read-only, not ours, or a full disk."""


class LibraryDiskFullError(LibraryAccessError, DiskFullError):
    """The library cannot be opened for writing because its disk is full."""


def _cannot_write(root: Path, exc: BaseException) -> LibraryAccessError:
    from engine import diskspace

    free = diskspace.free_bytes(root)
    # SQLite says "disk I/O error" when the WAL index cannot grow on a full disk.
    if diskspace.is_disk_full_error(exc) or (free is not None and free < 1 << 20):
        return LibraryDiskFullError(diskspace.full_message(root, free))
    why = getattr(exc, "strerror", None) or str(exc)
    return LibraryAccessError(
        f"Shoebox cannot write to the library folder {root} ({str(why).rstrip('.').lower()}). "
        "Choose another folder, or make this one writable for you."
    )


class Library:
    def __init__(self, root: Path, *, registry: StageRegistry | None = None) -> None:
        self.root = Path(root).expanduser().absolute()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / "thumbs").mkdir(exist_ok=True)
            (self.root / "logs").mkdir(exist_ok=True)
        except OSError as exc:
            raise _cannot_write(self.root, exc) from exc
        self.settings: Settings = load_settings(self.root)
        try:
            if not (self.root / "settings.toml").exists():
                save_settings(self.root, self.settings)
            self.catalog = Catalog(self.root / CATALOG_FILE)
        except (OSError, sqlite3.OperationalError) as exc:
            if isinstance(exc, sqlite3.OperationalError) and not _is_access_error(exc):
                raise
            raise _cannot_write(self.root, exc) from exc
        self._registry = registry
        self._vector_indexes: Any = None
        self._searcher: Any = None

    @property
    def registry(self) -> StageRegistry:
        # Built lazily: stage modules pull in Pillow, which `status` does not need.
        if self._registry is None:
            self._registry = default_registry(self.settings, self.tag_words())
        return self._registry

    def tag_words(self) -> list[str]:
        """Words the user added to the zero-shot vocabulary (`shoebox tags add`)."""
        return [str(r[0]) for r in self.catalog.conn.execute("SELECT word FROM tag_words")]

    def change_tag_words(self, words: Sequence[str], *, add: bool) -> int:
        """Add or remove vocabulary words; the tags stage's version changes with them."""
        with self.catalog.write() as conn:
            if add:
                return sum(
                    conn.execute(
                        "INSERT OR IGNORE INTO tag_words (word, added_at) VALUES (?, ?)",
                        (w, time.time()),
                    ).rowcount
                    for w in words
                )
            return sum(
                conn.execute("DELETE FROM tag_words WHERE word = ?", (w,)).rowcount for w in words
            )

    def apply_settings(self) -> list[int]:
        """Rebuild the stages from the current settings and vocabulary; a stage whose
        version changed (another model, new words) starts a re-index in the batch lane.
        Returns the new re-index sessions. A running worker host picks the change up
        by itself (it watches the settings file and the vocabulary)."""
        from engine.jobs import reindex

        self._registry = default_registry(self.settings, self.tag_words())
        with self.catalog.write() as conn:
            started = reindex.sync_versions(conn, self._registry)
            conn.execute(
                """INSERT INTO meta (key, value) VALUES ('config_gen', 1)
                   ON CONFLICT (key) DO UPDATE SET value = value + 1"""
            )
        return started

    def vector_indexes(self) -> Any:
        """The library's vector indexes (one per model), kept for this process."""
        if self._vector_indexes is None:
            from engine.vectors import VectorIndexes

            self._vector_indexes = VectorIndexes(self.root)
        return self._vector_indexes

    def searcher(self) -> Any:
        """The library's search (engine/search/hybrid.py), kept for this process."""
        if self._searcher is None:
            from engine.search.hybrid import Searcher

            self._searcher = Searcher(self.root, self.settings, image_indexes=self.vector_indexes())
        return self._searcher

    def search(self, text: str, **filters: Any) -> Any:
        """One search box: words, phrases, inline filters (engine/search/query.py)."""
        return self.searcher().search(self.catalog.conn, text, **filters)

    def close(self) -> None:
        if self._searcher is not None:
            self._searcher.close()
        if self._vector_indexes is not None:
            self._vector_indexes.close()  # saves a changed HNSW graph (else rebuilt later)
        self.catalog.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save_settings(self) -> None:
        save_settings(self.root, self.settings)

    def setup_logging(self, level: int = logging.INFO) -> None:
        """Full tracebacks go to logs/shoebox.log; reasons in the catalog stay short."""
        handler = _LogFile(
            self.root / "logs" / "shoebox.log",
            maxBytes=5_000_000,
            backupCount=3,
            encoding="utf-8",
        )
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(process)d %(threadName)s %(name)s %(levelname)s %(message)s"
            )
        )
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(level)
        logging.getLogger("huey").setLevel(logging.WARNING)

    # -- import ----------------------------------------------------------------

    def new_session(self, paths: Sequence[str | os.PathLike[str]]) -> int:
        return create_session(self.catalog, [os.fspath(p) for p in paths])

    def import_paths(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        session_id: int | None = None,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> ImportSummary:
        importer = Importer(self.catalog, self.registry, self.settings)
        return importer.run(
            [os.fspath(p) for p in paths], session_id=session_id, progress=progress, cancel=cancel
        )

    def session_summary(self, session_id: int) -> ImportSummary:
        """An import's summary as `shoebox import --json` gives it, from the same read
        of the session's counts as `sessions()` (`engine.progress.session_counts`)."""
        from engine.progress import session_counts

        [c] = session_counts(self.catalog.conn, session_ids=[session_id], failed_items=True)
        return ImportSummary(
            session_id=session_id,
            files_seen=c.files_seen,
            items_new=c.items_new,
            duplicates=c.duplicates,
            relinked=c.relinked,
            unchanged=c.unchanged,
            skipped=c.files_skipped,
            unreadable=c.unreadable,
            jobs_queued=c.created,
            failed=(c.failed_items or 0) + c.unreadable,
            cancelled=c.state == "cancelled",
        )

    # -- control -----------------------------------------------------------------

    def pause(self, lane: str | None = None) -> None:
        with self.catalog.write() as conn:
            ledger.set_lane_paused(conn, [lane] if lane else LANES, True)
            next_seq(conn)

    def resume(self, lane: str | None = None) -> None:
        with self.catalog.write() as conn:
            ledger.set_lane_paused(conn, [lane] if lane else LANES, False)
            next_seq(conn)

    def pause_session(self, session_id: int, paused: bool = True) -> None:
        with self.catalog.write() as conn:
            ledger.set_session_paused(conn, session_id, paused)

    def cancel_session(self, session_id: int) -> int:
        with self.catalog.write() as conn:
            return ledger.cancel_session(conn, session_id, time.time(), self.registry)

    def retry(
        self,
        *,
        dead_only: bool = False,
        item_ids: Sequence[int] | None = None,
        job_ids: Sequence[int] | None = None,
        include_cancelled: bool = False,
    ) -> int:
        states: tuple[str, ...] = ("dead",) if dead_only else ledger.RETRYABLE
        if include_cancelled:
            states += ("cancelled",)
        with self.catalog.write() as conn:
            return ledger.retry(
                conn, states=states, item_ids=item_ids, job_ids=job_ids, registry=self.registry
            )

    def cancel_jobs(self, job_ids: Sequence[int]) -> int:
        """Cancel queued jobs; running ones are asked to stop at their next check."""
        with self.catalog.write() as conn:
            return ledger.cancel_jobs(conn, job_ids, time.time(), self.registry)

    def request_task(self, stage: str, key: str) -> str:
        """Ask for a task job ("train label 7"); repeated asks coalesce."""
        from engine.jobs.tasks import request_task

        with self.catalog.write() as conn:
            return request_task(conn, self.registry, self.settings, stage, key)

    # -- labels: the user's own categories (engine/learning) ------------------------------

    def _train_later(self, conn: Any, label_id: int, *, now: bool = False) -> None:
        from engine.jobs.tasks import request_task

        delay = 0.0 if now else self.settings.labels.debounce_s
        request_task(conn, self.registry, self.settings, "learn", str(label_id), delay_s=delay)

    def labels(self) -> list[dict[str, Any]]:
        """`shoebox label list --json`."""
        from engine.learning.labels import label_summaries

        return label_summaries(self.catalog.conn)

    def label_counts(self) -> list[dict[str, Any]]:
        from engine.learning.labels import label_counts

        return label_counts(self.catalog.conn)

    def create_label(self, name: str, examples: Sequence[int] = ()) -> int:
        from engine.learning.labels import create_label

        with self.catalog.write() as conn:
            label_id = create_label(conn, name, examples)
            if examples:
                self._train_later(conn, label_id, now=True)
        return label_id

    def label_items(
        self, name: str, item_ids: Sequence[int], *, negative: bool = False, origin: str = "cli"
    ) -> int:
        """Add items to a label as examples (or, `negative`, as counter-examples)."""
        from engine.learning.labels import NO, YES, decide, find_label

        with self.catalog.write() as conn:
            label = find_label(conn, name)
            changed = decide(conn, label.id, item_ids, NO if negative else YES, origin)
            if changed:
                self._train_later(conn, label.id)
        return changed

    def unlabel_items(self, name: str, item_ids: Sequence[int], *, negative: bool = False) -> int:
        """Remove the label from items — remembered: it never comes back by itself — or,
        `negative`, forget counter-examples (they may be suggested again)."""
        from engine.learning.labels import NO, decide, find_label, forget_decisions

        with self.catalog.write() as conn:
            label = find_label(conn, name)
            if negative:
                changed = forget_decisions(conn, label.id, item_ids, verdict=NO)
            else:
                n = len(set(item_ids))
                what = f"Remove {label.name} from {n} item{'s' if n != 1 else ''}"
                changed = decide(conn, label.id, item_ids, NO, "removed", what=what)
            if changed:
                self._train_later(conn, label.id)
        return changed

    def review(self, label: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        from engine.learning.labels import find_label
        from engine.learning.review import review_queue

        conn = self.catalog.conn
        label_id = find_label(conn, label).id if label else None
        return review_queue(conn, label_id, limit)

    def review_decide(self, label: str, item_ids: Sequence[int], *, accept: bool) -> int:
        from engine.learning.labels import NO, YES, decide, find_label

        with self.catalog.write() as conn:
            found = find_label(conn, label)
            changed = decide(conn, found.id, item_ids, YES if accept else NO, "review")
            if changed:
                self._train_later(conn, found.id)
        return changed

    def review_page(self, label: str, accepted: Sequence[int], rejected: Sequence[int]) -> int:
        """ "Confirm a page": ticked items are the label, unticked are not; one undo."""
        from engine.learning.labels import decide_page, find_label

        with self.catalog.write() as conn:
            found = find_label(conn, label)
            changed = decide_page(conn, found.id, accepted, rejected)
            if changed:
                self._train_later(conn, found.id)
        return changed

    def review_undo(self, label: str | None = None) -> str | None:
        """Undo the newest decision (of a label, or of any); returns what was undone."""
        from engine.learning.labels import find_label, undo_last

        with self.catalog.write() as conn:
            label_id = find_label(conn, label).id if label else None
            undone = undo_last(conn, label_id)
            if undone is None:
                return None
            self._train_later(conn, undone[0])
            return undone[1]

    def undo_text(self, label: str | None = None) -> str | None:
        from engine.learning.labels import find_label, last_undo

        conn = self.catalog.conn
        return last_undo(conn, find_label(conn, label).id if label else None)

    def rename_label(self, name: str, new_name: str) -> None:
        from engine.learning.labels import find_label, rename_label

        with self.catalog.write() as conn:
            label = find_label(conn, name)
            rename_label(conn, label.id, new_name)
            self._train_later(conn, label.id)  # the name is the prior

    def merge_labels(self, source: str, target: str) -> int:
        from engine.learning.labels import find_label, merge_labels

        with self.catalog.write() as conn:
            src, dst = find_label(conn, source), find_label(conn, target)
            files = [
                str(r[0])
                for r in conn.execute(
                    "SELECT file FROM label_versions WHERE label_id = ?", (src.id,)
                )
            ]
            moved = merge_labels(conn, src.id, dst.id)
            self._train_later(conn, dst.id, now=True)
        self._remove_label_files(files)
        return moved

    def delete_label(self, name: str) -> None:
        from engine.learning.labels import delete_label, find_label

        with self.catalog.write() as conn:
            files = delete_label(conn, find_label(conn, name).id)
        self._remove_label_files(files)

    def _remove_label_files(self, files: Sequence[str]) -> None:
        from engine.learning.training import models_dir

        for file in files:
            with contextlib.suppress(OSError):
                (models_dir(self.root) / file).unlink()

    def label_versions(self, name: str) -> list[dict[str, Any]]:
        from engine.learning.labels import find_label

        conn = self.catalog.conn
        label = find_label(conn, name)
        return [
            {
                "version": int(r[0]),
                "created_at": r[1],
                "status": r[2],
                "reason": r[3],
                "metrics": json.loads(r[4]),
                "active": int(r[0]) == label.active_version,
            }
            for r in conn.execute(
                """SELECT version, created_at, status, reason, metrics FROM label_versions
                   WHERE label_id = ? ORDER BY version""",
                (label.id,),
            )
        ]

    def rollback_label(self, name: str, version: int | None = None) -> int:
        """Make an earlier version active again (default: the one before the active
        one) and rescore the library with it. Returns the version now active."""
        from engine.jobs.tasks import request_task
        from engine.learning.labels import find_label, touch
        from engine.learning.names import LabelError

        with self.catalog.write() as conn:
            label = find_label(conn, name)
            if version is None:
                row = conn.execute(
                    """SELECT MAX(version) FROM label_versions WHERE label_id = ?
                       AND status = 'retired' AND version < COALESCE(?, 1 << 62)""",
                    (label.id, label.active_version),
                ).fetchone()
                if row is None or row[0] is None:
                    raise LabelError(f"{label.name} has no earlier version to go back to.")
                version = int(row[0])
            row = conn.execute(
                "SELECT status FROM label_versions WHERE label_id = ? AND version = ?",
                (label.id, version),
            ).fetchone()
            if row is None:
                raise LabelError(f"{label.name} has no version {version}.")
            conn.execute(
                "UPDATE label_versions SET status = 'retired' "
                "WHERE label_id = ? AND status = 'active'",
                (label.id,),
            )
            conn.execute(
                "UPDATE label_versions SET status = 'active' WHERE label_id = ? AND version = ?",
                (label.id, version),
            )
            conn.execute("UPDATE labels SET active_version = ? WHERE id = ?", (version, label.id))
            touch(conn, label.id)
            request_task(conn, self.registry, self.settings, "rescore", str(label.id))
        return version

    def has_pending_work(self, session_id: int | None = None) -> bool:
        return ledger.has_pending_work(self.catalog.conn, session_id)

    def prioritize(self, item_ids: Sequence[int]) -> int:
        """The user is looking at these items: run their waiting jobs first."""
        with self.catalog.write() as conn:
            return ledger.prioritize(conn, item_ids)

    def pending_work(self, session_id: int | None = None) -> int:
        return ledger.pending_work(self.catalog.conn, session_id)

    # -- queries -------------------------------------------------------------------

    def seq(self) -> int:
        return current_seq(self.catalog.conn)

    def changes_since(self, seq: int, limit: int = CHANGES_LIMIT) -> Changes:
        """What changed since `seq`. More than `limit` items (a re-index chunk, a bulk
        retry) is reported as `overflow`: the GUI refreshes what it shows instead of
        receiving a million ids."""
        conn = self.catalog.conn
        now_seq = current_seq(conn)
        sessions = [r[0] for r in conn.execute("SELECT id FROM sessions WHERE seq > ?", (seq,))]
        items: set[int] = set()
        # On the seq indexes, row by row (no DISTINCT: the planner would walk the item
        # index instead, 0.5-1 s at a million jobs); more rows than `limit` = overflow.
        for sql in (
            "SELECT item_id FROM jobs INDEXED BY jobs_seq WHERE seq > ? LIMIT ?",
            "SELECT id FROM items INDEXED BY items_seq WHERE seq > ? LIMIT ?",
        ):
            rows = conn.execute(sql, (seq, limit + 1)).fetchall()
            items.update(int(r[0]) for r in rows if r[0] is not None)
            if len(rows) > limit or len(items) > limit:
                return Changes(now_seq, [], sessions, overflow=True)
        return Changes(now_seq, sorted(items), sessions)

    def status(self) -> dict[str, Any]:
        from engine.queries import status

        return status(self.catalog.conn)

    def items(self, item_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        from engine.queries import items

        return items(
            self.catalog.conn,
            item_ids,
            root=self.root,
            embed_model=self.settings.models.embed or None,
        )

    def sessions(self) -> list[dict[str, Any]]:
        """Every session (imports, re-indexes) with its progress, newest first: the
        shape of `shoebox sessions --json` (rate and ETA from the last 30 s of work)."""
        from engine.progress import session_progress

        return [p.as_dict() for p in session_progress(self.catalog.conn)]

    def progress(self) -> dict[str, Any]:
        """The whole queue: done/total of current work, rate, ETA."""
        from engine.progress import queue_progress

        return queue_progress(self.catalog.conn).as_dict()

    def lane_paused(self) -> dict[str, bool]:
        return {r[0]: bool(r[1]) for r in self.catalog.read("SELECT name, paused FROM lanes")}


class _LogFile(RotatingFileHandler):
    """The log file; on a full disk a line that cannot be written is dropped quietly
    (else every log call prints a traceback on stderr; the host reports the pause)."""

    def handleError(self, record: logging.LogRecord) -> None:
        import sys

        from engine.diskspace import is_disk_full_error

        if is_disk_full_error(sys.exc_info()[1]):
            return
        super().handleError(record)


def open_library(root: Path | str) -> Library:
    return Library(Path(root))


def dumps(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False)
