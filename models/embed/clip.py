"""OpenCLIP image (and text) embedder.

Weights come in two shapes:
- a folder holding `open_clip_config.json` and a checkpoint (what open_clip's
  `push_pretrained_to_hf_hub` / `save_for_hf` writes, and what the Hugging Face
  cache holds for hub models): open_clip builds it with its `local-dir:` schema,
  the architecture and preprocessing from the folder's config, the tokenizer too;
- a single checkpoint file for a built-in architecture (`open_clip:ViT-B-32:…`):
  `create_model(arch, pretrained=file)`; when the spec's source is a pretrained tag
  open_clip knows, that tag's preprocessing and QuickGELU flag are applied (a file
  path alone would silently get the defaults).

Checkpoints load as safetensors or with `torch.load(weights_only=True)`: a pickle
that wants to run code is refused (WeightsError), never executed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.embed import ImageEmbedder
from models.embed.imageprep import Preprocess, as_size, as_triple
from models.errors import WeightsError

if TYPE_CHECKING:
    from PIL import Image

    from models.weights import Weights

CONFIG_FILE = "open_clip_config.json"
TEXT_BATCH = 256
# On a CPU, batches run in chunks of at most this many images: a ViT gains nothing
# from more, and convolutional towers (RN50…) would page-fault fresh activations in
# on every call (see models/embed/mobilenet.py). A GPU takes the batch whole.
CPU_CHUNK = 16
_CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


def _checkpoint_in(folder: Path) -> Path | None:
    """The folder's checkpoint, in open_clip's order of preference."""
    preferred = (
        "open_clip_model.safetensors",
        "open_clip_pytorch_model.safetensors",
        "open_clip_pytorch_model.bin",
        "open_clip_pytorch_model.pth",
        "model.safetensors",
        "pytorch_model.bin",
    )
    for name in preferred:
        if (folder / name).is_file():
            return folder / name
    found = sorted(p for p in folder.iterdir() if p.suffix in _CHECKPOINT_SUFFIXES)
    found.sort(key=lambda p: p.suffix != ".safetensors")
    return found[0] if found else None


def _refused(path: Path, exc: BaseException) -> WeightsError:
    return WeightsError(
        f"{path.name} is not a plain weights file (it was refused, not loaded: "
        f"{str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__})"
    )


class OpenClipEmbedder(ImageEmbedder):
    has_text = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._model: Any = None
        self._tokenizer: Any = None
        self._dtype: Any = None
        self._dim = 0
        self._pp: Preprocess | None = None

    # -- loading ---------------------------------------------------------------------

    def _load(self, weights: Weights, device: str) -> None:
        import open_clip
        import torch

        precision = "fp16" if device == "cuda" else "fp32"
        path = weights.path
        if path.is_dir() and (path / CONFIG_FILE).is_file():
            checkpoint = _checkpoint_in(path)
            if checkpoint is None:
                raise WeightsError(f"{path} has an open_clip config but no weights file")
            name = f"local-dir:{path}"
            kwargs: dict[str, Any] = {}
        else:
            checkpoint = _checkpoint_in(path) if path.is_dir() else path
            if checkpoint is None:
                raise WeightsError(f"{path} holds no open_clip weights file")
            name = self.spec.arch
            kwargs = {"pretrained": str(checkpoint), **self._tag_overrides()}
        try:
            model = open_clip.create_model(
                name,
                precision=precision,
                device=device,
                weights_only=True,
                require_pretrained=True,
                **kwargs,
            )
        except Exception as exc:
            if _is_unpickling_refusal(exc):
                raise _refused(checkpoint, exc) from exc
            raise
        model.eval()
        self._tokenizer = open_clip.get_tokenizer(name)
        self._dtype = torch.float16 if precision == "fp16" else torch.float32
        self._model = model
        self._pp = self._preprocess_from(model)
        self._dim = self._output_dim(model)

    def _tag_overrides(self) -> dict[str, Any]:
        """A known pretrained tag's preprocessing and activation (for a bare file)."""
        import open_clip

        if self.spec.path is not None:
            return {}
        cfg: dict[str, Any] = open_clip.get_pretrained_cfg(self.spec.arch, self.spec.source) or {}
        out: dict[str, Any] = {}
        if cfg.get("quick_gelu"):
            out["force_quick_gelu"] = True
        pp = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}
        if pp:
            out["force_preprocess_cfg"] = pp
        return out

    @staticmethod
    def _preprocess_from(model: Any) -> Preprocess:
        cfg: dict[str, Any] = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
        size = cfg.get("size") or model.visual.image_size
        interpolation = cfg.get("interpolation") or "bicubic"
        return Preprocess(
            size=as_size(size),
            mean=as_triple(cfg.get("mean") or (0.48145466, 0.4578275, 0.40821073)),
            std=as_triple(cfg.get("std") or (0.26862954, 0.26130258, 0.27577711)),
            resize_mode=cfg.get("resize_mode") or "shortest",
            interpolation="bilinear" if interpolation == "bilinear" else "bicubic",
            fill=int(cfg.get("fill_color") or 0),
        )

    def _output_dim(self, model: Any) -> int:
        dim = getattr(model.visual, "output_dim", None)
        if isinstance(dim, int) and dim > 0:
            return dim
        assert self._pp is not None
        probe = np.zeros((1, 3, *self._pp.size), dtype=np.float32)
        return int(self._forward(probe).shape[1])

    def _unload(self) -> None:
        self._model = None
        self._tokenizer = None

    # -- what it offers ----------------------------------------------------------------

    @property
    def preprocessing(self) -> Preprocess:
        """The input the network wants (read from its config when it loads)."""
        if self._pp is None:
            self.load()  # once; threads asking meanwhile wait for it
        assert self._pp is not None
        return self._pp

    @property
    def image_size(self) -> int:
        return max(self.preprocessing.size)

    @property
    def dim(self) -> int:
        if not self._dim:
            self.load()
        return self._dim

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return self.preprocessing(image)

    def embed_images(self, batch: np.ndarray) -> np.ndarray:
        with self.lock:
            self.load()
            return self._forward(batch)

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        import torch

        batch = np.ascontiguousarray(batch, dtype=np.float32)
        step = CPU_CHUNK if self.device == "cpu" else max(len(batch), 1)
        parts: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(batch), step):
                x = torch.from_numpy(batch[start : start + step])
                if self.device == "cuda":
                    x = x.pin_memory().to(self.device, dtype=self._dtype, non_blocking=True)
                elif self.device != "cpu":
                    x = x.to(self.device, dtype=self._dtype)
                features = self._model.encode_image(x).float()
                features = torch.nn.functional.normalize(features, dim=-1)
                parts.append(features.cpu().numpy().astype(np.float32, copy=False))
        return np.concatenate(parts) if len(parts) != 1 else parts[0]

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        with self.lock:
            self.load()
            parts: list[np.ndarray] = []
            with torch.inference_mode():
                for start in range(0, len(texts), TEXT_BATCH):
                    tokens = self._tokenizer(texts[start : start + TEXT_BATCH]).to(self.device)
                    features = self._encode_text(tokens).float()
                    features = torch.nn.functional.normalize(features, dim=-1)
                    parts.append(features.cpu().numpy().astype(np.float32, copy=False))
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(parts)

    def _encode_text(self, tokens: Any) -> Any:
        """`encode_text` over the tokens up to the batch's last end-of-text token only.

        The tokenizer pads every text to the context length (77); with CLIP's causal
        mask and end-of-text (argmax) pooling, positions after that token cannot reach
        the pooled one, so the vectors are the same and a short query costs ~3x less
        (bench/search_latency.py). Other text towers run whole."""
        import torch

        m = self._model
        mask = getattr(m, "attn_mask", None)
        if (
            getattr(m, "text_pool_type", None) != "argmax"
            or not isinstance(mask, torch.Tensor)
            or not hasattr(m, "token_embedding")
            or not hasattr(m, "positional_embedding")
        ):
            return m.encode_text(tokens)
        length = int(tokens.argmax(dim=-1).max()) + 1
        if length >= tokens.shape[1]:
            return m.encode_text(tokens)
        tokens = tokens[:, :length]
        cast = m.transformer.get_cast_dtype()
        x = m.token_embedding(tokens).to(cast) + m.positional_embedding[:length].to(cast)
        x = m.transformer(x, attn_mask=mask[:length, :length])
        x = m.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
        projection = m.text_projection
        if projection is None:
            return x
        return projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection


def _is_unpickling_refusal(exc: BaseException) -> bool:
    import pickle

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, pickle.UnpicklingError) or "weights_only" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
