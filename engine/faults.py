"""Fault injection for the reliability tests: off unless an environment variable asks.

SHOEBOX_FAULT_CRASH_PATH=<substring>: the worker host process kills itself
(SIGKILL, as a native decoder crash would) whenever it starts a job for an item
with a path containing the substring. Used by the kill tests; inert otherwise.
"""

from __future__ import annotations

import os
import signal

from engine.pipeline.types import ItemRef


def maybe_crash(item: ItemRef) -> None:
    needle = os.environ.get("SHOEBOX_FAULT_CRASH_PATH")
    if needle and any(needle in path for path in item.paths):
        os.kill(os.getpid(), signal.SIGKILL)


_jobs_started = 0


def job_started() -> None:
    """SHOEBOX_FAULT_KILL_AT_JOB=<n>: SIGKILL this process as its n-th job starts.

    Kills at a job count rather than a time, so a kill test proves the same thing
    on a fast machine as on a slow one."""
    global _jobs_started
    limit = os.environ.get("SHOEBOX_FAULT_KILL_AT_JOB")
    if not limit:
        return
    _jobs_started += 1
    if _jobs_started >= int(limit):
        os.kill(os.getpid(), signal.SIGKILL)
