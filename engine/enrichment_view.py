"""Read-only views of what the model stages made, shaped for the desktop app.

- `item_enrichment`: an item's tags, detected objects and embedding, with the size
  (the upright original's) that the boxes are measured in;
- `model_statuses`: each configured model and what a live worker host says about it
  (its heartbeat's `hosts.info`), or why its jobs wait;
- `stage_job`: one stage's job of an item (state and reason), for messages;
- `existing_ids`: which of some item ids are still in the catalog.

Nothing here writes, and nothing imports Qt or a model library.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.config import Settings
from engine.jobs.ledger import waiting_stages
from engine.queries import detections_for, embeddings_for, tags_for

LIVE_HOST_S = 30.0  # a host whose heartbeat is older than this is not trusted
MODEL_SETTINGS: dict[str, str] = {"embed": "models.embed", "detect": "models.detect"}


@dataclass(frozen=True)
class Tag:
    tag: str
    source: str  # zero-shot | classifier | detect
    score: float


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels of `Enrichment.frame`


@dataclass(frozen=True)
class Enrichment:
    item_id: int
    tags: list[Tag]
    detections: list[Detection]
    frame: tuple[int, int] | None  # (width, height) of the upright original; None: unknown
    embedding: dict[str, Any] | None  # {"model", "dim", "digest"}, never the vector


def item_enrichment(
    conn: sqlite3.Connection, item_id: int, preferred_model: str | None = None
) -> Enrichment:
    """Everything the model stages stored about one item (empty lists when none)."""
    row = conn.execute("SELECT width, height FROM items WHERE id = ?", (item_id,)).fetchone()
    frame = (int(row[0]), int(row[1])) if row is not None and row[0] and row[1] else None
    tags = [
        Tag(tag=str(t["tag"]), source=str(t["source"]), score=float(t["score"]))
        for t in tags_for(conn, [item_id])[item_id]
    ]
    detections = [
        Detection(
            label=str(d["label"]),
            score=float(d["score"]),
            box=(float(d["box"][0]), float(d["box"][1]), float(d["box"][2]), float(d["box"][3])),
        )
        for d in detections_for(conn, [item_id])[item_id]
    ]
    embedding = embeddings_for(conn, [item_id], preferred_model)[item_id]
    return Enrichment(item_id, tags, detections, frame, embedding)


@dataclass(frozen=True)
class ModelStatus:
    """One configured model: `state` is off | loaded | loading | waiting | failed |
    not loaded (the first that applies, in that order)."""

    stage: str
    setting: str
    spec: str  # "" when the stage is off
    state: str
    device: str | None = None
    load_s: float | None = None
    reason: str = ""  # why its jobs wait (the action to take), or why loading failed
    waiting: int = 0  # jobs of the stage waiting for it


def live_resources(conn: sqlite3.Connection, now: float | None = None) -> list[dict[str, Any]]:
    """What running worker hosts have loaded, from heartbeats of the last `LIVE_HOST_S`."""
    now = time.time() if now is None else now
    out: list[dict[str, Any]] = []
    for (info,) in conn.execute(
        "SELECT info FROM hosts WHERE stopped_at IS NULL AND heartbeat_at > ?",
        (now - LIVE_HOST_S,),
    ):
        try:
            resources = json.loads(info or "{}").get("resources", [])
        except (ValueError, AttributeError):
            continue
        out += [r for r in resources if isinstance(r, dict)]
    return out


def model_statuses(
    conn: sqlite3.Connection, settings: Settings, now: float | None = None
) -> list[ModelStatus]:
    """The embed and detect models of `settings`, each with what is known about it."""
    waiting = waiting_stages(conn)
    resources = live_resources(conn, now)
    out: list[ModelStatus] = []
    for stage, key in MODEL_SETTINGS.items():
        spec = str(settings.get(key) or "")
        count, reason = waiting.get(stage, (0, ""))
        if not spec:
            out.append(ModelStatus(stage, key, "", "off", waiting=count))
            continue
        mine = [r for r in resources if r.get("model") == spec]
        by_state = {str(r.get("state")): r for r in reversed(mine)}  # first host wins
        found = by_state.get("loaded") or by_state.get("loading")
        if found is not None:
            load_s = found.get("load_s")
            out.append(
                ModelStatus(
                    stage,
                    key,
                    spec,
                    str(found["state"]),
                    device=str(found.get("device") or "") or None,
                    load_s=float(load_s) if isinstance(load_s, int | float) else None,
                    waiting=count,
                )
            )
        elif count:
            out.append(ModelStatus(stage, key, spec, "waiting", reason=reason, waiting=count))
        elif "failed" in by_state:
            error = str(by_state["failed"].get("error") or "")
            out.append(ModelStatus(stage, key, spec, "failed", reason=error))
        else:
            out.append(ModelStatus(stage, key, spec, "not loaded"))
    return out


def stage_job(conn: sqlite3.Connection, item_id: int, stage: str) -> tuple[str, str | None] | None:
    """(state, error) of the item's job for `stage`, or None when it has none."""
    row = conn.execute(
        "SELECT state, error FROM jobs WHERE item_id = ? AND stage = ?", (item_id, stage)
    ).fetchone()
    return (str(row[0]), row[1]) if row is not None else None


def existing_ids(conn: sqlite3.Connection, ids: Sequence[int]) -> set[int]:
    """Which of `ids` are items of the catalog."""
    found: set[int] = set()
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        found.update(
            int(r[0]) for r in conn.execute(f"SELECT id FROM items WHERE id IN ({marks})", chunk)
        )
    return found
