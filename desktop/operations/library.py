"""Open, create and configure libraries; retry items."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from engine.config import Settings, WorkerSettings
from engine.library import CATALOG_FILE, Library


def is_library(folder: Path) -> bool:
    return (folder / CATALOG_FILE).is_file()


def open_library(folder: Path) -> Library:
    """Open (creating when new) the library in `folder`."""
    return Library(folder)


def apply_settings(library: Library, *, workers: WorkerSettings, device: str) -> Settings:
    """Save new worker counts and compute device; the caller restarts the worker host."""
    library.settings.workers = workers
    library.settings.device = device
    library.save_settings()
    return library.settings


def look_at(library: Library, item_id: int) -> int:
    """The user opened this item: its waiting jobs move to the interactive lane."""
    return library.prioritize([item_id])


def retry_items(library: Library, item_ids: Sequence[int]) -> int:
    """Queue the failed and dead stages of these items again."""
    return library.retry(item_ids=list(item_ids))
