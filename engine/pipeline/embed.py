"""The `embed` stage: one L2-normalised vector per item, from its preview.

It reads the thumbnail stage's ~1280 px preview (upright RGB JPEG; a PDF's first
page), never the original. Batched: the host claims `batch_size` jobs, runs
`prepare` (decode + preprocess, CPU) for each on its prepare pool while the other
pool worker's batch is in its forward pass, then one `run_batch` (one forward pass),
then stores every vector in one transaction.

The model spec is part of the stage's version, so changing `models.embed`
re-indexes the library; the weights digest is stored with each vector.

A model whose weights are not here makes the job wait (ModelHolder turns
ModelUnavailable into WaitingError); the host asks `availability()` to know when to
wake it. Nothing here imports torch until a job runs: building the registry (for
`shoebox status`) stays cheap.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.config import Settings
from engine.errors import PermanentError, TransientError
from engine.pipeline.modelstage import ModelHolder, device_batch_size, infer_in_pieces
from engine.pipeline.thumbnail import PREVIEW_PX, thumb_relpath
from engine.pipeline.types import ItemRef, StageContext, StageOutput, upsert_result

if TYPE_CHECKING:
    import numpy as np

    from models.embed import ImageEmbedder

CPU_BATCH = 32
GPU_BATCH = 256

MISSING_PREVIEW = "The preview is missing; retry the item's thumbnail."
BAD_PREVIEW = "The preview cannot be read ({}); retry the item's thumbnail."


@dataclass
class EmbedOutput(StageOutput):
    """The vector travels beside `data` (which is the JSON result, without it)."""

    vector: np.ndarray | None = None
    norm: float | None = None  # the feature's length before normalising (MobileNet)


def _make_embedder(spec: str, device: str) -> ImageEmbedder:
    from models.embed import create_embedder

    return create_embedder(spec, device)


class EmbedStage:
    name = "embed"
    lane = "import"
    kinds = frozenset({"photo", "document"})
    requires: tuple[str, ...] = ("thumbnail",)
    reads_original = False
    timeout_s: float | None = 600.0  # per batch: 32 ViT-B/32 images take ~3 s on a CPU
    # Decode the preview at a JPEG scale (1/2, 1/4, 1/8) no smaller than what the
    # network's resize needs: ~4x less decoding for CLIP's 224 px input, and the DCT
    # scaling is a good downscale, so the vectors barely differ from a full decode.
    fast_decode = True
    remote = True  # may run on a worker host elsewhere (engine/remote/codec.py)

    def __init__(self, settings: Settings, *, spec: str | None = None) -> None:
        self.settings = settings
        self.spec = settings.models.embed if spec is None else spec
        if not self.spec:
            raise ValueError('models.embed is "": the embed stage is off')
        self.version = f"1+{self.spec}"
        self.holder: ModelHolder[ImageEmbedder] = ModelHolder(
            self.spec,
            settings.device,
            _make_embedder,
            self.lane,
            allow_download=settings.models.download,
        )
        self._batch_size: int | None = None

    @property
    def batch_size(self) -> int:
        """settings.models.embed_batch, or 256 on a GPU and 32 on the CPU; worked out
        (importing torch) only when first read, which the worker host does."""
        if self._batch_size is None:
            self._batch_size = device_batch_size(
                self.settings.device, self.settings.models.embed_batch, GPU_BATCH, CPU_BATCH
            )
        return self._batch_size

    # -- the model ---------------------------------------------------------------------

    def model(self, ctx: StageContext) -> ImageEmbedder:
        return self.holder.get(ctx)

    def availability(self) -> str | None:
        """None when the model can load; else why not, with what to do."""
        return self.holder.availability()

    def model_status(self) -> dict[str, Any]:
        return self.holder.status()

    # -- the stage protocol ----------------------------------------------------------

    def prepare(self, item: ItemRef, ctx: StageContext) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        model = self.model(ctx)
        path = ctx.library_dir / thumb_relpath(item.hash, PREVIEW_PX)
        # A missing or unreadable preview fails the job for good (PermanentError), not
        # as transient: the thumbnail job is done, so retrying this job alone would
        # read the same absent file again. Re-running the item's thumbnail remakes the
        # preview and re-queues this job after it.
        try:
            with Image.open(path) as img:
                if self.fast_decode and img.format == "JPEG":
                    side = getattr(model, "preprocessing", None)
                    need = getattr(side, "min_decode", None)
                    if isinstance(need, int) and need > 0:
                        img.draft("RGB", (need, need))
                img.load()
                rgb = img if img.mode == "RGB" else img.convert("RGB")
                return model.preprocess(rgb)
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
        self, inputs: Sequence[np.ndarray], ctx: StageContext
    ) -> list[StageOutput | BaseException]:
        import numpy as np

        model = self.model(ctx)
        with_norms = getattr(model, "embed_images_with_norms", None)

        def embed(piece: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
            batch = np.stack(piece) if len(piece) > 1 else piece[0][None]
            if with_norms is not None:
                found, lengths = with_norms(batch)
                return found, lengths
            return model.embed_images(batch), None

        pieces = infer_in_pieces(model, inputs, embed)  # halves on CUDA OOM, then CPU
        vectors = np.concatenate([v for v, _ in pieces]) if len(pieces) > 1 else pieces[0][0]
        norms: np.ndarray | None = None
        if with_norms is not None:
            norms = np.concatenate([n for _, n in pieces if n is not None])
        if vectors.shape[0] != len(inputs):
            raise RuntimeError(f"{self.spec} returned {vectors.shape[0]} vectors for {len(inputs)}")
        data: dict[str, Any] = {"model": self.spec, "digest": model.digest, "dim": model.dim}
        out: list[StageOutput | BaseException] = []
        for i in range(len(inputs)):
            row = dict(data)
            norm = None
            if norms is not None:
                norm = float(norms[i])
                row["norm"] = norm
            out.append(EmbedOutput(data=row, vector=vectors[i], norm=norm))
        return out

    # -- on a worker host elsewhere (engine/remote/codec.py) ------------------------------

    def remote_files(self, item: ItemRef) -> list[str]:
        return [thumb_relpath(item.hash, PREVIEW_PX)]

    def encode_remote(self, output: StageOutput) -> dict[str, Any]:
        from engine.remote.codec import pack_array

        vector = getattr(output, "vector", None)
        if vector is None:
            raise ValueError("an embed result without its vector")
        norm = getattr(output, "norm", None)
        return {"data": output.data, "vector": pack_array(vector), "norm": norm}

    def decode_remote(self, encoded: dict[str, Any]) -> StageOutput:
        from engine.remote.codec import CodecError, unpack_array

        vector = unpack_array(encoded["vector"])
        if vector.ndim != 1 or vector.shape[0] != int(encoded["data"].get("dim", -1)):
            raise CodecError(f"an embed vector of shape {list(vector.shape)}")
        norm = encoded.get("norm")
        return EmbedOutput(
            data=encoded["data"], vector=vector, norm=None if norm is None else float(norm)
        )

    def store_many(
        self,
        conn: sqlite3.Connection,
        results: Sequence[tuple[ItemRef, StageOutput]],
        seq: int,
    ) -> None:
        from engine.vectors import store_vectors

        rows = []
        for item, output in results:
            vector = getattr(output, "vector", None)
            if vector is None:
                raise ValueError(f"embed result of item {item.id} has no vector")
            rows.append((item.id, self.spec, vector, str(output.data.get("digest", ""))))
        store_vectors(conn, rows, seq)
        for item, output in results:
            upsert_result(conn, item.id, self.name, self.version, output.data)
