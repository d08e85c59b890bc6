"""Few-shot labels: AP by number of examples against baselines, reviews until the
automatic labels keep their promise, calibration of the shown precision, and the cost
of a retrain + rescore of 100,000 items on 2 threads.

Data: `bench/fewshot_data.py` (procedural photos through the real MobileNetV2,
document texts through the real MiniLM; read its docstring). No CLIP weights are on
this machine, so no image label has a text prior.

* curve: for every label and seed, k random positives (k in COUNTS) plus a uniform
  sample of WEAK undecided items as weak negatives; AP over every other item of the
  pool, for the method and, on the same draw, nearest centroid, plain logistic
  regression (class-balanced, L2 to 0, λ by the same CV) and Tip-Adapter (α=1, β=5.5).
* reviews_to_target: from 5 random examples, the user answers batches of BATCH
  suggestions from `select_review` (truth as answers; a candidate set of the top 2,000
  by probability plus 500 uniform), retraining after each batch. Done when the
  automatic labels (undecided items at or above the chosen threshold) are ≥ 95 %
  precise and, with the user's own positives, cover ≥ 80 % of the label's items.
  Counted in decisions (answers); a run that does not get there by MAX_DECISIONS
  counts as MAX_DECISIONS (and is listed).
* calibration_error_pp: |estimated − realised precision| of the automatic labels, in
  points, at the end of each review run that has a threshold (and over every step
  with one: `calibration_error_pp_all_steps`).
* retrain_rescore_100k_s: a child process with OMP/OPENBLAS/MKL threads = 2: train on
  5 examples + 30 reviews + 1,000 weak negatives (512-d, clustered synthetic), then
  score 100,000 × 512 float16 vectors; best of 3, and the child's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import REPO, child_env, emit

COUNTS = (1, 2, 4, 5, 8, 16)
WEAK = 600
BATCH = 5
MAX_DECISIONS = 60
TARGET = 0.95
RECALL = 0.80
MARK_TOP = True  # --no-top: every unlabelled row a weak negative (the engine before)


def top_mark(scores: Any, sample: Any, head: Any) -> Any:
    """As engine/learning/training.py: which rows of `sample` (indices into `scores`, the
    active version's scores of the undecided items) are among the top k of all of them,
    k = the hidden positives the active version expects (its prevalence × undecided).
    None with no active version, or with MARK_TOP off."""
    import numpy as np

    if not MARK_TOP or head is None:
        return None
    n = len(scores)
    k = min(n // 2, round(float(head.prevalence) * n))
    top = np.zeros(n, dtype=bool)
    if k and n > k:
        top[np.argpartition(-scores, k)[:k]] = True
    return top[sample]


def _speed_child() -> None:
    import resource

    import numpy as np

    from models.classify import LabelData, choose_threshold, train_label

    rng = np.random.default_rng(0)
    d = 512
    centres = rng.normal(size=(50, d)).astype(np.float32)

    def draw(n: int, c: int | None = None) -> np.ndarray:
        k = rng.integers(0, 50, n) if c is None else np.full(n, c)
        x = centres[k] + 1.5 * rng.normal(size=(n, d)).astype(np.float32)
        out: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out

    lib = np.concatenate([draw(10_000).astype(np.float16) for _ in range(10)])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pos = draw(20, 3)
    neg = draw(15)
    unl = draw(1000)
    data = LabelData(
        pos,
        neg,
        unl,
        np.arange(20, dtype=np.int64),
        np.arange(100, 115, dtype=np.int64),
        np.arange(1000, 2000, dtype=np.int64),
    )
    times = []
    train_times = []
    for _ in range(3):
        t0 = time.perf_counter()
        result = train_label(data)
        t1 = time.perf_counter()
        proba = result.head.proba(lib)
        choose_threshold(proba, TARGET)
        times.append(time.perf_counter() - t0)
        train_times.append(t1 - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "s": min(times),
                "train_s": min(train_times),
                "rss_mb": rss,
                "rss_before_mb": rss_before,
                "lib_mb": lib.nbytes / 2**20,
            }
        )
    )


def speed() -> dict[str, float]:
    env = child_env()
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = "2"
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--speed-child"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def curve(domains: list[Any], labels: list[tuple[Any, str]], seeds: int) -> dict[str, Any]:
    import numpy as np

    from models.classify import LabelData, TrainConfig, average_precision, train_label
    from models.classify.baselines import nearest_centroid, plain_logistic, tip_adapter

    methods = ("method", "nearest_centroid", "plain_logistic", "tip_adapter")
    aps: dict[str, dict[int, list[float]]] = {m: {k: [] for k in COUNTS} for m in methods}
    for dom, label in labels:
        y = dom.labels[label]
        X, ids = dom.features, dom.ids
        for seed in range(seeds):
            for k in COUNTS:
                rng = np.random.default_rng(1000 * seed + k)
                pos = rng.choice(np.nonzero(y)[0], k, replace=False)
                rest = np.setdiff1d(np.arange(len(X)), pos)
                unl_pos = rng.choice(len(rest), WEAK, replace=False)
                unl = rest[unl_pos]
                # no active version yet: the engine's current scores are the centroid's
                current = X[rest] @ X[pos].mean(axis=0)
                data = LabelData(
                    X[pos],
                    X[:0],
                    X[unl],
                    ids[pos],
                    ids[:0],
                    ids[unl],
                    prior=dom.priors[label],
                    unlabelled_top=top_mark(current, unl_pos, None),
                )
                scores = {
                    "method": train_label(data, TrainConfig(seed=seed)).head.logits(X[rest]),
                    "nearest_centroid": nearest_centroid(data)(X[rest]),
                    "plain_logistic": plain_logistic(data)(X[rest]),
                    "tip_adapter": tip_adapter(data)(X[rest]),
                }
                for m, s in scores.items():
                    aps[m][k].append(average_precision(s, y[rest]))
    table = {
        m: {str(k): round(float(np.mean(v)), 4) for k, v in by.items()} for m, by in aps.items()
    }
    per_domain: dict[str, Any] = {}
    return {"curve": table, "curve_domains": per_domain}


def review_run(dom: Any, label: str, seed: int) -> dict[str, Any]:
    import numpy as np

    from models.classify import (
        Evidence,
        LabelData,
        choose_threshold,
        enough_evidence,
        select_review,
        train_label,
    )

    rng = np.random.default_rng(seed)
    y = dom.labels[label]
    X, ids = dom.features, dom.ids
    n = len(X)
    total_pos = int(y.sum())
    state = np.zeros(n, dtype=np.int8)  # 0 undecided, 1 positive, -1 rejected
    answered = np.zeros(n, dtype=bool)  # decided through the review queue
    examples = rng.choice(np.nonzero(y)[0], 5, replace=False)
    state[examples] = 1
    decisions = 0
    audited = [0, 0]
    steps: list[dict[str, float]] = []
    threshold: float | None = None
    done_at: int | None = None
    head = None
    while True:
        und = np.nonzero(state == 0)[0]
        unl_pos = rng.choice(len(und), min(WEAK, len(und)), replace=False)
        unl = und[unl_pos]
        P, N = np.nonzero(state == 1)[0], np.nonzero(state == -1)[0]
        # the engine's current scores: the active version's, else the examples' centroid
        current = head.logits(X[und]) if head is not None else X[und] @ X[P].mean(axis=0)
        data = LabelData(
            X[P],
            X[N],
            X[unl],
            ids[P],
            ids[N],
            ids[unl],
            prior=dom.priors[label],
            positive_from_review=answered[P],
            negative_from_review=answered[N],
            unlabelled_top=top_mark(current, unl_pos, head),
        )
        result = train_label(data)
        head = result.head
        proba = result.head.proba(X[und])
        ok, why = enough_evidence(data, result.metrics)
        choice = choose_threshold(
            proba,
            TARGET,
            evidence=Evidence(ok, why, audited[0], audited[1]),
        )
        threshold = choice.threshold
        if threshold is not None:
            auto = und[proba >= threshold]
            tp = int(y[auto].sum())
            realised = tp / max(len(auto), 1)
            recall = (tp + len(P)) / total_pos
            steps.append(
                {
                    "decisions": decisions,
                    "estimated": float(choice.estimated_precision or 0.0),
                    "realised": realised,
                    "recall": recall,
                }
            )
            if realised >= TARGET and recall >= RECALL and done_at is None:
                done_at = decisions
                break
        if decisions >= MAX_DECISIONS:
            break
        order = np.argsort(-proba)
        cand = np.unique(
            np.r_[order[:2000], rng.choice(len(und), min(500, len(und)), replace=False)]
        )
        sugg = select_review(X[und[cand]], proba[cand], threshold, X[P], decisions, BATCH, rng=rng)
        if not sugg:
            break
        for sg in sugg:
            item = und[cand[sg.index]]
            state[item] = 1 if y[item] else -1
            answered[item] = True
            if threshold is not None and sg.score >= threshold:
                audited[0 if y[item] else 1] += 1
        decisions += len(sugg)
    return {
        "label": f"{dom.name}:{label}",
        "seed": seed,
        "decisions": done_at if done_at is not None else MAX_DECISIONS,
        "reached": done_at is not None,
        "steps": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run: few labels, 1 seed")
    parser.add_argument(
        "--no-top", action="store_true", help="no unlabelled_top marks (every row a weak negative)"
    )
    parser.add_argument("--speed-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global MARK_TOP
    MARK_TOP = not args.no_top
    if args.speed_child:
        _speed_child()
        return
    import numpy as np

    from bench import fewshot_data

    t0 = time.perf_counter()
    domains = fewshot_data.load()
    labels = [(d, name) for d in domains for name in d.labels]
    if args.quick:
        labels = labels[::4]
    seeds = 1 if args.quick else 3
    out: dict[str, Any] = {"clip": "no weights", "labels": [f"{d.name}:{n}" for d, n in labels]}
    out.update(curve(domains, labels, seeds))
    print("curve", json.dumps(out["curve"]), file=sys.stderr, flush=True)
    runs = [review_run(d, n, s) for d, n in labels for s in range(1 if args.quick else 2)]
    counts = [r["decisions"] for r in runs]
    out["reviews_to_target"] = {
        "median": float(np.median(counts)),
        "mean": round(float(np.mean(counts)), 2),
        "worst": int(max(counts)),
        "worst_label": max(runs, key=lambda r: r["decisions"])["label"],
        "not_reached": [f"{r['label']}#{r['seed']}" for r in runs if not r["reached"]],
        "runs": len(runs),
    }
    finals = [r["steps"][-1] for r in runs if r["steps"]]
    all_steps = [s for r in runs for s in r["steps"]]
    out["calibration_error_pp"] = round(
        100 * float(np.mean([abs(s["estimated"] - s["realised"]) for s in finals])), 2
    )
    out["calibration_error_pp_all_steps"] = round(
        100 * float(np.mean([abs(s["estimated"] - s["realised"]) for s in all_steps])), 2
    )
    out["calibration_signed_pp"] = round(
        100 * float(np.mean([s["estimated"] - s["realised"] for s in finals])), 2
    )
    sp = speed()
    out["retrain_rescore_100k_s"] = round(sp["s"], 3)
    out["retrain_s"] = round(sp["train_s"], 3)
    out["retrain_rescore_peak_rss_mb"] = round(sp["rss_mb"], 1)
    # the learning job's own share: peak minus the process with the library loaded
    out["retrain_rescore_rss_growth_mb"] = round(sp["rss_mb"] - sp["rss_before_mb"], 1)
    curve_tab = out["curve"]
    out["method_matches_all"] = all(
        curve_tab["method"][k] >= curve_tab[m][k] - 1e-9
        for m in curve_tab
        for k in curve_tab[m]
        if m != "method"
    )
    out["ap_at_5"] = {m: curve_tab[m]["5"] for m in curve_tab}
    out["elapsed_s"] = round(time.perf_counter() - t0, 1)
    emit(out)


if __name__ == "__main__":
    main()
