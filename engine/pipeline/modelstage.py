"""What every model-backed stage shares: its model from the host's resource pool
(one copy per process), the wait-don't-fail rule, and "loading model…" progress.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from engine.errors import TransientError, WaitingError
from engine.pipeline.types import StageContext

if TYPE_CHECKING:
    from pathlib import Path

    from models.base import Model

M = TypeVar("M", bound="Model")


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
            # The weights are here but unusable: not the item's fault, and waiting
            # would not help either; retried, then dead, with the action to take.
            raise TransientError(
                f"The weights of {self.spec} cannot be used ({exc}); import them again "
                "with `shoebox models import`."
            ) from exc
        return loaded

    def availability(self) -> str | None:
        return self.instance().availability()

    def status(self) -> dict[str, Any]:
        return self.instance().status() if self._model is not None else {"spec": self.spec}


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
