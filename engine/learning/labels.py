"""Labels and the user's decisions about them, in the catalog.

Rules kept here (and only here):
- A decision is the user's: an example, an accepted or rejected suggestion, a
  removed label. It is written only by these functions; automatic labelling
  never writes or overrides one (training.py checks for a decision in the same
  transaction that applies a label).
- A rejection is permanent for that label: the item is never suggested or applied
  again, by any version, until the user changes that decision themselves.
- Every user action is one undo entry that restores exactly what it replaced.

All functions that change something run inside the caller's write transaction
and return what the caller needs to schedule training.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.learning.names import LabelError, clean_name, label_key
from engine.store.db import next_seq

YES, NO = 1, -1
ORIGINS = ("example", "review", "page", "removed", "cli")
# Decisions that count as audits of the model: answers to what it suggested or applied.
AUDIT_ORIGINS = ("review", "page", "removed")


@dataclass(frozen=True)
class LabelRow:
    id: int
    name: str
    active_version: int | None
    threshold: float | None
    estimated_precision: float | None
    threshold_reason: str
    require_bound: bool


def _row(r: Sequence[Any]) -> LabelRow:
    return LabelRow(
        int(r[0]),
        str(r[1]),
        None if r[2] is None else int(r[2]),
        None if r[3] is None else float(r[3]),
        None if r[4] is None else float(r[4]),
        str(r[5] or ""),
        bool(r[6]),
    )


_COLUMNS = (
    "id, name, active_version, threshold, estimated_precision, threshold_reason, require_bound"
)


def get_label(conn: sqlite3.Connection, label_id: int) -> LabelRow | None:
    r = conn.execute(f"SELECT {_COLUMNS} FROM labels WHERE id = ?", (label_id,)).fetchone()
    return None if r is None else _row(r)


def find_label(conn: sqlite3.Connection, name: str) -> LabelRow:
    r = conn.execute(f"SELECT {_COLUMNS} FROM labels WHERE key = ?", (label_key(name),)).fetchone()
    if r is None:
        raise LabelError(f"There is no label {name!r} (shoebox label list shows them).")
    return _row(r)


def all_labels(conn: sqlite3.Connection) -> list[LabelRow]:
    return [_row(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM labels ORDER BY key")]


def touch(conn: sqlite3.Connection, label_id: int) -> None:
    """The label changed: the GUI refreshes it."""
    conn.execute("UPDATE labels SET seq = ? WHERE id = ?", (next_seq(conn), label_id))


def _check_items(conn: sqlite3.Connection, item_ids: Sequence[int]) -> list[int]:
    ids = list(dict.fromkeys(int(i) for i in item_ids))
    if not ids:
        raise LabelError("Name at least one item.")
    found: set[int] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(
            int(r[0]) for r in conn.execute(f"SELECT id FROM items WHERE id IN ({marks})", chunk)
        )
    missing = [i for i in ids if i not in found]
    if missing:
        shown = ", ".join(str(i) for i in missing[:5]) + ("…" if len(missing) > 5 else "")
        raise LabelError(f"There is no item {shown}.")
    return ids


def create_label(
    conn: sqlite3.Connection, name: str, examples: Sequence[int] = (), *, now: float | None = None
) -> int:
    """A new label, with its first examples (may be none yet)."""
    shown = clean_name(name)
    now = time.time() if now is None else now
    if conn.execute("SELECT 1 FROM labels WHERE key = ?", (label_key(shown),)).fetchone():
        raise LabelError(f"There is already a label {shown!r}.")
    ids = _check_items(conn, examples) if examples else []
    cur = conn.execute(
        "INSERT INTO labels (name, key, created_at, seq) VALUES (?, ?, ?, ?)",
        (shown, label_key(shown), now, next_seq(conn)),
    )
    label_id = int(cur.lastrowid or 0)
    if ids:
        decide(conn, label_id, ids, YES, "example", now=now, undoable=False)
    return label_id


def _snapshot(conn: sqlite3.Connection, label_id: int, item_id: int) -> dict[str, Any]:
    decision = conn.execute(
        """SELECT verdict, origin, score, threshold, version, decided_at FROM label_decisions
           WHERE label_id = ? AND item_id = ?""",
        (label_id, item_id),
    ).fetchone()
    auto = conn.execute(
        "SELECT score, version FROM item_labels WHERE label_id = ? AND item_id = ?",
        (label_id, item_id),
    ).fetchone()
    suggestion = conn.execute(
        """SELECT rank, score, reason, why, version FROM label_suggestions
           WHERE label_id = ? AND item_id = ?""",
        (label_id, item_id),
    ).fetchone()
    return {
        "item": item_id,
        "decision": list(decision) if decision else None,
        "auto": list(auto) if auto else None,
        "suggestion": list(suggestion) if suggestion else None,
    }


def _model_opinion(
    snapshot: dict[str, Any], label: LabelRow
) -> tuple[float | None, float | None, int | None]:
    """What the active model thought of the item when the user decided: its score (from
    the automatic label or the suggestion), the threshold then, and the version."""
    if snapshot["auto"] is not None:
        return float(snapshot["auto"][0]), label.threshold, int(snapshot["auto"][1])
    if snapshot["suggestion"] is not None:
        return float(snapshot["suggestion"][1]), label.threshold, int(snapshot["suggestion"][4])
    return None, label.threshold, label.active_version


def decide(
    conn: sqlite3.Connection,
    label_id: int,
    item_ids: Sequence[int],
    verdict: int,
    origin: str,
    *,
    now: float | None = None,
    undoable: bool = True,
    what: str = "",
) -> int:
    """Record the user's verdict (YES or NO) on these items for this label; returns how
    many decisions changed. Automatic labels and suggestions of these items go: the
    decision is what counts now."""
    if verdict not in (YES, NO):
        raise ValueError(f"verdict must be {YES} or {NO}")
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {ORIGINS}")
    label = get_label(conn, label_id)
    if label is None:
        raise LabelError(f"There is no label {label_id}.")
    ids = _check_items(conn, item_ids)
    now = time.time() if now is None else now
    before: list[dict[str, Any]] = []
    changed = 0
    for item_id in ids:
        snap = _snapshot(conn, label_id, item_id)
        if snap["decision"] is not None and int(snap["decision"][0]) == verdict:
            continue  # already so: nothing to undo either
        before.append(snap)
        score, threshold, version = _model_opinion(snap, label)
        conn.execute(
            """INSERT INTO label_decisions
                   (label_id, item_id, verdict, origin, score, threshold, version, decided_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (label_id, item_id) DO UPDATE SET
                   verdict = excluded.verdict, origin = excluded.origin,
                   decided_at = excluded.decided_at""",
            (label_id, item_id, verdict, origin, score, threshold, version, now),
        )
        conn.execute(
            "DELETE FROM item_labels WHERE label_id = ? AND item_id = ?", (label_id, item_id)
        )
        conn.execute(
            "DELETE FROM label_suggestions WHERE label_id = ? AND item_id = ?",
            (label_id, item_id),
        )
        changed += 1
    if changed:
        if undoable:
            word = "Accept" if verdict == YES else "Reject"
            default = f"{word} {changed} item{'s' if changed != 1 else ''} as {label.name}"
            conn.execute(
                "INSERT INTO label_undo (label_id, at, what, before) VALUES (?, ?, ?, ?)",
                (label_id, now, what or default, json.dumps(before)),
            )
        touch(conn, label_id)
    return changed


def decide_page(
    conn: sqlite3.Connection,
    label_id: int,
    accepted: Sequence[int],
    rejected: Sequence[int],
    *,
    now: float | None = None,
) -> int:
    """ "Confirm a page": the ticked items are the label, the unticked are not — one
    user action, one undo entry."""
    now = time.time() if now is None else now
    label = get_label(conn, label_id)
    if label is None:
        raise LabelError(f"There is no label {label_id}.")
    before: list[dict[str, Any]] = []
    ids = set(_check_items(conn, [*accepted, *rejected]))
    for item_id in sorted(ids):
        before.append(_snapshot(conn, label_id, item_id))
    changed = 0
    if accepted:
        changed += decide(conn, label_id, accepted, YES, "page", now=now, undoable=False)
    if rejected:
        changed += decide(conn, label_id, rejected, NO, "page", now=now, undoable=False)
    if changed:
        what = f"Confirm a page of {label.name} ({len(accepted)} yes, {len(rejected)} no)"
        conn.execute(
            "INSERT INTO label_undo (label_id, at, what, before) VALUES (?, ?, ?, ?)",
            (label_id, now, what, json.dumps(before)),
        )
    return changed


def forget_decisions(
    conn: sqlite3.Connection, label_id: int, item_ids: Sequence[int], *, verdict: int
) -> int:
    """Take items out of a label's examples (verdict YES) or counter-examples (NO): the
    model may suggest them again. One undo entry."""
    label = get_label(conn, label_id)
    if label is None:
        raise LabelError(f"There is no label {label_id}.")
    ids = _check_items(conn, item_ids)
    before = []
    for item_id in ids:
        snap = _snapshot(conn, label_id, item_id)
        if snap["decision"] is None or int(snap["decision"][0]) != verdict:
            continue
        before.append(snap)
        conn.execute(
            "DELETE FROM label_decisions WHERE label_id = ? AND item_id = ?", (label_id, item_id)
        )
    if before:
        conn.execute(
            "INSERT INTO label_undo (label_id, at, what, before) VALUES (?, ?, ?, ?)",
            (
                label_id,
                time.time(),
                f"Forget {len(before)} decisions of {label.name}",
                json.dumps(before),
            ),
        )
        touch(conn, label_id)
    return len(before)


def undo_last(conn: sqlite3.Connection, label_id: int | None = None) -> tuple[int, str] | None:
    """Undo the newest user action (of one label, or of any): restores each item's
    decision, automatic label and suggestion as they were. Returns (label id, what
    was undone), or None when there is nothing to undo."""
    if label_id is None:
        row = conn.execute(
            "SELECT id, label_id, what, before FROM label_undo ORDER BY id DESC LIMIT 1"
        ).fetchone()
    else:
        row = conn.execute(
            """SELECT id, label_id, what, before FROM label_undo WHERE label_id = ?
               ORDER BY id DESC LIMIT 1""",
            (label_id,),
        ).fetchone()
    if row is None:
        return None
    undo_id, lid, what = int(row[0]), int(row[1]), str(row[2])
    for snap in json.loads(row[3]):
        item_id = int(snap["item"])
        conn.execute(
            "DELETE FROM label_decisions WHERE label_id = ? AND item_id = ?", (lid, item_id)
        )
        if snap["decision"] is not None:
            verdict, origin, score, threshold, version, decided_at = snap["decision"]
            conn.execute(
                """INSERT INTO label_decisions (label_id, item_id, verdict, origin, score,
                       threshold, version, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (lid, item_id, verdict, origin, score, threshold, version, decided_at),
            )
        if snap["auto"] is not None and snap["decision"] is None:
            conn.execute(
                """INSERT OR REPLACE INTO item_labels (label_id, item_id, score, version)
                   VALUES (?, ?, ?, ?)""",
                (lid, item_id, *snap["auto"]),
            )
        if snap["suggestion"] is not None and snap["decision"] is None:
            conn.execute(
                """INSERT OR REPLACE INTO label_suggestions
                       (label_id, item_id, rank, score, reason, why, version)
                   VALUES (?, ?, ?, ?, ?, ?, ?)""",
                (lid, item_id, *snap["suggestion"]),
            )
    conn.execute("DELETE FROM label_undo WHERE id = ?", (undo_id,))
    touch(conn, lid)
    return lid, what


def last_undo(conn: sqlite3.Connection, label_id: int | None = None) -> str | None:
    """Words for the Undo menu item, or None."""
    sql = "SELECT what FROM label_undo{} ORDER BY id DESC LIMIT 1"
    row = (
        conn.execute(sql.format(""), ()).fetchone()
        if label_id is None
        else conn.execute(sql.format(" WHERE label_id = ?"), (label_id,)).fetchone()
    )
    return None if row is None else str(row[0])


def rename_label(conn: sqlite3.Connection, label_id: int, new_name: str) -> None:
    shown = clean_name(new_name)
    other = conn.execute(
        "SELECT id FROM labels WHERE key = ? AND id != ?", (label_key(shown), label_id)
    ).fetchone()
    if other is not None:
        raise LabelError(f"There is already a label {shown!r} (merge them instead).")
    conn.execute(
        "UPDATE labels SET name = ?, key = ? WHERE id = ?", (shown, label_key(shown), label_id)
    )
    # The name is a searchable word of every item that has the label.
    conn.execute(
        """INSERT INTO search_dirty (item_id)
           SELECT item_id FROM label_decisions WHERE label_id = ? AND verdict > 0
           UNION SELECT item_id FROM item_labels WHERE label_id = ?
           EXCEPT SELECT item_id FROM search_dirty""",
        (label_id, label_id),
    )
    touch(conn, label_id)


def merge_labels(conn: sqlite3.Connection, source_id: int, target_id: int) -> int:
    """Move the source's decisions into the target (the target's own decision wins where
    both decided an item) and delete the source. Returns the decisions moved."""
    if source_id == target_id:
        raise LabelError("A label cannot be merged into itself.")
    moved = conn.execute(
        """INSERT INTO label_decisions (label_id, item_id, verdict, origin, score, threshold,
                                        version, decided_at)
           SELECT ?, item_id, verdict, origin, NULL, NULL, NULL, decided_at
           FROM label_decisions WHERE label_id = ?
             AND item_id NOT IN (SELECT item_id FROM label_decisions WHERE label_id = ?)""",
        (target_id, source_id, target_id),
    ).rowcount
    conn.execute(
        """DELETE FROM item_labels WHERE label_id = ? AND item_id IN
               (SELECT item_id FROM label_decisions WHERE label_id = ?)""",
        (target_id, target_id),
    )
    conn.execute(
        """DELETE FROM label_suggestions WHERE label_id = ? AND item_id IN
               (SELECT item_id FROM label_decisions WHERE label_id = ?)""",
        (target_id, target_id),
    )
    delete_label(conn, source_id)
    touch(conn, target_id)
    return int(moved)


def delete_label(conn: sqlite3.Connection, label_id: int) -> list[str]:
    """Delete the label and everything learnt for it; returns its model files (relative
    to label-models/) for the caller to remove once the transaction is committed."""
    files = [
        str(r[0])
        for r in conn.execute("SELECT file FROM label_versions WHERE label_id = ?", (label_id,))
    ]
    conn.execute(
        """INSERT INTO search_dirty (item_id)
           SELECT item_id FROM label_decisions WHERE label_id = ? AND verdict > 0
           UNION SELECT item_id FROM item_labels WHERE label_id = ?
           EXCEPT SELECT item_id FROM search_dirty""",
        (label_id, label_id),
    )
    for table in (
        "label_undo",
        "label_suggestions",
        "item_labels",
        "label_decisions",
        "label_versions",
    ):
        conn.execute(f"DELETE FROM {table} WHERE label_id = ?", (label_id,))
    conn.execute("DELETE FROM labels WHERE id = ?", (label_id,))
    conn.execute(
        "DELETE FROM jobs WHERE item_id IS NULL AND stage = 'learn' AND task_key = ? "
        "AND state != 'running'",
        (str(label_id),),
    )
    return files


# -- reading -----------------------------------------------------------------------------


def audit_counts(conn: sqlite3.Connection, label_id: int) -> tuple[int, int]:
    """(confirmed, rejected) among the user's answers about items the model had put
    above its threshold when they answered: the audited precision's evidence."""
    marks = ",".join("?" * len(AUDIT_ORIGINS))
    row = conn.execute(
        f"""SELECT COALESCE(SUM(verdict > 0), 0), COALESCE(SUM(verdict < 0), 0)
            FROM label_decisions WHERE label_id = ? AND origin IN ({marks})
              AND score IS NOT NULL AND threshold IS NOT NULL AND score >= threshold""",
        (label_id, *AUDIT_ORIGINS),
    ).fetchone()
    return int(row[0]), int(row[1])


def label_summaries(conn: sqlite3.Connection, confidence: float = 0.95) -> list[dict[str, Any]]:
    """`shoebox label list --json`: one object per label, by name."""
    from models.classify.calibration import audited_precision

    out: list[dict[str, Any]] = []
    for label in all_labels(conn):
        counts = dict(
            conn.execute(
                """SELECT verdict, COUNT(*) FROM label_decisions WHERE label_id = ?
                   GROUP BY verdict""",
                (label.id,),
            ).fetchall()
        )
        auto = conn.execute(
            "SELECT COUNT(*) FROM item_labels WHERE label_id = ?", (label.id,)
        ).fetchone()[0]
        in_review = conn.execute(
            "SELECT COUNT(*) FROM label_suggestions WHERE label_id = ?", (label.id,)
        ).fetchone()[0]
        confirmed, rejected = audit_counts(conn, label.id)
        point, lower = audited_precision(confirmed, rejected, confidence)
        training = conn.execute(
            """SELECT state FROM jobs WHERE item_id IS NULL AND stage = 'learn'
               AND task_key = ?""",
            (str(label.id),),
        ).fetchone()
        out.append(
            {
                "name": label.name,
                "version": label.active_version,
                "examples": int(counts.get(YES, 0)),
                "negatives": int(counts.get(NO, 0)),
                "auto": int(auto),
                "in_review": int(in_review),
                "estimated_precision": label.estimated_precision,
                "audited_precision": point,
                "audited_precision_lower": lower,
                "audited": confirmed + rejected,
                "threshold": label.threshold,
                "suggest_only": label.threshold is None,
                "why_suggest_only": label.threshold_reason if label.threshold is None else "",
                "training": None if training is None else str(training[0]),
                "id": label.id,
            }
        )
    return out


def labels_for(
    conn: sqlite3.Connection, item_ids: Iterable[int]
) -> dict[int, list[dict[str, Any]]]:
    """Each item's labels: `{"label", "source": "user"|"auto", "score"}`, by name."""
    ids = [int(i) for i in item_ids]
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for r in conn.execute(
            f"""SELECT d.item_id, l.name, 'user', NULL FROM label_decisions d
                    JOIN labels l ON l.id = d.label_id
                WHERE d.item_id IN ({marks}) AND d.verdict > 0
                UNION ALL
                SELECT a.item_id, l.name, 'auto', a.score FROM item_labels a
                    JOIN labels l ON l.id = a.label_id
                WHERE a.item_id IN ({marks})
                ORDER BY 2""",
            chunk + chunk,
        ):
            out[int(r[0])].append(
                {
                    "label": str(r[1]),
                    "source": str(r[2]),
                    "score": None if r[3] is None else round(float(r[3]), 4),
                }
            )
    return out


def label_counts(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """For the sidebar: each label with how many items are yours / automatic / to review."""
    return [
        {
            "id": int(r[0]),
            "name": str(r[1]),
            "user": int(r[2]),
            "auto": int(r[3]),
            "review": int(r[4]),
        }
        for r in conn.execute(
            """SELECT l.id, l.name,
                   (SELECT COUNT(*) FROM label_decisions d WHERE d.label_id = l.id
                        AND d.verdict > 0),
                   (SELECT COUNT(*) FROM item_labels a WHERE a.label_id = l.id),
                   (SELECT COUNT(*) FROM label_suggestions s WHERE s.label_id = l.id)
               FROM labels l ORDER BY l.key"""
        )
    ]


def labels_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM labels").fetchone()[0])
