"""A library of synthetic embeddings for the learning tests: items in clusters, the
label's items are cluster 0. No files, no models: vectors are written straight into
the catalog under a made-up model key, the way the embed stage stores them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.library import Library
from engine.pipeline.registry import StageRegistry
from engine.store.db import next_seq
from engine.vectors import store_vectors
from tests.engine.jobstages import add_items, fast_settings

MODEL = "synthetic:clusters"
DIM = 32


def clustered(n: int, clusters: int = 4, seed: int = 0, spread: float = 0.6) -> np.ndarray:
    """(n, DIM) unit vectors; item i belongs to cluster i % clusters."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[np.arange(n) % clusters] + spread * rng.normal(size=(n, DIM)) / np.sqrt(DIM) * 3
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def store(lib: Library, ids: list[int], x: np.ndarray) -> None:
    with lib.catalog.write() as conn:
        seq = next_seq(conn)
        store_vectors(conn, [(i, MODEL, v, f"d{i}") for i, v in zip(ids, x, strict=True)], seq)


def open_learning(path: Path) -> Library:
    """The library at `path` with a registry of only the learn and rescore tasks."""
    from engine.learning.training import LearnTask, RescoreTask

    lib = Library(path)
    settings = fast_settings(lib)
    settings.models.embed = MODEL
    settings.models.text = ""
    settings.labels.debounce_s = 0.0
    settings.labels.weak_negatives = 200
    learn = LearnTask(settings)
    lib._registry = StageRegistry([], [learn, RescoreTask(settings, learn)])
    return lib


def learning_library(path: Path, n: int = 400, clusters: int = 4, seed: int = 0) -> Library:
    """A learning library with `n` items (ids 1..n) embedded in `clusters` clusters;
    the label to learn is cluster 0."""
    lib = open_learning(path)
    ids = add_items(lib, n)
    store(lib, ids, clustered(n, clusters, seed))
    return lib


def in_label(item_id: int, clusters: int = 4) -> bool:
    return (item_id - 1) % clusters == 0


def members(n: int, clusters: int = 4) -> list[int]:
    return [i for i in range(1, n + 1) if in_label(i, clusters)]


if __name__ == "__main__":  # a worker host in its own process, for the kill tests
    import sys

    from tests.engine.jobstages import run_until_idle

    with open_learning(Path(sys.argv[1])) as library:
        run_until_idle(library, timeout=120)


class FakeEmbed:
    """An `embed` stage that 'embeds' item i as row i of `clustered(…, seed)` under the
    configured model's key: switching models gives every item a new vector."""

    lane = "import"
    kinds = frozenset({"photo", "document"})
    requires: tuple[str, ...] = ()
    batch_size = 1
    reads_original = False
    timeout_s: float | None = None
    name = "embed"

    def __init__(self, model: str, n: int, seed: int) -> None:
        self.version = model
        self.model = model
        self.vectors = clustered(n, seed=seed)

    def prepare(self, item: Any, ctx: Any) -> Any:
        return item

    def run(self, item: Any, ctx: Any) -> Any:
        from engine.pipeline.types import StageOutput

        return StageOutput(data={"row": (item.id - 1) % len(self.vectors)})

    def store(self, conn: Any, item: Any, output: Any, seq: int) -> None:
        from engine.pipeline.types import upsert_result

        vector = self.vectors[output.data["row"]]
        store_vectors(conn, [(item.id, self.model, vector, self.model)], seq)
        upsert_result(conn, item.id, self.name, self.version, output.data)


def staged_registry(lib: Library, model: str, n: int, seed: int) -> StageRegistry:
    """embed (fake) → labels (the real scoring stage) and the learn/rescore tasks."""
    from engine.learning.scoring import LabelsStage
    from engine.learning.training import LearnTask, RescoreTask

    settings = lib.settings
    settings.models.embed = model
    learn = LearnTask(settings)
    return StageRegistry(
        [FakeEmbed(model, n, seed), LabelsStage(settings, learn)],
        [learn, RescoreTask(settings, learn)],
    )
