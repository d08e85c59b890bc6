"""The `labels` item stage: a new (or re-embedded) item scored by every label's active
version, from its stored embedding, in batches — so a photo of Grandma imported
today is labelled today, without a retraining.

It applies the same rules as a training: above the active threshold and no user
decision → an automatic label; below → none. An item that is one of a label's
examples asks for that label to be trained (its example has an embedding now, or
a new one after a model change).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.learning.features import Space, load_items
from engine.learning.training import HeadCache, LearnTask
from engine.pipeline.modelstage import CatalogReader
from engine.pipeline.types import ItemRef, StageContext, StageOutput, upsert_result

if TYPE_CHECKING:
    from engine.config import Settings

SCORING_VERSION = "1"


@dataclass
class LabelScores(StageOutput):
    # (label id, version, threshold or None, score)
    scores: list[tuple[int, int, float | None, float]] = field(default_factory=list)
    examples_of: list[int] = field(default_factory=list)  # labels this item is an example of


class LabelsStage:
    name = "labels"
    lane = "learning"
    kinds = frozenset({"photo", "document"})
    requires: tuple[str, ...] = ("embed",)
    batch_size = 512
    reads_original = False
    timeout_s: float | None = 600.0

    def __init__(self, settings: Settings, learn: LearnTask) -> None:
        # The embedding models are in the version: a model change re-scores every item
        # (and, through its examples, retrains every label).
        self.version = f"{SCORING_VERSION}+{settings.models.embed}+{settings.models.text}"
        self.settings = settings
        self.learn = learn
        self.heads: HeadCache = learn.heads
        self._reader = CatalogReader()

    def prepare(self, item: ItemRef, ctx: StageContext) -> ItemRef:
        return item

    def run_batch(
        self, inputs: Sequence[Any], ctx: StageContext
    ) -> list[StageOutput | BaseException]:
        items: list[ItemRef] = list(inputs)
        conn = self._reader.conn(ctx.library_dir)
        ids = [item.id for item in items]
        outputs = {item.id: LabelScores() for item in items}
        marks = ",".join("?" * len(ids))
        for label_id, item_id in conn.execute(
            f"""SELECT label_id, item_id FROM label_decisions
                WHERE verdict > 0 AND item_id IN ({marks})""",
            ids,
        ):
            outputs[int(item_id)].examples_of.append(int(label_id))
        actives = conn.execute(
            """SELECT l.id, l.active_version, l.threshold, v.file FROM labels l
               JOIN label_versions v ON v.label_id = l.id AND v.version = l.active_version"""
        ).fetchall()
        by_space: dict[Space, Any] = {}
        for label_id, version, threshold, file in actives:
            try:
                head, space, _ = self.heads.get(ctx.library_dir, int(label_id), int(version), file)
            except (OSError, ValueError, KeyError):
                continue  # an unreadable version scores nothing; its training rewrites it
            if space not in by_space:
                by_space[space] = load_items(conn, space, ids)
            feats = by_space[space]
            has = np.zeros(len(feats), dtype=bool)
            if space.image_dim:
                has |= np.any(feats.image != 0, axis=1)
            has[feats.text_rows] = True
            proba = head.calibrate(feats.logits(head.w, head.b))
            for row, item_id in enumerate(feats.ids.tolist()):
                if has[row]:
                    outputs[item_id].scores.append(
                        (
                            int(label_id),
                            int(version),
                            None if threshold is None else float(threshold),
                            float(proba[row]),
                        )
                    )
        return [outputs[item.id] for item in items]

    def store_many(
        self,
        conn: sqlite3.Connection,
        results: Sequence[tuple[ItemRef, StageOutput]],
        seq: int,
    ) -> None:
        from engine.jobs.tasks import request_task
        from engine.pipeline.registry import StageRegistry

        retrain: set[int] = set()
        for item, output in results:
            assert isinstance(output, LabelScores)
            retrain.update(output.examples_of)
            for label_id, version, threshold, score in output.scores:
                current = conn.execute(
                    "SELECT active_version, threshold FROM labels WHERE id = ?", (label_id,)
                ).fetchone()
                if current is None or current[0] != version:
                    continue  # a newer version rescored the library with its own rules
                if threshold is not None and score >= threshold:
                    conn.execute(
                        """INSERT INTO item_labels (label_id, item_id, score, version)
                           SELECT ?, ?, ?, ?
                           WHERE NOT EXISTS (SELECT 1 FROM label_decisions
                                             WHERE label_id = ? AND item_id = ?)
                           ON CONFLICT (label_id, item_id) DO UPDATE SET
                               score = excluded.score, version = excluded.version""",
                        (label_id, item.id, score, version, label_id, item.id),
                    )
                else:
                    conn.execute(
                        "DELETE FROM item_labels WHERE label_id = ? AND item_id = ?",
                        (label_id, item.id),
                    )
            upsert_result(conn, item.id, self.name, self.version, {"labels": len(output.scores)})
        if retrain:
            registry = StageRegistry(tasks=[self.learn])
            for label_id in sorted(retrain):
                if conn.execute("SELECT 1 FROM labels WHERE id = ?", (label_id,)).fetchone():
                    request_task(
                        conn,
                        registry,
                        self.settings,
                        "learn",
                        str(label_id),
                        delay_s=self.settings.labels.debounce_s,
                    )
