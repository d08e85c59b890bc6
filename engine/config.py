"""Typed settings, stored as `settings.toml` in the library folder."""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

LANES: tuple[str, ...] = ("interactive", "import", "batch", "learning")
"""Priority order: a lane earlier in this tuple is served first."""

SETTINGS_FILE = "settings.toml"


@dataclass
class WorkerSettings:
    interactive: int = 1
    import_: int = 2
    batch: int = 1
    learning: int = 1  # one training at a time

    def for_lane(self, lane: str) -> int:
        return int(getattr(self, "import_" if lane == "import" else lane))


@dataclass
class Settings:
    workers: WorkerSettings = field(default_factory=WorkerSettings)
    # Messages kept in Huey per lane, per worker: enough to keep workers busy
    # without ever holding the whole backlog in the broker.
    queue_depth_per_worker: int = 4
    max_attempts: int = 3
    retry_base_s: float = 2.0
    retry_cap_s: float = 300.0
    device: str = "auto"  # auto | cpu | cuda | mps
    skip_hidden: bool = True

    def to_toml_dict(self) -> dict[str, Any]:
        data = asdict(self)
        workers = data.pop("workers")
        workers["import"] = workers.pop("import_")
        return {"general": data, "workers": workers}


def _from_dict(data: dict[str, Any]) -> Settings:
    general = data.get("general", {})
    known = {f.name for f in fields(Settings)} - {"workers"}
    settings = Settings(**{k: v for k, v in general.items() if k in known})
    workers = dict(data.get("workers", {}))
    if "import" in workers:
        workers["import_"] = workers.pop("import")
    known_lanes = {f.name for f in fields(WorkerSettings)}
    settings.workers = WorkerSettings(**{k: int(v) for k, v in workers.items() if k in known_lanes})
    return settings


def load_settings(library_dir: Path) -> Settings:
    path = library_dir / SETTINGS_FILE
    if not path.exists():
        return Settings()
    with path.open("rb") as fh:
        return _from_dict(tomllib.load(fh))


def save_settings(library_dir: Path, settings: Settings) -> None:
    import tomli_w

    path = library_dir / SETTINGS_FILE
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(tomli_w.dumps(settings.to_toml_dict()), encoding="utf-8")
    os.replace(tmp, path)


def default_library_dir() -> Path:
    """The platform's user-data folder (e.g. ~/.local/share/Shoebox/Library)."""
    env = os.environ.get("SHOEBOX_LIBRARY")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("Shoebox", appauthor=False)) / "Library"
