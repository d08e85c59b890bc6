"""A tiny random OpenCLIP model, saved the way open_clip exports models (test helper).

Vision: ViT, width 64, 2 layers, patch 16, 64 px; text: width 64, 2 layers, context
77, the full 49,408-token vocabulary (so open_clip's bundled BPE tokenizer fits it).
Builds and saves in well under a second on a CPU; seeded, so every build is the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# ImageNet's mean/std, not open_clip's defaults: a loader that ignored the folder's
# preprocessing config would be caught by the tests.
TINY_MEAN = (0.485, 0.456, 0.406)
TINY_STD = (0.229, 0.224, 0.225)
TINY_DIM = 32
TINY_IMAGE_PX = 64

TINY_MODEL_CFG: dict[str, Any] = {
    "embed_dim": TINY_DIM,
    "vision_cfg": {
        "image_size": TINY_IMAGE_PX,
        "layers": 2,
        "width": 64,
        "head_width": 32,
        "patch_size": 16,
    },
    "text_cfg": {
        "context_length": 77,
        "vocab_size": 49408,
        "width": 64,
        "heads": 2,
        "layers": 2,
    },
}


def make_tiny_open_clip(folder: Path, *, seed: int = 0) -> Path:
    """Write `open_clip_config.json` + `open_clip_model.safetensors` into `folder`."""
    import torch
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = CLIP(**TINY_MODEL_CFG)
    finally:
        torch.random.set_rng_state(generator_state)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(folder / "open_clip_model.safetensors"))
    config = {
        "model_cfg": TINY_MODEL_CFG,
        "preprocess_cfg": {
            "mean": list(TINY_MEAN),
            "std": list(TINY_STD),
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        },
    }
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return folder
