"""The `learn` task job: one training of one label, and the rescoring that follows.

`run_task` (no catalog writes, may take a while) reads the label's decisions and
the library's features, trains a candidate (models/classify), compares it with the
active version on the same folds, writes its model file atomically, and — when it
is promoted — scores every item in one vectorised pass, chooses the threshold and
the review queue. `store_task` (the host's one transaction) records the version
and, if promoted, makes it active and applies what it decided — never over a user
decision, including one made while it trained.

A crash anywhere before `store_task` commits leaves the active version as it was:
a model file without a row is never read, and the job runs again after recovery.

The `rescore` task does the second half alone for the active version (after a
rollback).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from engine import faults
from engine.learning import labels as store
from engine.learning.features import LibraryFeatures, Space, load_library, space_for
from engine.pipeline.modelstage import CatalogReader, ModelHolder
from engine.pipeline.types import StageContext, StageOutput

if TYPE_CHECKING:
    import sqlite3

    from engine.config import Settings
    from models.classify import Head

log = logging.getLogger(__name__)

LEARN_VERSION = "1"
MODELS_DIR = "label-models"
CANDIDATES = 4000  # top-scored undecided items the review queue chooses from
UNIFORM_CANDIDATES = 1000  # plus a uniform sample (audits below, "from elsewhere")
AUC_TOLERANCE = 1e-3  # same folds, deterministic: this is rounding, not noise
# A new version must rank its own positives above this share of the rest (in-sample).
MIN_SEPARATION = 0.75


@dataclass
class LearnOutput(StageOutput):
    label_id: int = 0
    skipped: str = ""  # why nothing was trained (no examples with embeddings yet, …)
    version: int | None = None
    promoted: bool = False
    reason: str = ""  # why not promoted, in words
    file: str = ""
    space: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    based_on: int | None = None  # the active version when training started
    threshold: float | None = None
    threshold_reason: str = ""
    estimated_precision: float | None = None
    auto_ids: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    auto_scores: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, np.float32))
    suggestions: list[tuple[int, float, str, list[int]]] = field(default_factory=list)


def models_dir(library_dir: Path) -> Path:
    return library_dir / MODELS_DIR


def write_atomically(path: Path, arrays: dict[str, npt.NDArray[Any]]) -> None:
    """np.savez to a temporary file, fsync, rename over: a reader sees the old file
    or the whole new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def save_version(path: Path, head: Head, space: Space, recipe: dict[str, Any]) -> None:
    arrays = dict(head.to_arrays())
    arrays["space"] = np.frombuffer(json.dumps(space.as_json()).encode(), dtype=np.uint8)
    arrays["recipe"] = np.frombuffer(json.dumps(recipe).encode(), dtype=np.uint8)
    write_atomically(path, arrays)


def load_version(path: Path) -> tuple[Head, Space, dict[str, Any]]:
    from models.classify import Head

    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    space = Space(**json.loads(arrays.pop("space").tobytes().decode()))
    recipe = json.loads(arrays.pop("recipe").tobytes().decode())
    return Head.from_arrays(arrays), space, recipe


class HeadCache:
    """Loaded versions by (label, version): inference picks a new version up the
    moment it is active, with no restart, and reads each file once."""

    def __init__(self) -> None:
        self._heads: dict[tuple[int, int], tuple[Head, Space, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(
        self, library_dir: Path, label_id: int, version: int, file: str
    ) -> tuple[Head, Space, dict[str, Any]]:
        key = (label_id, version)
        with self._lock:
            found = self._heads.get(key)
        if found is None:
            found = load_version(models_dir(library_dir) / file)
            with self._lock:
                self._heads[key] = found
        return found


def active_version(
    conn: sqlite3.Connection, label_id: int
) -> tuple[int, str, dict[str, Any]] | None:
    row = conn.execute(
        """SELECT v.version, v.file, v.metrics FROM labels l
           JOIN label_versions v ON v.label_id = l.id AND v.version = l.active_version
           WHERE l.id = ?""",
        (label_id,),
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]), json.loads(row[2]))


def read_decisions(
    conn: sqlite3.Connection, label_id: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """(item ids, verdicts, answered) of a label's decisions by item id. `answered`:
    the decision answered the model (a review question, a confirmed page, a removed
    automatic label) — unlike examples the user picked, these sample what the model
    scores, which is what its calibration is fitted on."""
    from engine.learning.labels import AUDIT_ORIGINS

    found = conn.execute(
        "SELECT item_id, verdict, origin FROM label_decisions WHERE label_id = ? ORDER BY item_id",
        (label_id,),
    ).fetchall()
    ids = np.array([r[0] for r in found], dtype=np.int64)
    verdicts = np.array([r[1] for r in found], dtype=np.int64)
    answered = np.array([r[2] in AUDIT_ORIGINS for r in found], dtype=bool)
    return ids, verdicts, answered


def _make_image_embedder(spec: str, device: str) -> Any:
    from models.embed import create_embedder

    return create_embedder(spec, device)


def _make_text_embedder(spec: str, device: str) -> Any:
    from models.text import create_text_embedder

    return create_text_embedder(spec, device)


class LearnTask:
    """Train one label (key: the label's id); lane `learning`, one at a time."""

    name = "learn"
    version = LEARN_VERSION
    lane = "learning"
    timeout_s: float | None = 900.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._reader = CatalogReader()
        self._features: LibraryFeatures | None = None
        self._priors: dict[tuple[str, str], npt.NDArray[np.float32] | None] = {}
        self.heads = HeadCache()
        self._image_holder = (
            ModelHolder(
                settings.models.embed,
                settings.device,
                _make_image_embedder,
                self.lane,
                allow_download=False,
            )
            if settings.models.embed
            else None
        )
        self._text_holder = (
            ModelHolder(
                settings.models.text,
                settings.device,
                _make_text_embedder,
                self.lane,
                allow_download=False,
            )
            if settings.models.text
            else None
        )

    # -- the prior: the label's name through each block's text encoder -------------------

    def _name_vector(
        self, which: str, name: str, ctx: StageContext
    ) -> npt.NDArray[np.float32] | None:
        holder = self._image_holder if which == "image" else self._text_holder
        if holder is None:
            return None
        key = (f"{which}:{holder.spec}", name)
        if key in self._priors:
            return self._priors[key]
        vector: npt.NDArray[np.float32] | None = None
        try:
            if which == "image":
                model = holder.instance()
                if getattr(model, "has_text", False):
                    from models.tags.vocabulary import USER_CATEGORY, prompts_for

                    model = holder.get(ctx)
                    per_prompt = model.embed_texts(prompts_for(name, USER_CATEGORY))
                    vector = per_prompt.mean(axis=0).astype(np.float32)
            else:
                model = holder.get(ctx)
                vector = model.embed_texts([name])[0].astype(np.float32)
        except Exception as exc:  # the prior is optional: the centroid stands in
            log.info("no %s prior for label %r: %s", which, name, exc)
            vector = None
        if vector is not None:
            norm = float(np.linalg.norm(vector))
            vector = vector / norm if norm > 0 else None
        self._priors[key] = vector
        return vector

    def _prior(self, name: str, space: Space, ctx: StageContext) -> npt.NDArray[np.float32] | None:
        parts: list[npt.NDArray[np.float32]] = []
        found = False
        for which, dim in (("image", space.image_dim), ("text", space.text_dim)):
            if not dim:
                continue
            vector = self._name_vector(which, name, ctx)
            if vector is not None and vector.shape[0] == dim:
                parts.append(vector)
                found = True
            else:
                parts.append(np.zeros(dim, dtype=np.float32))
        # Blocks without a text encoder are zero: models/classify falls back to the
        # centroid prior for them.
        return np.concatenate(parts) if found else None

    # -- the task ------------------------------------------------------------------------

    def run_task(self, key: str, ctx: StageContext) -> LearnOutput:
        from models.classify import LabelData, TrainConfig, evaluate_recipe, train_label

        label_id = int(key)
        conn = self._reader.conn(ctx.library_dir)
        label = store.get_label(conn, label_id)
        if label is None:
            return LearnOutput(label_id=label_id, skipped="the label was deleted")
        space = space_for(conn, self.settings.models.embed, self.settings.models.text)
        if not space.dim:
            return LearnOutput(label_id=label_id, skipped="no item has an embedding yet")
        ctx.progress(0, 4, "reading embeddings")
        lib = self._features = load_library(conn, space, self._features)
        dec_ids, verdicts, answered = read_decisions(conn, label_id)
        rows = lib.positions(dec_ids)
        have = rows >= 0
        pos_rows, pos_ids = rows[have & (verdicts > 0)], dec_ids[have & (verdicts > 0)]
        neg_rows, neg_ids = rows[have & (verdicts < 0)], dec_ids[have & (verdicts < 0)]
        if len(pos_rows) == 0:
            waiting = int(np.sum(verdicts > 0))
            why = (
                f"its {waiting} example{'s' if waiting != 1 else ''} have no embedding yet"
                if waiting
                else "it has no examples yet"
            )
            return LearnOutput(label_id=label_id, skipped=why)
        active = active_version(conn, label_id)
        active_head: Head | None = None
        active_recipe: dict[str, Any] | None = None
        if active is not None:
            try:
                head, active_space, recipe = self.heads.get(
                    ctx.library_dir, label_id, active[0], active[1]
                )
                if active_space == space:
                    active_head, active_recipe = head, recipe
            except (OSError, ValueError, KeyError) as exc:
                log.warning("label %s: active version %s unreadable: %s", label_id, active[0], exc)
        ctx.check()

        # The unlabelled sample: uniform over the undecided items (calibration and the
        # prevalence are fitted on it). Those the active version ranks highest — as
        # many as the hidden positives it expects (its prevalence × undecided) — are
        # marked: the likeliest unlabelled positives are not weak negatives in the
        # training. With no active version, none are (measured: docs/architecture.md).
        decided = np.zeros(len(lib), dtype=bool)
        decided[rows[have]] = True
        undecided = np.flatnonzero(~decided)
        top = np.zeros(len(lib), dtype=bool)
        if active_head is not None and len(undecided):
            expected = round(float(active_head.prevalence) * len(undecided))
            marked = min(len(undecided) // 2, expected)
            if marked:
                current = lib.logits(active_head.w, active_head.b)[undecided]
                top[undecided[np.argpartition(-current, marked)[:marked]]] = True
        rng = np.random.default_rng(label_id * 1_000_003 + len(dec_ids))
        take = min(len(undecided), self.settings.labels.weak_negatives)
        weak_rows = (
            np.sort(rng.choice(undecided, size=take, replace=False)) if take else undecided[:0]
        )
        prior = self._prior(label.name, space, ctx)
        data = LabelData(
            positives=lib.dense(pos_rows),
            negatives=lib.dense(neg_rows),
            unlabelled=lib.dense(weak_rows),
            positive_keys=pos_ids,
            negative_keys=neg_ids,
            unlabelled_keys=lib.ids[weak_rows],
            prior=prior,
            blocks=space.blocks,
            positive_from_review=answered[have & (verdicts > 0)],
            negative_from_review=answered[have & (verdicts < 0)],
            unlabelled_top=top[weak_rows],
        )
        config = TrainConfig(target_precision=self.settings.labels.target_precision)
        ctx.progress(1, 4, "training")
        result = train_label(data, config)
        head = result.head
        fault = faults.learning_fault()
        if fault == "corrupt":  # a training gone wrong: what the gate must catch
            head.w = (-head.w).astype(np.float32)
        ctx.check()

        # The gate: finite, not worse than the active recipe on the same folds, and no
        # user decision the active version got right turned wrong.
        reason = ""
        metrics: dict[str, Any] = dict(result.metrics)
        if not (np.all(np.isfinite(head.w)) and np.isfinite(head.b)):
            reason = "the training produced invalid weights"
        if not reason:
            separation = _separation(head, data)
            metrics["separation"] = separation
            if separation < MIN_SEPARATION:
                reason = (
                    f"it does not tell your examples from the rest of the library "
                    f"(it ranks them above {separation:.0%} of the others)"
                )
        if not reason and active_head is not None and active_recipe is not None:
            before = evaluate_recipe(data, active_recipe, config)
            metrics["active_auc_same_folds"] = before.get("auc")
            new_auc, old_auc = (
                float(result.metrics.get("auc", "nan")),
                float(before.get("auc", "nan")),
            )
            # Below 8 positives there are no folds (NaN): the other checks decide.
            if np.isfinite(new_auc) and np.isfinite(old_auc) and new_auc + AUC_TOLERANCE < old_auc:
                reason = (
                    f"it is worse on the same held-out folds (AUC {new_auc:.3f} "
                    f"against {old_auc:.3f})"
                )
        if not reason:
            # Sides by the balanced logit (0 = the class-balanced boundary), not by the
            # calibrated probability, which moves with the estimated prevalence.
            decided_x = lib.dense(rows[have])
            signs = np.where(verdicts[have] > 0, 1, -1)
            new_side = np.where(decided_x @ head.w + head.b >= 0, 1, -1)
            if active_head is not None:
                old_side = np.where(decided_x @ active_head.w + active_head.b >= 0, 1, -1)
                turned = (old_side == signs) & (new_side != signs)
                # The promise is about what you confirmed: a rejection is never applied
                # whatever a model scores it, so its side is recorded, not gated on.
                flipped = int(np.sum(turned & (signs > 0)))
                metrics["flipped_rejections"] = int(np.sum(turned & (signs < 0)))
            else:
                flipped = 0
            metrics["flipped"] = flipped
            metrics["agree_with_decisions"] = float(np.mean(new_side == signs))
            if flipped:
                reason = (
                    f"it would score {flipped} item{'s' if flipped != 1 else ''} you "
                    "confirmed as not the label"
                )
        if fault == "crash":
            faults.kill_self()
        version = 1 + int(
            conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM label_versions WHERE label_id = ?",
                (label_id,),
            ).fetchone()[0]
        )
        file = f"{label_id}/v{version}.npz"
        recipe = dict(result.recipe)
        ctx.progress(2, 4, "saving")
        save_version(models_dir(ctx.library_dir) / file, head, space, recipe)
        if fault == "crash_after_save":
            faults.kill_self()
        out = LearnOutput(
            label_id=label_id,
            version=version,
            promoted=not reason,
            reason=reason,
            file=file,
            space=space.as_json(),
            metrics={**metrics, "recipe": recipe, "reg": result.reg},
            based_on=None if active is None else active[0],
        )
        if reason:
            return out
        ctx.progress(3, 4, "scoring the library")
        self._decide(conn, label, head, lib, decided, data, out)
        return out

    def _decide(
        self,
        conn: sqlite3.Connection,
        label: store.LabelRow,
        head: Head,
        lib: LibraryFeatures,
        decided: npt.NDArray[np.bool_],
        data: Any,
        out: LearnOutput,
    ) -> None:
        """Score every item; choose the threshold, the automatic labels, the review queue."""
        from models.classify import (
            audited_precision,
            choose_threshold,
            enough_evidence,
            select_review,
        )

        proba = head.calibrate(lib.logits(head.w, head.b))
        undecided = np.flatnonzero(~decided)
        target = self.settings.labels.target_precision
        enough, why_not = enough_evidence(data)
        choice = choose_threshold(proba[undecided], target) if enough else None
        threshold = None if choice is None else choice.threshold
        reason = why_not if choice is None else choice.reason
        out.estimated_precision = None if choice is None else choice.estimated_precision
        if threshold is not None:
            # The promise, checked here too: the labels applied are those above the
            # threshold, and their mean calibrated probability must meet the target.
            above = proba[undecided][proba[undecided] >= threshold]
            if len(above) == 0 or float(above.mean()) < target:
                threshold = None
                reason = f"Suggestions only: no score keeps {target:.0%} of automatic labels right."
        if threshold is not None and (label.require_bound or self.settings.labels.require_bound):
            confirmed, rejected = store.audit_counts(conn, label.id)
            _, lower = audited_precision(confirmed, rejected)
            if lower < target:
                reason = (
                    f"waiting for audits: the audited precision's lower bound is "
                    f"{lower:.0%} ({confirmed} of {confirmed + rejected} confirmed), "
                    f"the target {target:.0%}"
                )
                threshold = None
        out.threshold = threshold
        out.threshold_reason = reason
        if threshold is not None:
            auto = undecided[proba[undecided] >= threshold]
            out.auto_ids = lib.ids[auto]
            out.auto_scores = proba[auto].astype(np.float32)
        # The review queue: from the best-scored undecided items plus a uniform sample.
        if len(undecided) == 0:
            return
        top_n = min(len(undecided), CANDIDATES)
        top = undecided[np.argpartition(-proba[undecided], top_n - 1)[:top_n]]
        rest = np.setdiff1d(undecided, top, assume_unique=True)
        rng = np.random.default_rng(label.id * 7919 + len(data.positive_keys))
        if len(rest):
            extra = rng.choice(rest, size=min(len(rest), UNIFORM_CANDIDATES), replace=False)
            cand = np.concatenate([top, extra])
        else:
            cand = top
        n_reviews = int(
            conn.execute(
                "SELECT COUNT(*) FROM label_decisions WHERE label_id = ? AND origin != 'example'",
                (label.id,),
            ).fetchone()[0]
        )
        positives = data.positives
        chosen = select_review(
            lib.dense(cand),
            proba[cand],
            threshold,
            positives,
            n_reviews,
            self.settings.labels.review_pool,
            rng=rng,
        )
        pos_keys = [int(k) for k in data.positive_keys]
        out.suggestions = [
            (int(lib.ids[cand[s.index]]), float(s.score), s.reason, [pos_keys[i] for i in s.why])
            for s in chosen
        ]

    def store_task(self, conn: sqlite3.Connection, key: str, output: StageOutput, seq: int) -> None:
        assert isinstance(output, LearnOutput)
        if output.version is None:
            if output.skipped:
                conn.execute(
                    "UPDATE labels SET threshold_reason = ? "
                    "WHERE id = ? AND active_version IS NULL",
                    (f"Not trained yet: {output.skipped}.", output.label_id),
                )
            return
        label = store.get_label(conn, output.label_id)
        if label is None:
            return  # deleted while it trained; its files went with it
        promoted, reason = output.promoted, output.reason
        if promoted and label.active_version != output.based_on:
            promoted, reason = False, "another version became active while it trained"
        conn.execute(
            """INSERT OR REPLACE INTO label_versions
                   (label_id, version, created_at, models, file, status, reason, metrics)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                output.label_id,
                output.version,
                time.time(),
                json.dumps(output.space, sort_keys=True),
                output.file,
                "active" if promoted else "rejected",
                reason,
                json.dumps(_json_safe(output.metrics), sort_keys=True),
            ),
        )
        if not promoted:
            log.info("label %s: version %s not made active: %s", label.name, output.version, reason)
            store.touch(conn, label.id)
            return
        conn.execute(
            "UPDATE label_versions SET status = 'retired' WHERE label_id = ? AND version != ? "
            "AND status = 'active'",
            (label.id, output.version),
        )
        apply_decisions(conn, label.id, output)


def apply_decisions(conn: sqlite3.Connection, label_id: int, output: LearnOutput) -> None:
    """Make `output.version` active with its threshold, automatic labels and review
    queue — skipping every item the user has decided, at this moment."""
    assert output.version is not None
    conn.execute(
        """UPDATE labels SET active_version = ?, threshold = ?, estimated_precision = ?,
                             threshold_reason = ? WHERE id = ?""",
        (
            output.version,
            output.threshold,
            output.estimated_precision,
            output.threshold_reason,
            label_id,
        ),
    )
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS new_auto (item_id INTEGER PRIMARY KEY, score REAL)"
    )
    conn.execute("DELETE FROM temp.new_auto")
    conn.executemany(
        "INSERT INTO temp.new_auto (item_id, score) VALUES (?, ?)",
        zip(output.auto_ids.tolist(), output.auto_scores.tolist(), strict=True),
    )
    # In place, not delete-all-and-insert: an unchanged automatic label is not a change
    # (the search index and the GUI see only what moved).
    conn.execute(
        """DELETE FROM item_labels WHERE label_id = ?
             AND item_id NOT IN (SELECT item_id FROM temp.new_auto)""",
        (label_id,),
    )
    conn.execute(
        """INSERT INTO item_labels (label_id, item_id, score, version)
           SELECT ?, n.item_id, n.score, ? FROM temp.new_auto n
           WHERE NOT EXISTS (SELECT 1 FROM label_decisions d
                             WHERE d.label_id = ? AND d.item_id = n.item_id)
             AND EXISTS (SELECT 1 FROM items i WHERE i.id = n.item_id)
           ON CONFLICT (label_id, item_id) DO UPDATE SET
               score = excluded.score, version = excluded.version""",
        (label_id, output.version, label_id),
    )
    conn.execute("DELETE FROM temp.new_auto")
    conn.execute("DELETE FROM label_suggestions WHERE label_id = ?", (label_id,))
    conn.executemany(
        """INSERT INTO label_suggestions (label_id, item_id, rank, score, reason, why, version)
           SELECT ?, ?, ?, ?, ?, ?, ?
           WHERE NOT EXISTS (SELECT 1 FROM label_decisions d WHERE d.label_id = ? AND d.item_id = ?)
             AND EXISTS (SELECT 1 FROM items i WHERE i.id = ?)""",
        [
            (
                label_id,
                item_id,
                rank,
                score,
                reason,
                json.dumps(why),
                output.version,
                label_id,
                item_id,
                item_id,
            )
            for rank, (item_id, score, reason, why) in enumerate(output.suggestions)
        ],
    )
    store.touch(conn, label_id)


def _separation(head: Head, data: Any) -> float:
    """In-sample AUC of the positives against the rejections and weak negatives: any
    sane training ranks the examples it learned from near the top; a broken one not."""
    pos = data.positives @ head.w + head.b
    rest = np.concatenate([data.negatives, data.unlabelled]) @ head.w + head.b
    if len(pos) == 0 or len(rest) == 0:
        return 1.0
    rest = np.sort(rest)
    below = np.searchsorted(rest, pos, side="left")
    ties = np.searchsorted(rest, pos, side="right") - below
    return float(np.mean((below + 0.5 * ties) / len(rest)))


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class RescoreTask:
    """Rescore the library with a label's active version (after a rollback): the second
    half of a training, with no training."""

    name = "rescore"
    version = LEARN_VERSION
    lane = "learning"
    timeout_s: float | None = 900.0

    def __init__(self, settings: Settings, learn: LearnTask) -> None:
        self.settings = settings
        self.learn = learn

    def run_task(self, key: str, ctx: StageContext) -> LearnOutput:
        from models.classify import LabelData

        label_id = int(key)
        learn = self.learn
        conn = learn._reader.conn(ctx.library_dir)
        label = store.get_label(conn, label_id)
        active = active_version(conn, label_id)
        if label is None or active is None:
            return LearnOutput(label_id=label_id, skipped="no active version")
        head, space, _ = learn.heads.get(ctx.library_dir, label_id, active[0], active[1])
        lib = learn._features = load_library(conn, space, learn._features)
        dec_ids, verdicts, answered = read_decisions(conn, label_id)
        rows = lib.positions(dec_ids)
        have = rows >= 0
        decided = np.zeros(len(lib), dtype=bool)
        decided[rows[have]] = True
        pos = have & (verdicts > 0)
        neg = have & (verdicts < 0)
        data = LabelData(
            positives=lib.dense(rows[pos]),
            negatives=lib.dense(rows[neg]),
            unlabelled=np.zeros((0, space.dim), dtype=np.float32),
            positive_keys=dec_ids[pos],
            negative_keys=dec_ids[neg],
            unlabelled_keys=np.zeros(0, dtype=np.int64),
            prior=None,
            blocks=space.blocks,
            positive_from_review=answered[pos],
            negative_from_review=answered[neg],
        )
        out = LearnOutput(label_id=label_id, version=active[0], promoted=True, based_on=active[0])
        learn._decide(conn, label, head, lib, decided, data, out)
        return out

    def store_task(self, conn: sqlite3.Connection, key: str, output: StageOutput, seq: int) -> None:
        assert isinstance(output, LearnOutput)
        if output.version is None:
            return
        label = store.get_label(conn, output.label_id)
        if label is None or label.active_version != output.version:
            return  # another version became active meanwhile; it brought its own
        apply_decisions(conn, output.label_id, output)
