"""Shared bits for benchmarks: repo on sys.path, data cache folder, JSON output."""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "out"


def emit(result: dict[str, Any]) -> None:
    """The last line of every benchmark's output is one JSON object."""
    print(json.dumps(result, sort_keys=True), flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def warm_page_cache(paths: list[Path]) -> None:
    """Read every file once so both sides of a comparison start with the same cache."""
    for path in paths:
        with open(path, "rb") as fh:
            while fh.read(1 << 20):
                pass


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
