"""Open, create and configure libraries; retry items."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

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


# Settings whose change can make a stage's results stale: saving one re-indexes.
MODEL_KEYS = ("models.embed", "models.detect", "detect.min_score", "tags.min_score")


def settings_with(settings: Settings, values: Mapping[str, str]) -> Settings:
    """A copy of `settings` with each dotted key set from its text; raises SettingsError
    (or KeyError for a key that does not exist) for the first value that is not valid."""
    new = settings
    for key, text in values.items():
        new = new.with_value(key, text)
    return new


def apply_settings(
    library: Library,
    *,
    workers: WorkerSettings,
    device: str,
    values: Mapping[str, str] | None = None,
) -> Settings:
    """Save new per-lane worker counts, compute device and `values` (dotted keys such as
    `models.embed`, as text); the caller restarts the host.

    The settings dialog has no field for the shared pool size: the library's own value
    is kept. Raises SettingsError (saving nothing, changing nothing) if a value is invalid.
    A changed model setting also starts the re-index of the stages whose version it
    changes (`Library.apply_settings`, as `shoebox config set` does).
    """
    lanes = {
        "interactive": workers.interactive,
        "import_": workers.import_,
        "batch": workers.batch,
        "learning": workers.learning,
    }
    settings = library.settings
    new_workers = replace(settings.workers, **lanes)
    new = settings_with(replace(settings, workers=new_workers, device=device), values or {})
    save_settings(library.root, new)
    models_changed = any(new.get(key) != settings.get(key) for key in MODEL_KEYS)
    # In place: other parts of the app hold this object.
    settings.workers = new.workers
    settings.models, settings.detect, settings.tags = new.models, new.detect, new.tags
    settings.background = new.background
    settings.device = device
    if models_changed:
        library.apply_settings()
    return settings


def look_at(library: Library, item_id: int) -> int:
    """The user opened this item: its waiting jobs move to the interactive lane."""
    return library.prioritize([item_id])


def retry_items(library: Library, item_ids: Sequence[int]) -> int:
    """Queue the failed and dead stages of these items again."""
    return library.retry(item_ids=list(item_ids))


def background(library: Library) -> dict[str, Any] | None:
    """What the running worker host says of its background mode (None: not running)."""
    from engine.queries import host_background

    return host_background(library.catalog.conn)


def note_activity(library: Library) -> None:
    """The user touched the app: "Only when idle" waits (engine/jobs/throttle.py)."""
    from engine.jobs.throttle import note_activity as stamp

    stamp(library.root)
