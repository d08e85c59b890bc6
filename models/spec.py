"""Model spec strings: which model, from where.

- `open_clip:ARCH:PRETRAINED` (a tag open_clip knows, e.g. `laion2b_s34b_b79k`)
- `open_clip:ARCH:/path/weights.safetensors` (a file of your own)
- `transformers:HUB_ID` or `transformers:/path/to/dir` (a `save_pretrained` folder)
- `torchvision:mobilenet_v2[:/path/weights]`
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

FAMILIES: tuple[str, ...] = ("open_clip", "transformers", "torchvision")
TORCHVISION_ARCHS: tuple[str, ...] = ("mobilenet_v2",)


class SpecError(ValueError):
    """A spec string that names no model Shoebox can run."""


def _looks_like_path(text: str) -> bool:
    return text.startswith(("/", "~", "./", "../")) or (os.sep in text and Path(text).exists())


@dataclass(frozen=True)
class ModelSpec:
    family: str
    arch: str  # open_clip architecture, hub id, or torchvision architecture
    source: str  # pretrained tag, or a path ("" when the family has one default)
    text: str  # the spec as written, normalised

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        text = text.strip()
        family, sep, rest = text.partition(":")
        if not sep or family not in FAMILIES:
            raise SpecError(
                f"{text!r} is not a model spec: write open_clip:ARCH:PRETRAINED, "
                "transformers:HUB_ID_OR_DIR or torchvision:mobilenet_v2[:WEIGHTS]"
            )
        if not rest:
            raise SpecError(f"{text!r} names no model after {family}:")
        if family == "transformers":
            return cls(family, rest, rest if _looks_like_path(rest) else "", text)
        arch, _, source = rest.partition(":")
        if family == "open_clip":
            if not source:
                raise SpecError(
                    f"{text!r}: open_clip specs need weights after the architecture, "
                    "e.g. open_clip:ViT-B-32:laion2b_s34b_b79k"
                )
            return cls(family, arch, source, text)
        if arch not in TORCHVISION_ARCHS:
            raise SpecError(
                f"{text!r}: torchvision models supported: {', '.join(TORCHVISION_ARCHS)}"
            )
        return cls(family, arch, source, text)

    @property
    def path(self) -> Path | None:
        """The weights path the spec names itself, if any."""
        if self.source and _looks_like_path(self.source):
            return Path(self.source).expanduser()
        return None

    @property
    def display(self) -> str:
        """Human name: `ViT-B-32 (laion2b_s34b_b79k)`."""
        if self.family == "transformers":
            return self.arch.rstrip("/").rsplit("/", 1)[-1] if self.path else self.arch
        if self.path is not None:
            return f"{self.arch} ({self.path.name})"
        return f"{self.arch} ({self.source})" if self.source else self.arch

    @property
    def slug(self) -> str:
        """A folder name for this spec in the weights cache."""
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.text).strip("_")[:120]

    def __str__(self) -> str:
        return self.text
