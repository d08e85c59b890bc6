"""The full-text index (`search_text`, SQLite FTS5): file names, folder names, tags and
page text of every item, diacritics folded.

Triggers on `paths`, `item_tags` and `ocr_pages` mark an item dirty (`search_dirty`);
`flush` rebuilds the rows of dirty items. Rebuilding a whole row (not patching it) keeps
it simple and always right; an item's row is small except for its text, which changes
only when it is read again. Paths are raw bytes, so names are decoded here, not in SQL.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence

# Folder names of each path indexed (the nearest ones: ".../Taxes/2023/receipt.pdf"
# is found by "taxes" and by "2023", not by "home").
FOLDER_DEPTH = 4
FLUSH_CHUNK = 500


def pending(conn: sqlite3.Connection) -> bool:
    """Whether some item's search row is out of date (one indexed read)."""
    return conn.execute("SELECT 1 FROM search_dirty LIMIT 1").fetchone() is not None


def flush(conn: sqlite3.Connection, limit: int | None = None) -> int:
    """Rebuild the search rows of dirty items, inside the caller's write transaction.
    Returns how many items were rebuilt."""
    sql = "SELECT item_id FROM search_dirty ORDER BY item_id"
    params: tuple[int, ...] = ()
    if limit is not None:
        sql += " LIMIT ?"
        params = (limit,)
    ids = [int(r[0]) for r in conn.execute(sql, params)]
    for start in range(0, len(ids), FLUSH_CHUNK):
        rebuild(conn, ids[start : start + FLUSH_CHUNK])
    return len(ids)


def rebuild(conn: sqlite3.Connection, item_ids: Sequence[int]) -> None:
    """The search rows of these items from the catalog (inside a write transaction)."""
    if not item_ids:
        return
    marks = ",".join("?" * len(item_ids))
    ids = tuple(int(i) for i in item_ids)
    present = {int(r[0]) for r in conn.execute(f"SELECT id FROM items WHERE id IN ({marks})", ids)}
    paths: dict[int, list[tuple[str, bool]]] = {}
    for r in conn.execute(
        f"SELECT item_id, display, missing FROM paths WHERE item_id IN ({marks}) ORDER BY id", ids
    ):
        paths.setdefault(int(r[0]), []).append((str(r[1]), bool(r[2])))
    tags: dict[int, list[str]] = {}
    for r in conn.execute(
        f"SELECT DISTINCT item_id, tag FROM item_tags WHERE item_id IN ({marks})", ids
    ):
        tags.setdefault(int(r[0]), []).append(str(r[1]))
    for r in conn.execute(  # the user's labels, theirs and automatic, are words too
        f"""SELECT d.item_id, l.name FROM label_decisions d JOIN labels l ON l.id = d.label_id
            WHERE d.item_id IN ({marks}) AND d.verdict > 0
            UNION
            SELECT a.item_id, l.name FROM item_labels a JOIN labels l ON l.id = a.label_id
            WHERE a.item_id IN ({marks})""",
        ids + ids,
    ):
        tags.setdefault(int(r[0]), []).append(str(r[1]))
    bodies: dict[int, list[str]] = {}
    for r in conn.execute(
        f"SELECT item_id, text FROM ocr_pages WHERE item_id IN ({marks}) ORDER BY item_id, page",
        ids,
    ):
        bodies.setdefault(int(r[0]), []).append(str(r[1]))
    conn.execute(f"DELETE FROM search_text WHERE rowid IN ({marks})", ids)
    rows = []
    for item_id in ids:
        if item_id not in present:
            continue
        names, folders = names_and_folders(paths.get(item_id, []))
        rows.append(
            (
                item_id,
                " ".join(names),
                " ".join(folders),
                " ".join(sorted(tags.get(item_id, []))),
                "\n\n".join(bodies.get(item_id, [])),
            )
        )
    conn.executemany(
        "INSERT INTO search_text (rowid, name, folders, tags, body) VALUES (?, ?, ?, ?, ?)", rows
    )
    conn.execute(f"DELETE FROM search_dirty WHERE item_id IN ({marks})", ids)


def names_and_folders(paths: Sequence[tuple[str, bool]]) -> tuple[list[str], list[str]]:
    """File names and nearby folder names of an item's paths (existing ones, or all of
    them when every copy is missing: a file on an unplugged drive is still findable)."""
    live = [p for p, missing in paths if not missing] or [p for p, _ in paths]
    names: list[str] = []
    folders: list[str] = []
    for display in live:
        head, name = os.path.split(display)
        if name and name not in names:
            names.append(name)
        for _ in range(FOLDER_DEPTH):
            head, folder = os.path.split(head)
            if not folder:
                break
            if folder not in folders:
                folders.append(folder)
    return names, folders
