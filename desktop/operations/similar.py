"""Items that look like one: the similar query, and in words why there is none.

`find_similar` runs `engine.vectors.similar` (the first call for a model builds its
vector index, which can take a while: run it off the GUI thread); call `prepare`
on the GUI thread first, so the library's index set is made there, once.
"""

from __future__ import annotations

from engine.enrichment_view import stage_job
from engine.library import Library
from engine.queries import embeddings_for

SIMILAR_LIMIT = 60  # a few screens of the grid


def prepare(library: Library) -> None:
    library.vector_indexes()


def has_embedding(library: Library, item_id: int) -> bool:
    """Whether the item has a stored vector (one indexed read: fine on the GUI thread)."""
    return embeddings_for(library.catalog.conn, [item_id])[item_id] is not None


def find_similar(library: Library, item_id: int, limit: int = SIMILAR_LIMIT) -> list[int]:
    """The ids of the items most like `item_id`, best first (the item itself not among
    them). Raises LookupError or ValueError with a sentence for the user."""
    from engine import vectors

    hits = vectors.similar(
        library.catalog.conn,
        library.vector_indexes(),
        item_id,
        limit=limit,
        preferred_model=library.settings.models.embed or None,
    )
    return [int(hit["id"]) for hit in hits]


def no_embedding_message(library: Library, item_id: int, name: str) -> str:
    """Why `name` has no embedding yet, from its embed job (for the status bar)."""
    job = stage_job(library.catalog.conn, item_id, "embed")
    if job is None and not library.settings.models.embed:
        return f"No embedding for {name}: the embedding model is off (Settings ▸ Models)."
    if job is None:
        return f"No embedding yet for {name}: it has no embed job yet."
    state, error = job
    why = {
        "waiting": "its embed job is waiting for the model",
        "queued": "its embed job is queued",
        "running": "its embed job is running now; try again in a moment",
        "failed": "its embed job failed",
        "dead": "its embed job failed",
        "skipped": "its embed job was skipped",
        "cancelled": "its embed job was cancelled",
    }.get(state, f"its embed job is {state}")
    detail = f" — {error}" if error and state in ("waiting", "failed", "dead", "skipped") else ""
    return f"No embedding yet for {name}: {why}{detail}"
