"""What every model-backed stage shares: its model from the host's resource pool
(one copy per process), the wait-don't-fail rule, and "loading model…" progress.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from engine.errors import WaitingError
from engine.pipeline.types import StageContext

if TYPE_CHECKING:
    from pathlib import Path

    from models.base import Model

M = TypeVar("M", bound="Model")
T = TypeVar("T")
R = TypeVar("R")


class ModelHolder(Generic[M]):
    """The stage's model: made once, loaded through `ctx.resources` when there is a pool."""

    def __init__(
        self,
        spec: str,
        device: str,
        make: Callable[[str, str], M],
        lane: str,
        *,
        allow_download: bool = True,
    ) -> None:
        self.spec = spec
        self.allow_download = allow_download
        self.device = device
        self.lane = lane
        self._make = make
        self._model: M | None = None
        self._guard = threading.Lock()

    def instance(self) -> M:
        with self._guard:
            if self._model is None:
                self._model = self._make(self.spec, self.device)
                self._model.allow_download = self.allow_download
            return self._model

    def get(self, ctx: StageContext) -> M:
        """The loaded model — the process's one copy, whichever stage loaded it first;
        raises WaitingError (the job waits) when its weights are not here."""
        from models.errors import ModelUnavailable, WeightsError

        model = self.instance()
        if model.state != "loaded":
            ctx.progress(0, None, f"loading model {model.spec.display}…")
        try:
            if ctx.resources is None:
                model.load()
                return model
            loaded: M = ctx.resources.get(
                (self.spec, self.device),
                model.load,
                lane=self.lane,
                release=lambda value: value.unload(),
            )
        except ModelUnavailable as exc:
            raise WaitingError(str(exc)) from exc
        except WeightsError as exc:
            # The weights are here but do not load: not the item's fault. The model set
            # them aside (or marked them unusable), so the stage waits, parked, for new
            # ones (models/base.py `Model._damaged`).
            raise WaitingError(str(exc)) from exc
        return loaded

    def availability(self) -> str | None:
        return self.instance().availability()

    def status(self) -> dict[str, Any]:
        return self.instance().status() if self._model is not None else {"spec": self.spec}


def is_cuda_oom(exc: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, or a RuntimeError that says CUDA ran out of memory."""
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and "out of memory" in text and "CUDA" in text


def infer_in_pieces(model: Model, inputs: Sequence[T], call: Callable[[Sequence[T]], R]) -> list[R]:
    """`call` over `inputs` in pieces that fit the GPU: on CUDA out of memory the cache
    is emptied and the piece halved (and the size that fitted kept on the model for
    later batches); out of memory one input at a time, the model moves to the CPU for
    good. Never an item's failure. Returns one result per piece, in order."""
    out: list[R] = []
    size = min(len(inputs), model.fitting_batch or len(inputs)) or 1
    start = 0
    while start < len(inputs):
        piece = inputs[start : start + size]
        try:
            out.append(call(piece))
        except Exception as exc:
            if not is_cuda_oom(exc) or model.device == "cpu":
                raise
            _empty_cuda_cache()
            if size > 1:
                size = max(1, size // 2)
                model.fitting_batch = size
            else:
                model.fall_back_to_cpu()
                size = len(inputs)
            continue
        start += len(piece)
    return out


def _empty_cuda_cache() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # freeing a cache must never be the error
        pass


def device_batch_size(device_setting: str, configured: int, gpu: int, cpu: int) -> int:
    """`configured` when set (> 0), else `gpu` or `cpu` by the device the model will
    use. Imports torch: stages read it lazily (the worker host does, the CLI never)."""
    if configured > 0:
        return configured
    from models.base import torch_device

    return gpu if torch_device(device_setting) == "cuda" else cpu


class CatalogReader:
    """A read-only catalog connection per thread, for stages that read what earlier
    stages stored (stored vectors, page text) in `prepare`/`run_batch`."""

    def __init__(self) -> None:
        self._local = threading.local()

    def conn(self, library_dir: Path) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            path = library_dir / "catalog.db"
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 5000")
            self._local.conn = conn
        return conn
