"""A tiny random RT-DETRv2 object detector, saved the way transformers exports one
(test helper): `config.json` + `model.safetensors` + `preprocessor_config.json`.

Backbone: RT-DETR's ResNet ("basic" blocks), one block a stage, widths 8/16/32/64;
hybrid encoder and decoder of width 16, 2 decoder layers (transformers will not tie
the box heads of fewer), 5 queries, no denoising; 64 px input. ~130k parameters:
builds in ~0.1 s, and a forward of a few images takes well under a second on a CPU
once the convolutions are warm.

The weights are random, but the decoder's class heads are biased so that every
query scores "cat" at about 0.98 and the other labels far lower: detection then
returns boxes labelled "cat" for any image, deterministically (seeded build).
"""

from __future__ import annotations

from pathlib import Path

TINY_LABELS: dict[int, str] = {0: "cat", 1: "dog", 2: "car"}
TINY_LABEL = "cat"  # what the biased class head finds in every image
TINY_IMAGE_PX = 64
TINY_QUERIES = 5
_BIASES = (4.0, -3.0, -6.0)  # sigmoid: 0.98 cat, 0.05 dog, 0.002 car (plus a little noise)


def make_tiny_rtdetr(folder: Path, *, seed: int = 0) -> Path:
    """Write a tiny RT-DETRv2 checkpoint and its image processor into `folder`."""
    import torch
    from transformers import (
        RTDetrImageProcessor,
        RTDetrResNetConfig,
        RTDetrV2Config,
        RTDetrV2ForObjectDetection,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    backbone = RTDetrResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16, 32, 64],
        depths=[1, 1, 1, 1],
        layer_type="basic",
        out_indices=[2, 3, 4],
    )
    config = RTDetrV2Config(
        backbone_config=backbone,
        encoder_in_channels=[16, 32, 64],
        encoder_hidden_dim=16,
        encoder_ffn_dim=32,
        encoder_attention_heads=2,
        d_model=16,
        decoder_in_channels=[16, 16, 16],
        decoder_ffn_dim=32,
        decoder_attention_heads=2,
        decoder_layers=2,
        decoder_n_points=2,
        num_queries=TINY_QUERIES,
        num_denoising=0,
        id2label=dict(TINY_LABELS),
        label2id={name: i for i, name in TINY_LABELS.items()},
    )
    rng_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = RTDetrV2ForObjectDetection(config).eval()
    finally:
        torch.random.set_rng_state(rng_state)
    bias = torch.tensor(_BIASES)
    with torch.no_grad():
        # The decoder's heads make the logits; the top-level copies are what
        # transformers ties them to (and saves): set both.
        for heads in (model.class_embed, model.model.decoder.class_embed):
            for head in heads:
                head.weight.mul_(0.1)
                head.bias.copy_(bias)
    model.save_pretrained(folder, safe_serialization=True)
    RTDetrImageProcessor(size={"height": TINY_IMAGE_PX, "width": TINY_IMAGE_PX}).save_pretrained(
        folder
    )
    return folder
