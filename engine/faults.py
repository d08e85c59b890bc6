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
