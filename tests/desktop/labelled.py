"""A small library with a trained label, for the label GUI tests (no model weights).

Items are written straight through SQL (with a name, a thumbnail and a preview), each
with a synthetic image vector near one of three directions — receipts, beaches,
forests — stored under the embedding model's key (`settings.models.embed`, which is
what engine/learning/features.py reads). "Receipts" is created from six receipts and
trained once by the real `learn` task in an in-process worker host: what the review
queue then holds is the engine's own choice.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from engine.config import save_settings
from engine.library import Library
from engine.pipeline.thumbnail import PREVIEW_PX, THUMB_PX, thumb_relpath
from engine.store.db import next_seq
from engine.vectors import store_vectors
from tests.engine.jobstages import run_until_idle

EMBED = "torchvision:mobilenet_v2"  # a valid spec; its weights are never loaded here
KINDS = ("receipt", "beach", "forest")
COLOURS = {"receipt": (236, 232, 220), "beach": (90, 170, 220), "forest": (40, 110, 60)}
COUNT = 36  # 12 of each
DIM = 16
LABEL = "Receipts"
EXAMPLES = 6  # the first six receipts


def kind_of(item_id: int) -> str:
    return KINDS[(item_id - 1) % len(KINDS)]


def name_of(item_id: int) -> str:
    return f"{kind_of(item_id)}-{(item_id - 1) // len(KINDS) + 1:02d}.jpg"


def receipts() -> list[int]:
    return [i for i in range(1, COUNT + 1) if kind_of(i) == "receipt"]


def examples() -> list[int]:
    return receipts()[:EXAMPLES]


def _image(root: Path, rel: str, px: int, colour: tuple[int, int, int]) -> tuple[int, int]:
    from PIL import Image

    w, h = px, px * 3 // 4
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), colour).save(root / rel, quality=80)
    return w, h


def add_items(lib: Library, folder: Path) -> None:
    """COUNT photos with names, thumbnails, previews and clustered vectors."""
    rng = np.random.default_rng(15)
    centres = {k: np.eye(DIM, dtype=np.float32)[n] for n, k in enumerate(KINDS)}
    with lib.catalog.write() as conn:
        seq = next_seq(conn)
        vectors = []
        for item_id in range(1, COUNT + 1):
            kind, content_hash = kind_of(item_id), f"{item_id:064x}"
            path = folder / name_of(item_id)
            conn.execute(
                """INSERT INTO items (id, hash, kind, format, size, added_at, seq, width, height)
                   VALUES (?, ?, 'photo', 'jpeg', 1, ?, ?, 800, 600)""",
                (item_id, content_hash, time.time() + item_id, seq),
            )
            conn.execute(
                """INSERT INTO paths (raw, display, item_id, size, mtime_ns, first_seen,
                                      last_seen) VALUES (?, ?, ?, 1, 0, 0, 0)""",
                (str(path).encode(), str(path), item_id),
            )
            for size, px in (("thumb", 64), ("preview", 160)):
                rel = thumb_relpath(content_hash, THUMB_PX if size == "thumb" else PREVIEW_PX)
                w, h = _image(lib.root, rel, px, COLOURS[kind])
                conn.execute(
                    "INSERT INTO thumbnails (item_id, size, path, width, height)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (item_id, size, rel, w, h),
                )
            v = centres[kind] + 0.35 * rng.standard_normal(DIM).astype(np.float32)
            vectors.append((item_id, EMBED, v / np.linalg.norm(v), "digest"))
        store_vectors(conn, vectors, seq)


def build(library_dir: Path, files: Path) -> Path:
    """The library, its label trained once; returns `library_dir`."""
    with Library(library_dir) as lib:
        lib.settings.models.embed = EMBED
        lib.settings.models.text = ""
        lib.settings.models.detect = ""
        save_settings(lib.root, lib.settings)
        add_items(lib, files)
        lib.create_label(LABEL, examples())
        run_until_idle(lib, timeout=60)
        assert lib.review(LABEL, 5), "the training left no suggestion to review"
    return library_dir
