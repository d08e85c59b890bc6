"""The base of every model: identity, lazy loading, device, half precision, locking.

One instance per (spec, device) per process — the worker host's resource pool
holds it and every worker thread shares it. `load()` runs once (threads asking
meanwhile wait for it); inference holds `self.lock`, because a torch module is
not safe to call from two threads at once on one device and would not run faster
if it were. `unload()` drops the weights (the pool calls it when the model's
lanes have been idle long enough).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from models import weights as weights_mod
from models.errors import ModelUnavailable
from models.spec import ModelSpec

if TYPE_CHECKING:
    from models.weights import Weights

log = logging.getLogger("shoebox.models")

DOWNLOAD_RETRY_S = 600.0  # after a failed download, wait this long before trying again


def torch_device(setting: str = "auto") -> str:
    """`auto` → CUDA, then MPS, then CPU; an explicit device that is absent → CPU."""
    import torch

    if setting in ("auto", "cuda") and torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if setting in ("auto", "mps") and mps is not None and mps.is_available():
        return "mps"
    if setting not in ("auto", "cpu"):
        log.warning("device %r is not available here; using the CPU", setting)
    return "cpu"


class Model(ABC):
    """A model named by a spec; weights found (or fetched) and loaded on first use."""

    task: ClassVar[str] = ""

    def __init__(self, spec: ModelSpec | str, device: str = "auto", *, allow_download: bool = True):
        self.spec = ModelSpec.parse(spec) if isinstance(spec, str) else spec
        self.device_setting = device
        self.allow_download = allow_download
        self.lock = threading.RLock()
        self.state = "unloaded"  # unloaded | downloading | loading | loaded | unavailable
        self.device = ""
        self.weights: Weights | None = None
        self.load_s = 0.0
        self._failed_download_at = -DOWNLOAD_RETRY_S

    # identity

    @property
    def identity(self) -> str:
        """Spec plus weights digest: what a result records as its provenance."""
        digest = self.weights.short_digest if self.weights else "?"
        return f"{self.spec.text}@{digest}"

    @property
    def digest(self) -> str:
        return self.weights.digest if self.weights else ""

    @property
    def half(self) -> bool:
        return self.device == "cuda"

    # availability and loading

    def availability(self) -> str | None:
        """None if `load()` can succeed now (weights here, or a download worth trying);
        else the reason, with the action to take. Cheap: no network, no torch."""
        if self.state == "loaded":
            return None
        if weights_mod.find_local(self.spec) is not None:
            return None
        if self._download_worth_trying():
            return None
        return weights_mod.missing_reason(self.spec)

    def _download_worth_trying(self) -> bool:
        return (
            self.allow_download
            and not weights_mod.offline()
            and self.spec.path is None
            and time.monotonic() - self._failed_download_at >= DOWNLOAD_RETRY_S
        )

    def find_weights(self, progress: weights_mod.Progress | None = None) -> Weights:
        found = weights_mod.find_local(self.spec)
        if found is not None:
            return found
        if not self._download_worth_trying():
            raise ModelUnavailable(
                self.spec.text,
                (weights_mod.missing_reason(self.spec) or "").split(": ", 1)[0],
                weights_mod.offline_action(self.spec),
            )
        self.state = "downloading"
        try:
            return weights_mod.download(self.spec, progress)
        except ModelUnavailable:
            self._failed_download_at = time.monotonic()
            self.state = "unavailable"
            raise

    def load(self) -> Model:
        """Load the weights (once); raises ModelUnavailable when they are not here."""
        with self.lock:
            if self.state == "loaded":
                return self
            started = time.monotonic()
            try:
                found = self.find_weights()
                self.state = "loading"
                self.device = torch_device(self.device_setting)
                self._load(found, self.device)
            except ModelUnavailable:
                self.state = "unavailable"
                raise
            except BaseException:
                self.state = "unloaded"
                raise
            self.weights = found
            self.state = "loaded"
            self.load_s = time.monotonic() - started
            log.info("loaded %s on %s in %.1f s", self.identity, self.device, self.load_s)
            return self

    def unload(self) -> None:
        with self.lock:
            if self.state != "loaded":
                return
            self._unload()
            self.state = "unloaded"
            if self.device == "cuda":
                import torch

                torch.cuda.empty_cache()

    def status(self) -> dict[str, Any]:
        return {
            "spec": self.spec.text,
            "task": self.task,
            "state": self.state,
            "device": self.device or None,
            "digest": self.digest or None,
            "load_s": round(self.load_s, 3),
        }

    @abstractmethod
    def _load(self, weights: Weights, device: str) -> None:
        """Build the network and load `weights` onto `device` (half precision on CUDA)."""

    @abstractmethod
    def _unload(self) -> None:
        """Drop every reference to the network's tensors."""
