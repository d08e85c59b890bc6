"""Is the file a stage read still the content the item was catalogued with?

Stages read whatever is at the path now, but store under the item's hash. A file
edited in place after import would give the old item the new file's results.
Before storing, the host compares each path's size and mtime with the catalog;
when they differ it rehashes: same content (only touched) → the new stat is
recorded; new content → the path is catalogued again by the importer (the new
content becomes its own item; the old item keeps its history) and this job must
not store its result.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from engine.config import Settings
from engine.pipeline.registry import StageRegistry
from engine.pipeline.types import ItemRef
from engine.store.db import Catalog

log = logging.getLogger("shoebox.freshness")


@dataclass(frozen=True)
class Freshness:
    changed: tuple[str, ...] = ()  # paths whose content is no longer the item's
    intact: int = 0  # paths still holding the item's content

    @property
    def ok(self) -> bool:
        return not self.changed


def check(item: ItemRef, catalog: Catalog) -> Freshness:
    """Compare the item's paths with their catalogued size and mtime (a stat each)."""
    if not item.path_stats:
        return Freshness()
    changed: list[str] = []
    intact = 0
    for path, (size, mtime_ns) in zip(item.paths, item.path_stats, strict=False):
        try:
            st = os.stat(path)
        except OSError:
            continue  # gone: the stage failed to read it or read it before; not new content
        if st.st_size == size and st.st_mtime_ns == mtime_ns:
            intact += 1
            continue
        if _same_content(path, item.hash):
            _record_stat(catalog, path, st.st_size, st.st_mtime_ns)
            intact += 1
        else:
            changed.append(path)
    return Freshness(tuple(changed), intact)


def _same_content(path: str, content_hash: str) -> bool:
    from engine.importing.hashing import hash_file

    try:
        digest, _, _ = hash_file(path)
    except OSError:
        return False
    return digest == content_hash


def _record_stat(catalog: Catalog, path: str, size: int, mtime_ns: int) -> None:
    with catalog.write() as conn:
        conn.execute(
            "UPDATE paths SET size = ?, mtime_ns = ? WHERE raw = ?",
            (size, mtime_ns, os.fsencode(path)),
        )


def recatalogue(
    paths: tuple[str, ...], catalog: Catalog, registry: StageRegistry, settings: Settings
) -> None:
    """Import the changed files again: their new content becomes items of its own."""
    from engine.importing.importer import Importer

    try:
        Importer(catalog, registry, settings).run(list(paths))
    except Exception:
        log.exception("re-cataloguing changed files failed: %s", paths)
