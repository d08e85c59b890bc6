"""Image preprocessing for the embedders, in Pillow + numpy (no torch, no lock).

It reproduces torchvision's eval transforms as open_clip and torchvision build them
(`Resize` → `CenterCrop` → `ToTensor` → `Normalize`), step for step: the same
output sizes (torchvision truncates the long side), the same Pillow resampling, the
same crop offsets. Pillow releases the GIL while it resizes, so the host's prepare
pool runs these in parallel with a forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class Preprocess:
    """What a network wants its input to be; `__call__` makes it from an RGB image."""

    size: tuple[int, int]  # (height, width) of the network's input
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize_mode: str = "shortest"  # shortest (then centre crop) | longest (then pad) | squash
    interpolation: str = "bicubic"  # bicubic | bilinear
    resize_px: int | None = None  # shortest mode: short side before the crop (None: crop size)
    fill: int = 0  # longest mode: the padding's grey level

    def __post_init__(self) -> None:
        if self.resize_mode not in ("shortest", "longest", "squash"):
            raise ValueError(f"unknown resize mode {self.resize_mode!r}")

    @property
    def min_decode(self) -> int:
        """The shortest side an image must have for this preprocessing to lose nothing
        (JPEG decoding can scale down to it for free)."""
        if self.resize_mode == "shortest":
            return self.resize_px or min(self.size)
        return max(self.size)

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after the resize step, as torchvision computes it."""
        th, tw = self.size
        if self.resize_mode == "squash":
            return tw, th
        if self.resize_mode == "shortest" and (self.resize_px is not None or th == tw):
            # torchvision Resize(int): the short side to `s`, the long one truncated.
            s = self.resize_px or th
            short, long = (width, height) if width <= height else (height, width)
            new_long = int(s * long / short)
            return (s, new_long) if width <= height else (new_long, s)
        # open_clip's ResizeKeepRatio: one ratio for both sides, rounded.
        ratio_h, ratio_w = height / th, width / tw
        ratio = max(ratio_h, ratio_w) if self.resize_mode == "longest" else min(ratio_h, ratio_w)
        return round(width / ratio), round(height / ratio)

    def resize(self, image: Image.Image) -> Image.Image:
        from PIL import Image

        if image.mode != "RGB":
            image = image.convert("RGB")
        size = self.resized_size(*image.size)
        if size != image.size:
            method = (
                Image.Resampling.BILINEAR
                if self.interpolation == "bilinear"
                else Image.Resampling.BICUBIC
            )
            image = image.resize(size, method)
        return image

    def crop(self, image: Image.Image) -> Image.Image:
        """Centre crop to the input size; pads (with `fill`, or black) where it is smaller."""
        from PIL import Image

        th, tw = self.size
        w, h = image.size
        if (w, h) == (tw, th):
            return image
        if w < tw or h < th:
            # torchvision pads with 0 (open_clip's CenterCropOrPad with its fill)
            # before cropping.
            fill = self.fill if self.resize_mode == "longest" else 0
            padded = Image.new("RGB", (max(w, tw), max(h, th)), (fill, fill, fill))
            padded.paste(image, ((max(tw - w, 0)) // 2, (max(th - h, 0)) // 2))
            image = padded
            w, h = image.size
        top = round((h - th) / 2.0)  # Python rounds half to even, as torchvision does
        left = round((w - tw) / 2.0)
        return image.crop((left, top, left + tw, top + th))

    def to_array(self, image: Image.Image) -> np.ndarray:
        """uint8 HWC → float32 CHW, (x / 255 - mean) / std."""
        pixels = np.asarray(image, dtype=np.uint8)
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"expected an RGB image, got an array of shape {pixels.shape}")
        out = np.empty((3, pixels.shape[0], pixels.shape[1]), dtype=np.float32)
        for c in range(3):
            scale = np.float32(1.0 / (255.0 * self.std[c]))
            offset = np.float32(self.mean[c] / self.std[c])
            np.multiply(pixels[:, :, c], scale, out=out[c], casting="unsafe")
            out[c] -= offset
        return out

    def __call__(self, image: Image.Image) -> np.ndarray:
        return self.to_array(self.crop(self.resize(image)))


def as_size(value: int | tuple[int, ...] | list[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if len(value) == 1:
        return int(value[0]), int(value[0])
    return int(value[-2]), int(value[-1])


def as_triple(value: float | tuple[float, ...] | list[float]) -> tuple[float, float, float]:
    if isinstance(value, int | float):
        return float(value), float(value), float(value)
    a, b, c = (float(v) for v in value)
    return a, b, c
