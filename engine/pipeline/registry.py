"""The stage interface and the registry of stages.

A stage is looked up by name; the ledger, the worker host and the front ends
never hard-code the list. Later stages (OCR, embeddings, detection) register
themselves the same way.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class ItemRef:
    """What a stage gets to know about the item it processes."""

    id: int
    hash: str
    kind: str
    format: str
    size: int
    paths: tuple[str, ...]  # existing paths first; filesystem strings
    mtime_ns: int | None = None


@dataclass(frozen=True)
class StageContext:
    library_dir: Path

    @property
    def thumbs_dir(self) -> Path:
        return self.library_dir / "thumbs"


@dataclass
class StageOutput:
    """A stage's result: JSON-safe data for the results table, plus stage-specific rows."""

    data: dict[str, Any] = field(default_factory=dict)


class Stage(Protocol):
    name: str
    version: str
    lane: str
    kinds: frozenset[str]

    def run(self, item: ItemRef, ctx: StageContext) -> StageOutput:
        """Compute the result. Must not modify the original file. May write
        content-addressed files under the library folder. Raise PermanentError for
        bad input, anything else is retried."""
        ...

    def store(self, conn: sqlite3.Connection, item: ItemRef, output: StageOutput, seq: int) -> None:
        """Write the result inside the caller's transaction; idempotent (an upsert)."""
        ...


def upsert_result(
    conn: sqlite3.Connection, item_id: int, stage: str, version: str, data: dict[str, Any]
) -> None:
    conn.execute(
        """INSERT INTO results (item_id, stage, version, data, updated_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (item_id, stage, version)
           DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at""",
        (item_id, stage, version, json.dumps(data, sort_keys=True), time.time()),
    )


class StageRegistry:
    def __init__(self, stages: Iterable[Stage] = ()) -> None:
        self._stages: dict[str, Stage] = {}
        for stage in stages:
            self.register(stage)

    def register(self, stage: Stage) -> None:
        if stage.name in self._stages:
            raise ValueError(f"stage {stage.name!r} is registered twice")
        self._stages[stage.name] = stage

    def get(self, name: str) -> Stage:
        return self._stages[name]

    def names(self) -> list[str]:
        return list(self._stages)

    def for_kind(self, kind: str) -> list[Stage]:
        return [s for s in self._stages.values() if kind in s.kinds]

    def __contains__(self, name: object) -> bool:
        return name in self._stages


def default_registry() -> StageRegistry:
    from engine.pipeline.metadata import MetadataStage
    from engine.pipeline.thumbnail import ThumbnailStage

    return StageRegistry([MetadataStage(), ThumbnailStage()])
