"""Import with the model stages on a CUDA GPU vs the same import without them.

≥ 1,000 12-MP JPEGs, all cores: metadata + thumbnail + embed (open_clip ViT-B-32) +
detect (RT-DETRv2 r18) vs metadata + thumbnail alone, same run, same files, warm
page cache. Both models are built from their configs with random weights (no
download possible here; the compute is the same) and brought in through
`models.weights.import_weights`, the path users take. Decoding dominates on a GPU,
so the models must cost at most a quarter: `ratio` = plain time / ML time ≥ 0.8.
Also: images/s of each run and the GPU's utilisation (nvidia-smi, sampled 4×/s)
during the ML run. Without CUDA it prints `{"skipped": "no CUDA"}`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import OUT, cpu_count, emit, warm_page_cache

from tests.corpus import write_large_jpegs

EMBED_SPEC = "open_clip:ViT-B-32:bench-random"
DETECT_SPEC = "transformers:bench-rtdetr-v2-r18"


def make_models(models_dir: Path) -> None:
    """Random-weight ViT-B-32 (open_clip folder) and RT-DETRv2-r18 (save_pretrained)."""
    import json

    import open_clip
    import torch
    from safetensors.torch import save_file
    from transformers import (
        RTDetrImageProcessor,
        RTDetrResNetConfig,
        RTDetrV2Config,
        RTDetrV2ForObjectDetection,
    )

    from models import weights

    os.environ["SHOEBOX_MODELS_DIR"] = str(models_dir)
    clip_dir = models_dir / "src-clip"
    clip_dir.mkdir(parents=True, exist_ok=True)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(clip_dir / "open_clip_model.safetensors"))  # fmt: skip
    config = {
        "model_cfg": open_clip.get_model_config("ViT-B-32"),
        "preprocess_cfg": {
            "mean": list(open_clip.OPENAI_DATASET_MEAN),
            "std": list(open_clip.OPENAI_DATASET_STD),
        },
    }
    (clip_dir / "open_clip_config.json").write_text(json.dumps(config))
    weights.import_weights(clip_dir, EMBED_SPEC)

    det_dir = models_dir / "src-detr"
    torch.manual_seed(0)
    # RT-DETRv2-S (r18vd): basic ResNet-18 blocks, 3 decoder layers, 80 classes, 20.2M
    # parameters, the size of the default `PekingU/rtdetr_v2_r18vd`.
    backbone = RTDetrResNetConfig(
        layer_type="basic", depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512],
        embedding_size=64, out_indices=[2, 3, 4],
    )  # fmt: skip
    config = RTDetrV2Config(
        backbone_config=backbone, encoder_in_channels=[128, 256, 512], hidden_expansion=0.5,
        decoder_layers=3, num_labels=80,
    )  # fmt: skip
    detr = RTDetrV2ForObjectDetection(config)
    detr.save_pretrained(det_dir)
    RTDetrImageProcessor(size={"height": 640, "width": 640}).save_pretrained(det_dir)
    weights.import_weights(det_dir, DETECT_SPEC)


class GpuSampler:
    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                    capture_output=True, text=True, timeout=2, check=True,
                )  # fmt: skip
                self.samples.append(float(out.stdout.split()[0]))
            except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                return

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=3)


def run_import(folder: Path, library_dir: Path, with_models: bool) -> tuple[float, dict[str, Any]]:
    from engine.jobs.host import WorkerHost
    from engine.library import Library

    lib = Library(library_dir)
    lib.settings.models.embed = EMBED_SPEC if with_models else ""
    lib.settings.models.detect = DETECT_SPEC if with_models else ""
    lib.settings.device = "cuda"
    lib.settings.workers.pool = cpu_count()
    lib.settings.workers.import_ = cpu_count()
    lib.save_settings()
    lib.apply_settings()
    host = WorkerHost(lib.root, lib.catalog, lib.registry, lib.settings)
    host.start()
    try:
        start = time.perf_counter()
        lib.import_paths([folder])
        host.wait_idle(timeout=3600)
        elapsed = time.perf_counter() - start
    finally:
        host.stop()
    counts = {
        f"{r[0]}:{r[1]}": int(r[2])
        for r in lib.catalog.read("SELECT stage, state, count(*) FROM jobs GROUP BY 1, 2")
    }
    lib.close()
    return elapsed, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        emit({"benchmark": "import_gpu", "skipped": "no torch"})
        return
    if not torch.cuda.is_available():
        emit({"benchmark": "import_gpu", "skipped": "no CUDA"})
        return
    os.environ.pop("SHOEBOX_NO_MODELS", None)
    os.environ["SHOEBOX_OFFLINE"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        make_models(Path(tmp) / "models")
        files = write_large_jpegs(OUT / "jpeg12mp", args.count)[: args.count]
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for path in files:
            (folder / path.name).symlink_to(path.resolve())
        warm_page_cache(files)
        plain_s, plain_counts = run_import(folder, Path(tmp) / "plain", with_models=False)
        with GpuSampler() as gpu:
            ml_s, ml_counts = run_import(folder, Path(tmp) / "ml", with_models=True)
        shutil.rmtree(Path(tmp) / "plain", ignore_errors=True)
    util = sorted(gpu.samples)
    emit(
        {
            "benchmark": "import_gpu",
            "device": torch.cuda.get_device_name(0),
            "files": len(files),
            "cpus": cpu_count(),
            "plain_s": round(plain_s, 2),
            "ml_s": round(ml_s, 2),
            "plain_img_s": round(len(files) / plain_s, 1),
            "ml_img_s": round(len(files) / ml_s, 1),
            "gpu_util_mean": round(sum(util) / len(util), 1) if util else None,
            "gpu_util_p95": util[int(0.95 * (len(util) - 1))] if util else None,
            "plain_jobs": plain_counts,
            "ml_jobs": ml_counts,
            "ratio": round(plain_s / ml_s, 3),
        }
    )


if __name__ == "__main__":
    main()
