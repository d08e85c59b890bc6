"""Image embedders: a picture in, an L2-normalised vector out.

`ImageEmbedder.preprocess` is CPU work on one PIL image (thread-safe, no lock,
run on the host's CPU pool one batch ahead); `embed_images` is one forward pass
over a stacked batch (holds the model lock). Models with a text tower (CLIP) also
embed text, which zero-shot tags and, later, search use.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING

from models.base import Model
from models.spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image


class ImageEmbedder(Model):
    task = "embed"
    has_text: bool = False

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of the vectors (known once loaded)."""

    @abstractmethod
    def preprocess(self, image: Image.Image) -> np.ndarray:
        """One RGB image → the network's input array (float32, CHW). No lock needed."""

    @abstractmethod
    def embed_images(self, batch: np.ndarray) -> np.ndarray:
        """[n, C, H, W] → [n, dim] float32, each row L2-normalised."""

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """[n, dim] float32 normalised; only for models with a text tower."""
        raise NotImplementedError(f"{self.spec.text} has no text encoder")


def create_embedder(spec: ModelSpec | str, device: str = "auto") -> ImageEmbedder:
    spec = ModelSpec.parse(spec) if isinstance(spec, str) else spec
    if spec.family == "open_clip":
        from models.embed.clip import OpenClipEmbedder

        return OpenClipEmbedder(spec, device)
    if spec.family == "torchvision":
        from models.embed.mobilenet import MobileNetEmbedder

        return MobileNetEmbedder(spec, device)
    raise ValueError(f"{spec.text} is not an image embedder (open_clip:… or torchvision:…)")
