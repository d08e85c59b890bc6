"""Sentence embeddings from a transformers encoder (all-MiniLM-L6-v2 by default).

The vector is the mean of the last hidden states over the real (unpadded) tokens,
L2-normalised: that is how sentence-transformers trained all-MiniLM-L6-v2 (its
`1_Pooling` config says mean tokens), so that is what makes its cosine scores
meaningful. Inputs are read to at most 256 tokens, the model's `max_seq_length`
(it was trained on that; its 512 position embeddings beyond are untrained), or
less when the checkpoint says so. Any BERT-like `save_pretrained` folder with a
tokenizer works the same way (`transformers:/path/dir`).

Weights load only from the local folder (`local_files_only`; safetensors when the
folder has them): `models.weights` decides where the folder is. Batches run sorted
by length, so padding costs little; half precision on CUDA. Torch's thread count
is left as the process set it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from models.errors import WeightsError
from models.spec import ModelSpec
from models.text import TextEmbedder

if TYPE_CHECKING:
    from pathlib import Path

    from models.weights import Weights

MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length
SENTENCE_CONFIG = "sentence_bert_config.json"


def _max_tokens(folder: Path, network: Any, tokenizer: Any) -> int:
    """256, or less when the checkpoint's own limits are lower."""
    limits = [MAX_TOKENS]
    try:
        seq = json.loads((folder / SENTENCE_CONFIG).read_text()).get("max_seq_length")
        if isinstance(seq, int) and seq > 0:
            limits.append(seq)
    except (OSError, ValueError, AttributeError):
        pass
    positions = getattr(network.config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions)
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and model_max > 0:
        limits.append(model_max)
    return min(limits)


class TransformersTextEmbedder(TextEmbedder):
    """A mean-pooled transformers encoder from a `save_pretrained` folder."""

    def __init__(
        self, spec: ModelSpec | str, device: str = "auto", *, allow_download: bool = True
    ) -> None:
        super().__init__(spec, device, allow_download=allow_download)
        self._network: Any = None
        self._tokenizer: Any = None  # for embedding: used under the lock only
        self._span_tokenizer: Any = None  # for chunking: never reconfigured, so shared
        self._dim = 0
        self._max_tokens = 0
        self._special = 0

    # -- loading -------------------------------------------------------------------

    def _load(self, weights: Weights, device: str) -> None:
        import torch
        import transformers

        hf: Any = transformers  # partly typed: its untyped calls stay out of mypy's way
        hf.utils.logging.disable_progress_bar()  # no tqdm bars in a worker's log
        folder = weights.path if weights.path.is_dir() else weights.path.parent
        safetensors = any(folder.glob("*.safetensors"))
        try:
            tokenizer = hf.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            # A second copy for `chunk`: the HF tokenizer's padding and truncation are
            # state it changes on a call that asks for other settings, which is not
            # safe while another thread encodes with it.
            span_tokenizer = hf.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            network = hf.AutoModel.from_pretrained(
                str(folder), local_files_only=True, use_safetensors=True if safetensors else None
            )
        except (OSError, ValueError, KeyError) as exc:
            raise WeightsError(f"{folder} is not a transformers text encoder ({exc})") from exc
        if not getattr(tokenizer, "is_fast", False):
            raise WeightsError(f"{folder} has no fast tokenizer (tokenizer.json) for offsets")
        network.eval()
        if device == "cuda":
            network = network.to(dtype=torch.float16)
        network = network.to(device)
        # Settle the span tokenizer's state once (tokenizer.json may carry padding or
        # truncation of its own), so that later calls only read it.
        span_tokenizer("warm up", add_special_tokens=False, return_offsets_mapping=True)
        self._special = len(tokenizer("", add_special_tokens=True)["input_ids"])
        self._max_tokens = _max_tokens(folder, network, tokenizer)
        self._dim = int(network.config.hidden_size)
        self._tokenizer = tokenizer
        self._span_tokenizer = span_tokenizer
        self._network = network

    def _unload(self) -> None:
        self._network = None
        self._tokenizer = None
        self._span_tokenizer = None

    # -- what it offers --------------------------------------------------------------

    @property
    def dim(self) -> int:
        if not self._dim:
            self.load()
        return self._dim

    @property
    def max_tokens(self) -> int:
        if not self._max_tokens:
            self.load()
        return self._max_tokens

    @property
    def special_tokens(self) -> int:
        if not self._max_tokens:
            self.load()
        return self._special

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        tokenizer = self._span_tokenizer
        if tokenizer is None:
            self.load()
            tokenizer = self._span_tokenizer
        encoded = tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        return [(int(s), int(e)) for s, e in encoded["offset_mapping"]]

    def embed_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        import torch

        texts = list(texts)
        with self.lock:
            self.load()
            out = np.zeros((len(texts), self._dim), dtype=np.float32)
            # Longest first, by characters (a cheap proxy for tokens): each batch pads
            # to about its own length, and the biggest batch shows up at once.
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
            step = max(1, batch_size)
            with torch.inference_mode():
                for begin in range(0, len(order), step):
                    members = order[begin : begin + step]
                    out[members] = self._forward([texts[i] for i in members])
        return out

    def _forward(self, batch: list[str]) -> np.ndarray:
        import torch

        encoded = self._tokenizer(
            batch,
            padding=True,
            truncation=True,
            max_length=self._max_tokens,
            return_tensors="pt",
        )
        inputs = {k: v.to(self.device) for k, v in encoded.items()}
        hidden = self._network(**inputs).last_hidden_state.float()
        mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        pooled = summed / mask.sum(dim=1).clamp(min=1.0)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        result: np.ndarray = pooled.cpu().numpy().astype(np.float32, copy=False)
        return result
