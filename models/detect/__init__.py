"""Object detectors: a picture in, labelled boxes out (pixels of that picture)."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models.base import Model
from models.spec import ModelSpec

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels of the input image


class ObjectDetector(Model):
    task = "detect"

    @abstractmethod
    def preprocess(self, image: Image.Image) -> Any:
        """One RGB image → the network's input (CPU; no lock needed)."""

    @abstractmethod
    def detect(
        self, batch: list[Any], sizes: list[tuple[int, int]], min_score: float
    ) -> list[list[Detection]]:
        """One forward pass; `sizes` are the (width, height) of the input images; boxes
        come back in those pixels, best first, with score ≥ min_score."""


def create_detector(spec: ModelSpec | str, device: str = "auto") -> ObjectDetector:
    spec = ModelSpec.parse(spec) if isinstance(spec, str) else spec
    if spec.family == "transformers":
        from models.detect.transformers_detr import TransformersDetector

        return TransformersDetector(spec, device)
    raise ValueError(f"{spec.text} is not an object detector (transformers:…)")
