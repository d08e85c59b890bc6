"""The `learn` task end to end at 100,000 items: what a user's answer costs.

bench/fewshot.py times the classifier alone (models/classify); this times the job the
engine runs after a decision — engine/learning/training.py's LearnTask — on a real
catalog: read the label's decisions, the library's features (cached between
trainings: only the first reads 100,000 vectors from SQLite), the weak-negative
sample, train, the promotion gate (the active version re-evaluated on the same
folds), write the version file atomically, score every item, choose the threshold
and the review queue; then `store_task`'s transaction (automatic labels, suggestions).

Library: N items (default 100,000), each with a 512-d float16 image vector (CLIP's
width) in 20 clusters; the label is cluster 0 (5% of the items). One label with 5
examples is trained once (the cold read), then the user answers 20 suggestions and it
is trained again (the measured retrain), three times.

Reference (same run): one float32 matmul of the whole library's vectors with a weight
vector, the least any rescoring does; `ratio_to_matmul` says how much more the job
costs. Peak RSS is the process's.

    taskset -c 0,1 .venv/bin/python bench/learn_task.py [--items N]

Last line: one JSON object with `retrain_rescore_s` (median of the measured retrains,
run_task + store_task), `cold_first_training_s`, `store_s`, `peak_rss_mb` (the whole
process, fill included) and `learning_peak_rss_mb` / `learning_rss_growth_mb` (the
peak while the trainings ran — the kernel's mark reset after the fill — and how far
above the resident size before them: the learning job's own memory).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import emit, peak_rss_mb

MODEL = "bench:clusters512"


def fill(lib: Any, n: int, dim: int = 512, clusters: int = 20) -> np.ndarray:
    """n items with clustered unit vectors; returns each item's cluster (ids 1..n)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    cluster = rng.integers(0, clusters, size=n)
    now = time.time()
    with lib.catalog.write() as conn:
        conn.executemany(
            "INSERT INTO items (id, hash, kind, format, size, added_at, seq) "
            "VALUES (?, ?, 'photo', 'jpeg', 1, ?, 1)",
            ((i, f"h{i:09d}", now) for i in range(1, n + 1)),
        )
        for start in range(0, n, 20_000):
            ids = np.arange(start + 1, min(n, start + 20_000) + 1)
            x = centres[cluster[ids - 1]] + 0.9 * rng.normal(size=(len(ids), dim)) / np.sqrt(dim)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            blobs = x.astype(np.float16)
            conn.executemany(
                "INSERT INTO vectors (item_id, model, dim, vector, digest, seq) "
                "VALUES (?, ?, ?, ?, '', 1)",
                ((int(i), MODEL, dim, blobs[k].tobytes()) for k, i in enumerate(ids)),
            )
    return cluster


def _status_mb(key: str) -> float:
    """A /proc/self/status figure (VmRSS: now, VmHWM: peak) in MB (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ≥ 4.0: clear_refs 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from engine.learning import labels as store
    from engine.learning.training import LearnTask, RescoreTask
    from engine.library import Library
    from engine.pipeline.registry import StageRegistry
    from engine.pipeline.types import StageContext

    root = Path(tempfile.mkdtemp(prefix="shoebox-learn-bench-"))
    lib = Library(root / "lib")
    lib.settings.models.embed = MODEL
    lib.settings.models.text = ""
    learn = LearnTask(lib.settings)
    lib._registry = StageRegistry([], [learn, RescoreTask(lib.settings, learn)])
    t = time.perf_counter()
    cluster = fill(lib, args.items)
    fill_s = time.perf_counter() - t
    members = [int(i) + 1 for i in np.flatnonzero(cluster == 0)]
    label_id = lib.create_label("zero", members[:5])
    ctx = StageContext(lib.root)
    import gc

    gc.collect()
    baseline_mb = _status_mb("VmRSS")
    reset = _reset_peak()  # from here VmHWM is the learning job's peak

    def train() -> tuple[float, float, Any]:
        t0 = time.perf_counter()
        out = learn.run_task(str(label_id), ctx)
        t1 = time.perf_counter()
        with lib.catalog.write() as conn:
            learn.store_task(conn, str(label_id), out, 0)
        return t1 - t0, time.perf_counter() - t1, out

    run_s, store_s, out = train()
    cold = run_s + store_s
    retrains: list[float] = []
    stores: list[float] = []
    versions: list[dict[str, Any]] = []
    for _ in range(args.rounds):
        queue = lib.review("zero", limit=20)
        yes = [q["id"] for q in queue if cluster[q["id"] - 1] == 0]
        no = [q["id"] for q in queue if cluster[q["id"] - 1] != 0]
        with lib.catalog.write() as conn:
            if yes:
                store.decide(conn, label_id, yes, store.YES, "review")
            if no:
                store.decide(conn, label_id, no, store.NO, "review")
        run_s, store_s, out = train()
        retrains.append(run_s + store_s)
        stores.append(store_s)
        versions.append(
            {"version": out.version, "promoted": out.promoted, "auto": len(out.auto_ids)}
        )

    learn_peak_mb = _status_mb("VmHWM") if reset else float("nan")
    x = np.random.default_rng(1).normal(size=(args.items, 512)).astype(np.float32)
    w = np.ones(512, np.float32)
    t = time.perf_counter()
    for _ in range(5):
        x @ w
    matmul_s = (time.perf_counter() - t) / 5
    median = statistics.median(retrains)
    lib.close()
    emit(
        {
            "items": args.items,
            "fill_s": round(fill_s, 2),
            "cold_first_training_s": round(cold, 3),
            "retrain_rescore_s": round(median, 3),
            "retrains_s": [round(r, 3) for r in retrains],
            "store_s": round(statistics.median(stores), 3),
            "matmul_reference_s": round(matmul_s, 4),
            "ratio_to_matmul": round(median / matmul_s, 1),
            "versions": versions,
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "rss_before_learning_mb": round(baseline_mb, 1),
            "learning_peak_rss_mb": round(learn_peak_mb, 1),
            "learning_rss_growth_mb": round(learn_peak_mb - baseline_mb, 1),
        }
    )


if __name__ == "__main__":
    main()
