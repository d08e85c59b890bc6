"""Open, create and configure libraries; retry items."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from engine.config import Settings, WorkerSettings, load_settings, save_settings
from engine.errors import SettingsError
from engine.library import CATALOG_FILE, Library


def is_library(folder: Path) -> bool:
    return (folder / CATALOG_FILE).is_file()


def open_library(folder: Path) -> Library:
    """Open (creating when new) the library in `folder`."""
    return Library(folder)


def settings_problem(folder: Path) -> SettingsError | None:
    """Why the library's `settings.toml` cannot be used, or None (also: no file yet).

    Reads the file only; nothing is created. Opening the library raises the same error.
    """
    try:
        load_settings(Path(folder))
    except SettingsError as exc:
        return exc
    return None


def apply_settings(library: Library, *, workers: WorkerSettings, device: str) -> Settings:
    """Save new per-lane worker counts and compute device; the caller restarts the host.

    The settings dialog has no field for the shared pool size: the library's own value
    is kept. Raises SettingsError (saving nothing, changing nothing) if a value is invalid.
    """
    lanes = {
        "interactive": workers.interactive,
        "import_": workers.import_,
        "batch": workers.batch,
        "learning": workers.learning,
    }
    settings = library.settings
    new_workers = replace(settings.workers, **lanes)
    save_settings(library.root, replace(settings, workers=new_workers, device=device))
    settings.workers = new_workers  # in place: other parts of the app hold this object
    settings.device = device
    return settings


def look_at(library: Library, item_id: int) -> int:
    """The user opened this item: its waiting jobs move to the interactive lane."""
    return library.prioritize([item_id])


def retry_items(library: Library, item_ids: Sequence[int]) -> int:
    """Queue the failed and dead stages of these items again."""
    return library.retry(item_ids=list(item_ids))
