"""The `detect` stage: objects in a photo — labelled boxes, and the labels as tags.

It reads the thumbnail stage's ~1280 px preview (upright RGB JPEG), never the
original, and runs the detector (`settings.models.detect`, RT-DETRv2-S by default)
on batches of previews. Boxes are stored in pixels of the *upright original*
(`items.width`/`height`, which the metadata stage writes): the detector sees the
preview, so its boxes are scaled by original/preview in `store_many`. That is why
the stage requires `metadata` as well as `thumbnail`: without the original's size
the boxes could only be stored in preview pixels (the fallback, for a photo whose
metadata found no size; the result's `frame` says which pixels they are in).

Rows: `detections` (every box above `settings.detect.min_score`) and `item_tags`
with source `detect` (each detected label once, lowercased, with its best score).
Storing replaces the item's earlier rows, so running the stage twice (or with
another model) never duplicates them. Documents get no detection.

A model whose weights are not here makes the job wait (ModelHolder turns
ModelUnavailable into WaitingError). Nothing here imports torch until a job runs.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.config import Settings
from engine.errors import PermanentError, TransientError
from engine.pipeline.modelstage import ModelHolder, device_batch_size, infer_in_pieces
from engine.pipeline.thumbnail import PREVIEW_PX, thumb_relpath
from engine.pipeline.types import ItemRef, StageContext, StageOutput, upsert_result

if TYPE_CHECKING:
    from models.detect import Detection, ObjectDetector

CPU_BATCH = 4
GPU_BATCH = 32
SOURCE = "detect"  # item_tags.source of detected labels

MISSING_PREVIEW = "The preview is missing; retry the item's thumbnail."
BAD_PREVIEW = "The preview cannot be read ({}); retry the item's thumbnail."


@dataclass(frozen=True)
class DetectInput:
    """A prepared preview: the network's input and the preview's (width, height)."""

    pixels: Any
    size: tuple[int, int]


@dataclass
class DetectOutput(StageOutput):
    """Boxes in pixels of the preview (`frame`); `store_many` scales them."""

    detections: list[Detection] = field(default_factory=list)
    frame: tuple[int, int] = (0, 0)


def _make_detector(spec: str, device: str) -> ObjectDetector:
    from models.detect import create_detector

    return create_detector(spec, device)


def label_counts(detections: Sequence[Detection]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in detections:
        counts[d.label] = counts.get(d.label, 0) + 1
    return counts


def best_tags(detections: Sequence[Detection]) -> dict[str, float]:
    """Each detected label once (lowercased), with its highest score."""
    best: dict[str, float] = {}
    for d in detections:
        tag = d.label.strip().lower()
        if tag and d.score > best.get(tag, -1.0):
            best[tag] = d.score
    return best


class DetectStage:
    name = "detect"
    lane = "import"
    kinds = frozenset({"photo"})
    requires: tuple[str, ...] = ("metadata", "thumbnail")
    reads_original = False
    remote = True  # may run on a worker host elsewhere (engine/remote/codec.py)
    timeout_s: float | None = 600.0  # per batch: r18 takes seconds a preview on a 2-core CPU

    def __init__(self, settings: Settings, *, spec: str | None = None) -> None:
        self.settings = settings
        self.spec = settings.models.detect if spec is None else spec
        if not self.spec:
            raise ValueError('models.detect is "": the detect stage is off')
        self.version = f"1+{self.spec}"
        self.min_score = float(settings.detect.min_score)
        self.holder: ModelHolder[ObjectDetector] = ModelHolder(
            self.spec,
            settings.device,
            _make_detector,
            self.lane,
            allow_download=settings.models.download,
        )
        self._batch_size: int | None = None

    @property
    def batch_size(self) -> int:
        """settings.models.detect_batch, or 32 on a GPU and 4 on the CPU; worked out
        (importing torch) only when first read, which the worker host does."""
        if self._batch_size is None:
            self._batch_size = device_batch_size(
                self.settings.device, self.settings.models.detect_batch, GPU_BATCH, CPU_BATCH
            )
        return self._batch_size

    # -- the model ---------------------------------------------------------------------

    def model(self, ctx: StageContext) -> ObjectDetector:
        return self.holder.get(ctx)

    def availability(self) -> str | None:
        """None when the model can load; else why not, with what to do."""
        return self.holder.availability()

    def model_status(self) -> dict[str, Any]:
        return self.holder.status()

    # -- the stage protocol ----------------------------------------------------------

    def prepare(self, item: ItemRef, ctx: StageContext) -> DetectInput:
        from PIL import Image, UnidentifiedImageError

        model = self.model(ctx)
        path = ctx.library_dir / thumb_relpath(item.hash, PREVIEW_PX)
        # A missing or unreadable preview fails the job for good: the thumbnail job is
        # done, so retrying this one alone would read the same file again. Re-running
        # the item's thumbnail remakes the preview and re-queues this job after it.
        try:
            with Image.open(path) as img:
                img.load()
                rgb = img if img.mode == "RGB" else img.convert("RGB")
                return DetectInput(model.preprocess(rgb), (rgb.width, rgb.height))
        except FileNotFoundError as exc:
            raise PermanentError(MISSING_PREVIEW) from exc
        except UnidentifiedImageError as exc:
            raise PermanentError(BAD_PREVIEW.format("not an image")) from exc
        except OSError as exc:
            if exc.errno is None:  # Pillow's decoder: a damaged file, not the system
                raise PermanentError(BAD_PREVIEW.format(str(exc) or "damaged")) from exc
            if exc.errno == errno.ENOENT:
                raise PermanentError(MISSING_PREVIEW) from exc
            raise TransientError(f"The preview could not be read: {exc.strerror or exc}.") from exc
        except (SyntaxError, EOFError) as exc:
            raise PermanentError(BAD_PREVIEW.format(str(exc) or "damaged")) from exc

    def run_batch(
        self, inputs: Sequence[DetectInput], ctx: StageContext
    ) -> list[StageOutput | BaseException]:
        model = self.model(ctx)
        pieces = infer_in_pieces(  # halves on CUDA out of memory, then the CPU
            model,
            inputs,
            lambda piece: model.detect(
                [i.pixels for i in piece], [i.size for i in piece], self.min_score
            ),
        )
        found = [detections for piece in pieces for detections in piece]
        if len(found) != len(inputs):
            raise RuntimeError(f"{self.spec} returned {len(found)} results for {len(inputs)}")
        out: list[StageOutput | BaseException] = []
        for prepared, detections in zip(inputs, found, strict=True):
            data: dict[str, Any] = {
                "model": self.spec,
                "digest": model.digest,
                "count": len(detections),
                "labels": label_counts(detections),
            }
            out.append(DetectOutput(data=data, detections=detections, frame=prepared.size))
        return out

    # -- on a worker host elsewhere (engine/remote/codec.py) ------------------------------

    def remote_files(self, item: ItemRef) -> list[str]:
        return [thumb_relpath(item.hash, PREVIEW_PX)]

    def encode_remote(self, output: StageOutput) -> dict[str, Any]:
        assert isinstance(output, DetectOutput)
        boxes = [[d.label, d.score, *d.box] for d in output.detections]
        return {"data": output.data, "frame": list(output.frame), "detections": boxes}

    def decode_remote(self, encoded: dict[str, Any]) -> StageOutput:
        import math

        from models.detect import Detection

        detections = []
        for label, score, x0, y0, x1, y1 in encoded["detections"]:
            values = [float(v) for v in (score, x0, y0, x1, y1)]
            if not all(math.isfinite(v) for v in values):
                raise ValueError("a box that is not finite")
            detections.append(
                Detection(str(label), values[0], (values[1], values[2], values[3], values[4]))
            )
        w, h = (int(v) for v in encoded["frame"])
        return DetectOutput(data=encoded["data"], detections=detections, frame=(w, h))

    def store_many(
        self,
        conn: sqlite3.Connection,
        results: Sequence[tuple[ItemRef, StageOutput]],
        seq: int,
    ) -> None:
        if not results:
            return
        ids = [item.id for item, _ in results]
        marks = ",".join("?" * len(ids))
        upright = {
            int(r[0]): (int(r[1]), int(r[2]))
            for r in conn.execute(
                f"SELECT id, width, height FROM items WHERE id IN ({marks})"
                " AND width > 0 AND height > 0",
                ids,
            )
        }
        for item, output in results:
            if not isinstance(output, DetectOutput):
                raise TypeError(f"detect result of item {item.id} is a {type(output).__name__}")
            frame_w, frame_h = output.frame
            width, height = upright.get(item.id, (frame_w, frame_h))
            sx = width / frame_w if frame_w > 0 else 1.0
            sy = height / frame_h if frame_h > 0 else 1.0
            rows = []
            for d in output.detections:
                x0, y0, x1, y1 = d.box
                rows.append(
                    (
                        item.id,
                        self.spec,
                        d.label,
                        round(d.score, 4),
                        round(min(max(x0 * sx, 0.0), width), 2),
                        round(min(max(y0 * sy, 0.0), height), 2),
                        round(min(max(x1 * sx, 0.0), width), 2),
                        round(min(max(y1 * sy, 0.0), height), 2),
                    )
                )
            conn.execute("DELETE FROM detections WHERE item_id = ?", (item.id,))
            conn.execute(
                "DELETE FROM item_tags WHERE item_id = ? AND source = ?", (item.id, SOURCE)
            )
            conn.executemany(
                """INSERT INTO detections (item_id, model, label, score, x0, y0, x1, y1)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                rows,
            )
            conn.executemany(
                "INSERT INTO item_tags (item_id, tag, source, score, model) VALUES (?, ?, ?, ?, ?)",
                [
                    (item.id, tag, SOURCE, round(score, 4), self.spec)
                    for tag, score in best_tags(output.detections).items()
                ],
            )
            data = dict(output.data)
            data["frame"] = [width, height]  # the pixels the stored boxes are in
            upsert_result(conn, item.id, self.name, self.version, data)
            conn.execute("UPDATE items SET seq = ? WHERE id = ?", (seq, item.id))
