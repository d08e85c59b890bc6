"""Object detection with a transformers checkpoint: RT-DETR / RT-DETRv2 (the default,
`PekingU/rtdetr_v2_r18vd`), and any other `AutoModelForObjectDetection` model.

Weights load only from the local folder (`local_files_only`; safetensors when the
folder has them, else transformers' `weights_only` loading): `models.weights`
decides where the folder is, and nothing here reaches the network.

`preprocess` does the processor's work itself when the processor resizes to a fixed
size (RT-DETR: 640×640, bilinear, rescale 1/255, no normalisation): one PIL resize
and a multiply, no torch, so it runs cheaply on the host's prepare pool. Other
processors (DETR's aspect-preserving resize) are called as they are; inputs of
different shapes then run as separate forward passes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models.detect import Detection, ObjectDetector
from models.errors import WeightsError
from models.spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from models.weights import Weights

log = logging.getLogger("shoebox.models")


@dataclass(frozen=True)
class _Prep:
    """What the processor does to an image, when `preprocess` can do it itself."""

    size: tuple[int, int]  # (width, height) the image is resized to
    resample: int  # a PIL resampling filter
    rescale: float | None  # multiply by this (1/255), or None
    mean: tuple[float, float, float] | None  # normalise with mean/std, or None
    std: tuple[float, float, float] | None


def _field(config: Any, key: str) -> Any:
    """A processor attribute that may be a dict or a SizeDict-like object."""
    if isinstance(config, dict):
        return config.get(key)
    return getattr(config, key, None)


def _triple(value: Any) -> tuple[float, float, float]:
    if isinstance(value, (int, float)):
        return (float(value),) * 3
    a, b, c = (float(v) for v in value)
    return (a, b, c)


def _fixed_prep(processor: Any) -> _Prep | None:
    """The processor's steps if it resizes every image to one fixed size (and pads
    nothing); None when `preprocess` must call the processor."""
    from PIL import Image

    if not getattr(processor, "do_resize", False):
        return None
    size = getattr(processor, "size", None)
    height, width = _field(size, "height"), _field(size, "width")
    if not (isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0):
        return None
    if getattr(processor, "do_pad", False) and getattr(processor, "pad_size", None):
        pad = processor.pad_size
        if (_field(pad, "height"), _field(pad, "width")) != (height, width):
            return None
    resample = getattr(processor, "resample", None)
    try:
        pil_filter = int(Image.Resampling(int(resample))) if resample is not None else None
    except (TypeError, ValueError):
        pil_filter = None
    if pil_filter is None:
        pil_filter = int(Image.Resampling.BILINEAR)
    rescale = None
    if getattr(processor, "do_rescale", False):
        rescale = float(getattr(processor, "rescale_factor", 1 / 255))
    mean = std = None
    if getattr(processor, "do_normalize", False):
        mean = _triple(processor.image_mean)
        std = _triple(processor.image_std)
    return _Prep((width, height), pil_filter, rescale, mean, std)


class TransformersDetector(ObjectDetector):
    """An object-detection checkpoint from a `save_pretrained` folder."""

    def __init__(
        self, spec: ModelSpec | str, device: str = "auto", *, allow_download: bool = True
    ) -> None:
        super().__init__(spec, device, allow_download=allow_download)
        self._network: Any = None
        self._processor: Any = None
        self._prep: _Prep | None = None
        self._labels: dict[int, str] = {}

    # -- loading -------------------------------------------------------------------

    def _load(self, weights: Weights, device: str) -> None:
        import torch
        import transformers

        hf: Any = transformers  # partly typed: its untyped calls stay out of mypy's way
        hf.utils.logging.disable_progress_bar()  # no tqdm bars in a worker's log
        folder = weights.path if weights.path.is_dir() else weights.path.parent
        safetensors = any(folder.glob("*.safetensors"))
        try:
            processor = hf.AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
            network = hf.AutoModelForObjectDetection.from_pretrained(
                str(folder), local_files_only=True, use_safetensors=True if safetensors else None
            )
        except (OSError, ValueError, KeyError) as exc:
            raise WeightsError(
                f"{folder} is not a transformers object-detection checkpoint ({exc})"
            ) from exc
        network.eval()
        if device == "cuda":
            network = network.to(dtype=torch.float16)
        network = network.to(device)
        id2label = getattr(network.config, "id2label", None) or {}
        self._labels = {int(k): str(v) for k, v in id2label.items()}
        self._processor = processor
        self._prep = _fixed_prep(processor)
        self._network = network

    def _unload(self) -> None:
        self._network = None
        self._processor = None
        self._prep = None

    @property
    def labels(self) -> dict[int, str]:
        """Class id → name, from the checkpoint's config (empty until loaded)."""
        return dict(self._labels)

    # -- inference -----------------------------------------------------------------

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """One RGB image → float32 CHW, as the checkpoint's processor makes it."""
        import numpy as np
        from PIL import Image

        prep, processor = self._prep, self._processor
        if processor is None:
            raise RuntimeError(f"{self.spec.text} is not loaded: call load() first")
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        if prep is None:
            pixels = processor(images=rgb, return_tensors="np")["pixel_values"][0]
            return np.ascontiguousarray(pixels, dtype=np.float32)
        if rgb.size != prep.size:
            rgb = rgb.resize(prep.size, Image.Resampling(prep.resample))
        array = np.asarray(rgb, dtype=np.float32)  # HWC, a fresh array
        if prep.rescale is not None:
            array *= np.float32(prep.rescale)
        if prep.mean is not None and prep.std is not None:
            array -= np.asarray(prep.mean, dtype=np.float32)
            array /= np.asarray(prep.std, dtype=np.float32)
        return np.ascontiguousarray(array.transpose(2, 0, 1))

    def detect(
        self, batch: list[Any], sizes: list[tuple[int, int]], min_score: float
    ) -> list[list[Detection]]:
        """One forward pass (one per input shape, for processors without a fixed
        size); boxes in the pixels of `sizes` (width, height), clipped to the image,
        best first, each with score ≥ min_score."""
        import numpy as np
        import torch

        if len(batch) != len(sizes):
            raise ValueError(f"{len(batch)} inputs but {len(sizes)} sizes")
        if not batch:
            return []
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, pixels in enumerate(batch):
            groups.setdefault(tuple(np.shape(pixels)), []).append(i)
        found: list[list[Detection]] = [[] for _ in batch]
        # post-processing keeps scores strictly above its threshold; ours is ≥.
        threshold = max(min_score - 1e-6, 0.0)
        with self.lock, torch.inference_mode():
            network, processor = self._network, self._processor
            if network is None or processor is None:
                raise RuntimeError(f"{self.spec.text} is not loaded: call load() first")
            dtype = torch.float16 if self.half else torch.float32
            for members in groups.values():
                stacked = np.stack([np.asarray(batch[i], dtype=np.float32) for i in members])
                pixels = torch.from_numpy(stacked).to(self.device, dtype=dtype)
                outputs = network(pixel_values=pixels)
                outputs.logits = outputs.logits.float()
                outputs.pred_boxes = outputs.pred_boxes.float()
                targets = torch.tensor([[sizes[i][1], sizes[i][0]] for i in members])
                processed = processor.post_process_object_detection(
                    outputs, threshold=threshold, target_sizes=targets
                )
                for i, result in zip(members, processed, strict=True):
                    found[i] = self._detections(result, sizes[i], min_score)
        return found

    def _detections(
        self, result: dict[str, Any], size: tuple[int, int], min_score: float
    ) -> list[Detection]:
        width, height = float(size[0]), float(size[1])
        scores: Sequence[float] = result["scores"].float().cpu().tolist()
        labels: Sequence[int] = result["labels"].cpu().tolist()
        boxes: Sequence[Sequence[float]] = result["boxes"].float().cpu().tolist()
        out: list[Detection] = []
        for score, label, (x0, y0, x1, y1) in zip(scores, labels, boxes, strict=True):
            if score < min_score:
                continue
            x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
            y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
            if x1 <= x0 or y1 <= y0:  # wholly outside the picture
                continue
            name = self._labels.get(int(label), str(int(label)))
            out.append(Detection(name, float(score), (x0, y0, x1, y1)))
        out.sort(key=lambda d: d.score, reverse=True)
        return out
