"""Fault injection for the reliability tests: off unless an environment variable asks.

SHOEBOX_FAULT_CRASH_PATH=<substring>: the worker host process kills itself
(SIGKILL, as a native decoder crash would) whenever it starts a job for an item
with a path containing the substring.

SHOEBOX_FAULT_CRASH_STAGE=<stage>: with CRASH_PATH, only when that stage starts
(e.g. in the middle of a model batch). SHOEBOX_FAULT_CRASH_ONCE=<file>: crash only
if the file does not exist yet, creating it first (one crash, then recovery).

SHOEBOX_FAULT_SLOW_PATH=<substring> (with SHOEBOX_FAULT_SLOW_S=<seconds>, default 2):
a job for such an item stalls that long before its stage runs (a slow decoder),
so a test can have a job that is certainly still running when it stops the host.

SHOEBOX_FAULT_KILL_AT_JOB=<n>: the worker host process kills itself (SIGKILL) as
its n-th job starts, counted per process (see `job_started`).

SHOEBOX_FAULT_KILL_IN_STORE=<n> (with SHOEBOX_FAULT_KILL_IN_STORE_AT=before_commit,
the default, or after_commit): the worker host SIGKILLs itself in its n-th finishing
transaction (a job's or a batch's outcome), counted per process: after the results
and the ledger rows are written but before COMMIT, or after COMMIT but before the
host goes on (the next job's start, the batch's follow-ups). See `in_store`.

SHOEBOX_FAULT_LEARN=crash | crash_after_save | corrupt: a label training SIGKILLs
its process before saving its version, or after saving the file but before the
version is recorded, or turns its own weights around (a training gone wrong, which
the promotion gate must refuse). With SHOEBOX_FAULT_CRASH_ONCE, a crash happens once.

Used by the kill tests; inert otherwise.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from engine.pipeline.types import ItemRef


def maybe_crash(item: ItemRef, stage: str = "") -> None:
    """Called by the host as a job's stage is about to run (crash or stall faults)."""
    needle = os.environ.get("SHOEBOX_FAULT_CRASH_PATH")
    only_stage = os.environ.get("SHOEBOX_FAULT_CRASH_STAGE")
    if (
        needle
        and any(needle in path for path in item.paths)
        and (not only_stage or only_stage == stage)
        and _first_crash()
    ):
        os.kill(os.getpid(), signal.SIGKILL)
    slow = os.environ.get("SHOEBOX_FAULT_SLOW_PATH")
    if slow and any(slow in path for path in item.paths):
        time.sleep(float(os.environ.get("SHOEBOX_FAULT_SLOW_S", "2")))


def _first_crash() -> bool:
    marker = os.environ.get("SHOEBOX_FAULT_CRASH_ONCE")
    if not marker:
        return True
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


_jobs_started = 0
_count_lock = threading.Lock()  # workers are threads: every start is counted once


def job_started() -> None:
    """SHOEBOX_FAULT_KILL_AT_JOB=<n>: SIGKILL this process as its n-th job starts.

    Kills at a job count rather than a time, so a kill test proves the same thing
    on a fast machine as on a slow one."""
    global _jobs_started
    limit = os.environ.get("SHOEBOX_FAULT_KILL_AT_JOB")
    if not limit:
        return
    with _count_lock:
        _jobs_started += 1
        reached = _jobs_started >= int(limit)
    if reached:
        os.kill(os.getpid(), signal.SIGKILL)


_stores = 0
_this_store = threading.local()  # which transaction this thread is in (for after_commit)


def in_store(point: str) -> None:
    """SHOEBOX_FAULT_KILL_IN_STORE=<n>: SIGKILL this process at `point` of its n-th
    finishing transaction ("before_commit": inside it, everything written; "after_commit").

    The host calls it at both points of every outcome transaction; the count moves on
    at "before_commit" and is remembered per thread, so n names one transaction
    whichever point is asked for, even with other workers committing meanwhile."""
    global _stores
    limit = os.environ.get("SHOEBOX_FAULT_KILL_IN_STORE")
    if not limit:
        return
    wanted = os.environ.get("SHOEBOX_FAULT_KILL_IN_STORE_AT") or "before_commit"
    if point == "before_commit":
        with _count_lock:
            _stores += 1
            _this_store.n = _stores
    if point == wanted and getattr(_this_store, "n", 0) == int(limit):
        os.kill(os.getpid(), signal.SIGKILL)


def learning_fault() -> str | None:
    """SHOEBOX_FAULT_LEARN's value, or None (a crash is counted by CRASH_ONCE)."""
    fault = os.environ.get("SHOEBOX_FAULT_LEARN") or None
    if fault in ("crash", "crash_after_save") and not _first_crash():
        return None
    return fault


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
