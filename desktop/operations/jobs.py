"""Job actions: each is one small engine call, made from the GUI and returning at once.

They are ledger updates (a single short write transaction each), so they run on the
GUI thread; the views pick up the effect on their next poll.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.library import Library


def set_lane_paused(library: Library, lane: str | None, paused: bool) -> None:
    """Pause (no new job of the lane starts; running ones finish) or resume a lane.

    `lane=None` means every lane.
    """
    if paused:
        library.pause(lane)
    else:
        library.resume(lane)


def retry_jobs(library: Library, job_ids: Sequence[int]) -> int:
    """Queue these failed or dead jobs again; returns how many were queued."""
    if not job_ids:
        return 0
    return library.retry(job_ids=list(job_ids))


def retry_all(library: Library, *, dead_only: bool = False) -> int:
    """Queue every failed and dead job again (or only the dead ones)."""
    return library.retry(dead_only=dead_only)


def set_import_paused(library: Library, session_id: int, paused: bool) -> None:
    library.pause_session(session_id, paused)


def cancel_import(library: Library, session_id: int) -> int:
    """Cancel an import's queued jobs (running ones finish); returns how many."""
    return library.cancel_session(session_id)
