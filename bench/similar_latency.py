"""`similar` at scale: 1,000,000 stored 512-d vectors, HNSW against exact search.

1. A library of N items (default 1,000,000; item rows inserted with SQL) whose
   vectors are stored through `engine.vectors.store_vectors` in batches. The data is
   clustered like image embeddings, not uniform noise: 2,000 gaussian clusters, each
   point its cluster's centre plus a 16-d within-cluster variation and a little
   isotropic noise, L2-normalised (a point's nearest neighbour scores ~0.8, its 10th
   ~0.65, a random pair ~0.0).
2. The model's `VectorIndex` is built from the catalog by `refresh` (HNSW above
   `HNSW_THRESHOLD`; the build saves it under `<library>/index/`): `build_s`.
3. A fresh `VectorIndex` loads it back from disk: `load_s`.
4. Queries (default 200): stored vectors plus small noise (cosine ~0.995 to their
   original), searched one at a time for 10 neighbours as `similar` does (candidates
   re-scored exactly from the catalog): `p50_ms`, `p95_ms` right after the reopen
   (the catalog rows re-scored are not in any cache yet), `p50_warm_ms` for the same
   queries again. Also timed: a whole `similar()` call (limit 20), a no-op refresh,
   a refresh after one new vector, one that counts rows to find deletions.
5. Reference in the same run: the same queries through an exact `VectorIndex` (the
   float16 matrix scanned with numpy): `exact_p50_ms`, and the exact top 10 that
   `recall_at_10` is measured against.

`--sweep` instead measures exact and HNSW query p50 at growing sizes (1,000 to
100,000 vectors), the figures `HNSW_THRESHOLD` was chosen from.

Targets: p50_ms ≤ 20, recall_at_10 ≥ 0.95 (2-core machine).

    .venv/bin/python bench/similar_latency.py                  # the full run (~15 min)
    .venv/bin/python bench/similar_latency.py --count 100000   # a quick one
    .venv/bin/python bench/similar_latency.py --sweep
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from _common import cpu_count, emit, fill_items, peak_rss_mb, percentile

from engine import vectors as ev
from engine.library import Library
from engine.store.db import next_seq

MODEL = "bench:clustered-512"
CHUNK = 50_000


class Clustered:
    """Deterministic clustered unit vectors, generated chunk by chunk."""

    def __init__(self, dim: int, clusters: int, seed: int = 0, intrinsic: int = 16) -> None:
        rng = np.random.default_rng(seed)
        self.dim, self.seed = dim, seed
        centres = rng.standard_normal((clusters, dim)).astype(np.float32)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        q, _ = np.linalg.qr(rng.standard_normal((dim, intrinsic)))
        self.basis = q.T.astype(np.float32)  # intrinsic x dim, orthonormal rows

    def chunk(self, index: int, n: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, index))
        labels = rng.integers(0, len(self.centres), n)
        z = rng.standard_normal((n, self.basis.shape[0])).astype(np.float32)
        z /= np.sqrt(self.basis.shape[0])
        noise = rng.standard_normal((n, self.dim)).astype(np.float32) / np.sqrt(self.dim)
        x = self.centres[labels] + 0.75 * (z @ self.basis) + 0.3 * noise
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x


def fill(lib: Library, data: Clustered, first: int, count: int) -> float:
    """Items first..first+count-1 with their vectors; returns seconds spent."""
    started = time.perf_counter()
    done = 0
    while done < count:
        n = min(CHUNK, count - done)
        start_id = first + done
        x = data.chunk(start_id, n)
        with lib.catalog.write() as conn:
            seq = next_seq(conn)
            fill_items(conn, start_id, n, seq, time.time())
            ev.store_vectors(conn, [(start_id + i, MODEL, x[i], "d") for i in range(n)], seq)
        done += n
        if count >= 200_000 and (start_id // CHUNK) % 4 == 3:
            print(f"stored {first + done - 1:,} vectors", flush=True)
    return time.perf_counter() - started


def make_queries(lib: Library, count: int, n: int, seed: int = 1) -> tuple[list[int], np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = sorted(int(i) for i in rng.choice(np.arange(1, count + 1), size=n, replace=False))
    marks = ",".join("?" * len(ids))
    rows = {
        r[0]: ev.decode_vector(r[1], r[2])
        for r in lib.catalog.read(
            f"SELECT item_id, vector, dim FROM vectors WHERE model = ? AND item_id IN ({marks})",
            (MODEL, *ids),
        )
    }
    base = np.stack([rows[i] for i in ids])
    q = base + 0.1 * rng.standard_normal(base.shape).astype(np.float32) / np.sqrt(base.shape[1])
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return ids, q


def timed_searches(
    index: ev.VectorIndex, queries: np.ndarray, conn: Any, k: int = 10
) -> tuple[list[float], list[list[int]]]:
    times, found = [], []
    for q in queries:
        t = time.perf_counter()
        hits = index.search(q, k, conn=conn)
        times.append((time.perf_counter() - t) * 1000)
        found.append([h[0] for h in hits])
    return times, found


def recall(found: list[list[int]], truth: list[list[int]], k: int = 10) -> float:
    return float(
        np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth, strict=True)])
    )


def put_one(lib: Library, item_id: int, vector: np.ndarray) -> None:
    with lib.catalog.write() as conn:
        ev.store_vectors(conn, [(item_id, MODEL, vector, "d")], next_seq(conn))


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def full_run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    lib = Library(root / "lib")
    conn = lib.catalog.conn
    built_file = root / "built.json"
    have = int(lib.catalog.read("SELECT count(*) FROM items")[0][0])
    reused = have == args.count + 1 and built_file.exists()  # +1: the refresh probe
    if reused:  # --keep: the library and its saved index from an earlier run
        built = json.loads(built_file.read_text())
        print(f"reusing {have:,} stored vectors and the saved index", flush=True)
    else:
        if have:
            raise SystemExit(f"{root} holds another run's library: use an empty folder")
        store_s = fill(lib, Clustered(args.dim, args.clusters), 1, args.count)
        print(f"stored {args.count:,} vectors in {store_s:.1f} s", flush=True)
    ids, queries = make_queries(lib, args.count, args.queries)
    gc.collect()
    rss_before = rss_mb()

    if not reused:
        index = ev.VectorIndex(MODEL, lib.root / "index")
        t, cpu = time.perf_counter(), cpu_s()
        index.refresh(conn)
        build_s = time.perf_counter() - t
        built = {
            "build_cpu_s": cpu_s() - cpu,
            "store_s": store_s,
            "build_s": build_s,
            "graph_build_s": index.last_build_s or 0.0,
            "mode": index.mode,
            "rss_after_build_mb": rss_mb(),
        }
        print(f"built a {index.mode} index of {len(index):,} in {build_s:.1f} s", flush=True)
        del index
        gc.collect()
    mode = built["mode"]

    index = ev.VectorIndex(MODEL, lib.root / "index")
    t = time.perf_counter()
    index.refresh(conn)
    load_s = time.perf_counter() - t
    assert index.last_load_s is not None or mode == "exact", "the saved index did not load"
    if args.ef:
        index.expansion_search = args.ef
    print(f"loaded it back in {load_s:.2f} s ({index.mode}, {len(index):,})", flush=True)

    timed_searches(index, queries[:10], conn)  # warm-up
    times, found = timed_searches(index, queries, conn)
    warm, _ = timed_searches(index, queries, conn)  # the same again: caches warm
    rss_index = rss_mb()
    sweep: dict[int, tuple[list[float], list[list[int]]]] = {}
    if mode == "hnsw":
        for ef in args.ef_sweep:
            index.expansion_search = ef
            sweep[ef] = timed_searches(index, queries, conn)
        index.expansion_search = args.ef or ev.HNSW_EXPANSION_SEARCH

    # similar() end to end, and refresh costs
    indexes = ev.VectorIndexes(lib.root)
    indexes._indexes[MODEL] = index
    similar_ms = []
    for item_id in ids[:50]:
        t = time.perf_counter()
        ev.similar(conn, indexes, item_id, limit=20)
        similar_ms.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    index.refresh(conn)
    refresh_noop_ms = (time.perf_counter() - t) * 1000
    if not reused:
        fill(lib, Clustered(args.dim, args.clusters, seed=7), args.count + 1, 1)
    else:
        put_one(lib, args.count + 1, queries[0])
    t = time.perf_counter()
    index.refresh(conn)
    refresh_one_ms = (time.perf_counter() - t) * 1000
    put_one(lib, args.count + 1, queries[1])
    t = time.perf_counter()
    index.refresh(conn, deletions=True)
    refresh_counted_ms = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    ev.model_counts(conn, [MODEL])
    count_ms = (time.perf_counter() - t) * 1000
    file_mb = sum(p.stat().st_size for p in (lib.root / "index").glob("*.usearch")) / 2**20
    del indexes, index
    gc.collect()
    if not reused:
        built_file.write_text(json.dumps(built))

    exact = ev.VectorIndex(MODEL, None, threshold=1 << 62)
    t = time.perf_counter()
    exact.refresh(conn)
    exact_load_s = time.perf_counter() - t
    exact_times, truth = timed_searches(exact, queries[: args.exact_queries], None)
    # the rest of the ground truth, not timed
    for q in queries[args.exact_queries :]:
        truth.append([h[0] for h in exact.search(q, 10)])
    lib.close()

    out: dict[str, Any] = {
        "benchmark": "similar_latency",
        "cpus": cpu_count(),
        "count": args.count,
        "dim": args.dim,
        "clusters": args.clusters,
        "queries": len(queries),
        "mode": mode,
        "p50_ms": round(percentile(times, 50), 3),
        "p95_ms": round(percentile(times, 95), 3),
        "p50_warm_ms": round(percentile(warm, 50), 3),
        "p95_warm_ms": round(percentile(warm, 95), 3),
        "recall_at_10": round(recall(found, truth), 4),
        "build_s": round(built["build_s"], 1),
        "graph_build_s": round(built["graph_build_s"], 1),
        # CPU seconds of the build, all threads: on 2 idle cores it takes about half
        # that long (on a shared machine, build_s is longer).
        "build_cpu_s": round(built["build_cpu_s"], 1),
        "build_reused": reused,
        "load_s": round(load_s, 2),
        "store_s": round(built["store_s"], 1),
        "rss_mb": round(rss_index - rss_before, 1),
        "rss_total_mb": round(rss_index, 1),
        "rss_after_build_mb": round(built["rss_after_build_mb"], 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "index_file_mb": round(file_mb, 1),
        "similar_p50_ms": round(percentile(similar_ms, 50), 3),
        "refresh_noop_ms": round(refresh_noop_ms, 3),
        "refresh_one_new_ms": round(refresh_one_ms, 2),
        "refresh_counted_ms": round(refresh_counted_ms, 2),
        "count_ms": round(count_ms, 2),
        "exact_p50_ms": round(percentile(exact_times, 50), 2),
        "exact_p95_ms": round(percentile(exact_times, 95), 2),
        "exact_queries": len(exact_times),
        "exact_load_s": round(exact_load_s, 1),
        "hnsw": {
            "dtype": ev.HNSW_DTYPE,
            "connectivity": ev.HNSW_CONNECTIVITY,
            "expansion_add": ev.HNSW_EXPANSION_ADD,
            "expansion_search": args.ef or ev.HNSW_EXPANSION_SEARCH,
            "rerank_factor": ev.RERANK_FACTOR,
        },
        "expansion_search_sweep": {
            str(ef): {
                "p50_ms": round(percentile(t_, 50), 3),
                "p95_ms": round(percentile(t_, 95), 3),
                "recall_at_10": round(recall(f_, truth), 4),
            }
            for ef, (t_, f_) in sweep.items()
        },
        "target_p50_ms": 20,
        "target_recall_at_10": 0.95,
    }
    return out


def sweep_run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Exact vs HNSW query p50 as the library grows (both through VectorIndex)."""
    lib = Library(root / "lib")
    data = Clustered(args.dim, args.clusters)
    conn = lib.catalog.conn
    exact = ev.VectorIndex(MODEL, None, threshold=1 << 62)
    hnsw = ev.VectorIndex(MODEL, None, threshold=0)
    stored = 0
    rows = []
    for size in args.sizes:
        fill(lib, data, stored + 1, size - stored)
        stored = size
        t = time.perf_counter()
        hnsw.refresh(conn)
        grow_s = time.perf_counter() - t
        exact.refresh(conn)
        _, queries = make_queries(lib, size, min(args.queries, size))
        truth = [[h[0] for h in exact.search(q, 10)] for q in queries]
        timed_searches(exact, queries[:10], conn)
        ex_t, _ = timed_searches(exact, queries, conn)  # as `similar` asks: re-checked
        timed_searches(hnsw, queries[:10], conn)
        hn_t, found = timed_searches(hnsw, queries, conn)
        row = {
            "size": size,
            "exact_p50_ms": round(percentile(ex_t, 50), 3),
            "hnsw_p50_ms": round(percentile(hn_t, 50), 3),
            "hnsw_recall_at_10": round(recall(found, truth), 4),
            "hnsw_grow_s": round(grow_s, 1),
        }
        print(row, flush=True)
        rows.append(row)
    lib.close()
    return {
        "benchmark": "similar_latency_sweep",
        "cpus": cpu_count(),
        "dim": args.dim,
        "rows": rows,
        "threshold": ev.HNSW_THRESHOLD,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="stored vectors")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--exact-queries", type=int, default=200, help="how many of them time exact search"
    )
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument(
        "--ef-sweep",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[64, 128, 512],
        help="other expansion_search values to time on the built index",
    )
    parser.add_argument("--sweep", action="store_true", help="exact vs HNSW by size")
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[1000, 2000, 5000, 10000, 20000, 50000, 100000],
    )
    parser.add_argument("--ef", type=int, default=0, help="expansion_search (0: the default)")
    parser.add_argument("--rerank", type=int, default=0, help="RERANK_FACTOR (0: the default)")
    parser.add_argument(
        "--keep",
        type=Path,
        help="work in this folder and keep it; a later run with the same --count reuses "
        "its library and saved index (build figures from the first run)",
    )
    args = parser.parse_args()
    args.exact_queries = min(args.exact_queries, args.queries)
    if args.rerank:
        ev.RERANK_FACTOR = args.rerank
    run = sweep_run if args.sweep else full_run
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = run(args, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="shoebox-similar-") as tmp:
            result = run(args, Path(tmp))
    emit(result)


if __name__ == "__main__":
    main()
