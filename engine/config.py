"""Typed settings, stored as `settings.toml` in the library folder.

Every setting is declared once, as a dataclass field with a `_Rule` (its type and
valid range, in words for the error message) and a one-line description. Loading
checks each value against its rule and collects every problem into one
`SettingsError`; unknown keys are ignored with a warning, so an older Shoebox can
open a newer file.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.errors import SettingsError

log = logging.getLogger("shoebox.settings")

LANES: tuple[str, ...] = ("interactive", "import", "batch", "learning")
"""The job lanes in priority order: a lane earlier in this tuple is served first."""

SETTINGS_FILE = "settings.toml"

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class _Rule:
    """A setting's type and valid range; `expected` says both in words."""

    kind: type[Any]  # bool, int, float or str
    ok: Callable[[Any], bool]
    expected: str


def _whole(minimum: int) -> _Rule:
    return _Rule(int, lambda v: v >= minimum, f"a whole number ≥ {minimum}")


def _above(minimum: float) -> _Rule:
    return _Rule(float, lambda v: v > minimum, f"a number > {minimum:g}")


def _at_least(minimum: float) -> _Rule:
    return _Rule(float, lambda v: v >= minimum, f"a number ≥ {minimum:g}")


def _one_of(*choices: str) -> _Rule:
    return _Rule(str, lambda v: v in choices, "one of " + ", ".join(f'"{c}"' for c in choices))


_YES_NO = _Rule(bool, lambda v: True, "true or false")


def _setting(
    rule: _Rule,
    doc: str,
    default: Any = None,
    *,
    factory: Callable[[], Any] | None = None,
    key: str | None = None,
) -> Any:
    """A dataclass field with its rule, description and TOML key (default: its name)."""
    metadata = {"rule": rule, "doc": doc, "key": key}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _default_pool() -> int:
    return max(2, os.cpu_count() or 2)


@dataclass
class WorkerSettings:
    """The `[workers]` table."""

    pool: int = _setting(
        _whole(1),
        "size of the shared worker pool that serves the import, batch and learning "
        "lanes; the per-lane counts below are caps within it",
        factory=_default_pool,
    )
    interactive: int = _setting(_whole(1), "workers for the items you are looking at now", 1)
    import_: int = _setting(_whole(1), "at most this many workers on new imports", 2, key="import")
    batch: int = _setting(
        _whole(1), "at most this many workers re-processing after a model change", 1
    )
    learning: int = _setting(_whole(1), "at most this many trainings at a time", 1)

    def for_lane(self, lane: str) -> int:
        if lane not in LANES:
            raise ValueError(f"unknown lane {lane!r}")
        value: int = getattr(self, "import_" if lane == "import" else lane)
        return value


@dataclass
class Settings:
    """The `[general]` table, plus `workers` for the `[workers]` table."""

    workers: WorkerSettings = field(default_factory=WorkerSettings)
    queue_depth_per_worker: int = _setting(
        _whole(1),
        "messages kept in the work queue per lane, per worker: enough to keep workers "
        "busy without ever holding the whole backlog in the broker",
        4,
    )
    max_attempts: int = _setting(_whole(1), "tries of a job before it is dead", 3)
    retry_base_s: float = _setting(_above(0), "first retry delay, doubled on each try", 2.0)
    retry_cap_s: float = _setting(_above(0), "longest retry delay", 300.0)
    stop_grace_s: float = _setting(
        _above(0),
        "how long a graceful stop waits for running jobs before handing them back",
        10.0,
    )
    model_idle_release_s: float = _setting(
        _at_least(0), "an unused model is released from memory after this long", 600.0
    )
    device: str = _setting(_one_of(*DEVICES), "compute device for models", "auto")
    skip_hidden: bool = _setting(_YES_NO, "skip hidden files and folders on import", True)
    warnings: list[str] = field(default_factory=list, init=False, repr=False, compare=False)
    """What loading ignored (unknown keys and tables); never saved."""

    def to_toml_dict(self) -> dict[str, Any]:
        return {
            table: {_key(f): getattr(obj, f.name) for f in _settings_fields(obj)}
            for table, obj in (("general", self), ("workers", self.workers))
        }


def _settings_fields(obj: Settings | WorkerSettings) -> Iterator[Field[Any]]:
    return (f for f in fields(obj) if "rule" in f.metadata)


def _key(f: Field[Any]) -> str:
    key: str | None = f.metadata["key"]
    return key or f.name


_TABLES: dict[str, type[Settings] | type[WorkerSettings]] = {
    "general": Settings,
    "workers": WorkerSettings,
}


def setting_keys() -> list[tuple[str, str, str]]:
    """(table, key, description) of every setting, in file order."""
    return [
        (table, _key(f), str(f.metadata["doc"]))
        for table, cls in _TABLES.items()
        for f in fields(cls)
        if "rule" in f.metadata
    ]


def _describe(value: object) -> str:
    """A found value in words, for an error message."""
    if isinstance(value, str):
        return f"the text {json.dumps(value, ensure_ascii=False)}"
    if isinstance(value, bool):
        return f"the yes/no value {str(value).lower()}"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"the date/time {value}"


def _coerce(value: object, kind: type[Any]) -> tuple[bool, Any]:
    """(True, value as `kind`) if `value` is of that type; floats accept whole numbers."""
    if kind is bool or isinstance(value, bool):  # bool is an int subclass: never mix them
        return (kind is bool and isinstance(value, bool)), value
    if kind is float and isinstance(value, int | float):
        return math.isfinite(value), float(value)
    return isinstance(value, kind), value


def _parse_table(
    table: str, cls: type[Any], data: object, errors: list[str], warnings: list[str]
) -> dict[str, Any]:
    """Constructor arguments for `cls` from one TOML table; problems go to the lists."""
    if not isinstance(data, dict):
        errors.append(f"[{table}] must be a table, not {_describe(data)}")
        return {}
    known = {_key(f): f for f in fields(cls) if "rule" in f.metadata}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        spec = known.get(key)
        if spec is None:
            warnings.append(f"unknown key [{table}] {key} (ignored)")
            continue
        rule: _Rule = spec.metadata["rule"]
        is_kind, coerced = _coerce(value, rule.kind)
        if is_kind and rule.ok(coerced):
            kwargs[spec.name] = coerced
        else:
            errors.append(f"[{table}] {key} must be {rule.expected}, not {_describe(value)}")
    return kwargs


def parse_settings(data: dict[str, Any], path: Path | str = SETTINGS_FILE) -> Settings:
    """Settings from a parsed TOML document; raises SettingsError listing every problem."""
    errors: list[str] = []
    warnings: list[str] = []
    for table in data:
        if table not in _TABLES:
            warnings.append(f"unknown table [{table}] (ignored)")
    general = _parse_table("general", Settings, data.get("general", {}), errors, warnings)
    workers = _parse_table("workers", WorkerSettings, data.get("workers", {}), errors, warnings)
    if errors:
        raise SettingsError(path, errors)
    settings = Settings(workers=WorkerSettings(**workers), **general)
    settings.warnings = warnings
    return settings


def load_settings(library_dir: Path) -> Settings:
    """The library's settings (defaults when it has no settings file)."""
    path = library_dir / SETTINGS_FILE
    if not path.exists():
        return Settings()
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(path, [f"is not valid TOML: {exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise SettingsError(path, ["is not valid TOML: it is not UTF-8 text"]) from exc
    except OSError as exc:
        raise SettingsError(path, [f"cannot be read: {exc.strerror or exc}"]) from exc
    settings = parse_settings(data, path)
    for warning in settings.warnings:
        log.warning("%s: %s", path, warning)
    return settings


def save_settings(library_dir: Path, settings: Settings) -> None:
    """Write the settings atomically; raises SettingsError (writing nothing) if invalid."""
    import tomli_w

    path = library_dir / SETTINGS_FILE
    data = settings.to_toml_dict()
    parse_settings(data, path)  # never write a file that would not load
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(tomli_w.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def default_library_dir() -> Path:
    """The platform's user-data folder (e.g. ~/.local/share/Shoebox/Library)."""
    env = os.environ.get("SHOEBOX_LIBRARY")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("Shoebox", appauthor=False)) / "Library"
