"""Which undecided items to ask the user about next.

At the start (fewer than `START_DECISIONS` answers) most questions are nearest
neighbours of the examples, taken round-robin from examples chosen far apart
(farthest-point order), so every different-looking kind of example gets its
neighbours asked about; the rest are items near the would-be threshold. Later most
questions sit near the auto-apply threshold (where an answer moves it most), a few are
uniform audits of items above it (so its precision is measured, not only estimated)
and an occasional check from below it (drawn in proportion to the probability: the
likeliest misses). No two suggestions in one batch are near-duplicates (cosine above
`duplicate_cosine`), and each names the ≤3 nearest labelled positives as its "why".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.classify.calibration import candidate_threshold

START_DECISIONS = 10
START_NEIGHBOUR_SHARE = 0.6
AUDIT_SHARE = 0.2
BELOW_SHARE = 0.1
FALLBACK_TARGET = 0.95


@dataclass(frozen=True)
class Suggestion:
    index: int  # row in the candidate matrix
    score: float  # calibrated probability
    reason: str  # "neighbour" | "threshold" | "audit" | "below"
    why: tuple[int, ...]  # rows of labelled_positives: the ≤3 nearest


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: np.ndarray = x / np.maximum(norms, 1e-12)
    return out


def _farthest_first(points: np.ndarray) -> list[int]:
    """Order of `points` by farthest-point traversal, starting from the most central."""
    n = len(points)
    if n == 0:
        return []
    sims = points @ points.T
    first = int(np.argmax(sims.mean(axis=1)))
    order = [first]
    best = sims[first].copy()
    for _ in range(n - 1):
        best_masked = best.copy()
        best_masked[order] = np.inf
        nxt = int(np.argmin(best_masked))
        order.append(nxt)
        best = np.maximum(best, sims[nxt])
    return order


def _nearest_lists(X: np.ndarray, seeds: np.ndarray, m: int) -> list[list[int]]:
    """For each seed row, the first `m` rows of X by descending similarity (ties by row
    order: the head of a stable argsort), from one matmul and a partial sort. The
    round-robin below reads at most 2 × its 4·limit picks per seed (its own picks
    plus rows other seeds took first), so m = 8·limit + 1 is all it can reach."""
    sims = seeds @ X.T  # (s, n)
    n = sims.shape[1]
    out: list[list[int]] = []
    for row in sims:
        if m >= n:
            idx = np.argsort(-row, kind="stable")
        else:
            kth = np.partition(row, n - m)[n - m]  # the m-th largest value
            cand = np.flatnonzero(row >= kth)  # every row tied with it too
            idx = cand[np.argsort(-row[cand], kind="stable")][:m]
        out.append(idx.tolist())
    return out


def select_review(
    candidates: np.ndarray,
    proba: np.ndarray,
    threshold: float | None,
    labelled_positives: np.ndarray,
    n_decisions: int,
    limit: int,
    *,
    rng: np.random.Generator,
    duplicate_cosine: float = 0.95,
) -> list[Suggestion]:
    """Up to `limit` suggestions, most useful first (see the module's docstring). With
    `threshold` None the would-be threshold (where the estimated precision reaches 95 %,
    else probability 0.5) is where "threshold" questions are asked."""
    n = len(candidates)
    if n == 0 or limit <= 0:
        return []
    X = _unit(candidates)
    p = np.asarray(proba, dtype=np.float64).ravel()
    P = (
        _unit(labelled_positives)
        if len(labelled_positives)
        else np.zeros((0, X.shape[1]), np.float32)
    )
    t = threshold
    if t is None:
        t, _, _ = candidate_threshold(p, FALLBACK_TARGET)
    if t is None:
        t = 0.5
    t = min(max(t, 1e-6), 1 - 1e-6)

    def lg(v: np.ndarray) -> np.ndarray:
        v = np.clip(v, 1e-7, 1 - 1e-7)
        out: np.ndarray = np.log(v / (1 - v))
        return out

    closeness = np.abs(lg(p) - lg(np.array([t]))[0])
    threshold_order = list(np.argsort(closeness, kind="stable"))
    above = np.nonzero(p >= t)[0]
    below = np.nonzero(p < t)[0]
    audit_order = list(rng.permutation(above)) if above.size else []
    if below.size:
        wts = p[below] + 1e-9
        below_order = list(rng.choice(below, size=below.size, replace=False, p=wts / wts.sum()))
    else:
        below_order = []
    neighbour_order: list[int] = []
    if len(P):
        seeds = _farthest_first(P)
        ranked = _nearest_lists(X, P[seeds], min(n, 4 * limit + len(seeds) + 1))
        pos = [0] * len(ranked)
        seen: set[int] = set()
        while len(neighbour_order) < min(n, 4 * limit) and any(
            pos[i] < len(r) for i, r in enumerate(ranked)
        ):
            for i, r in enumerate(ranked):
                while pos[i] < len(r) and r[pos[i]] in seen:
                    pos[i] += 1
                if pos[i] < len(r):
                    seen.add(int(r[pos[i]]))
                    neighbour_order.append(int(r[pos[i]]))
                    pos[i] += 1

    # how many of each kind
    if n_decisions < START_DECISIONS:
        quota = {"neighbour": round(limit * START_NEIGHBOUR_SHARE)}
        quota["threshold"] = limit - quota["neighbour"]
        quota.update(audit=0, below=0)
        pattern = ["neighbour", "threshold"]
    else:
        n_audit = round(limit * AUDIT_SHARE) if above.size else 0
        n_below = max(1, round(limit * BELOW_SHARE)) if limit >= 4 and below.size else 0
        quota = {
            "neighbour": 0,
            "audit": n_audit,
            "below": n_below,
            "threshold": limit - n_audit - n_below,
        }
        pattern = ["threshold", "threshold", "audit", "threshold", "below"]
    sources = {
        "neighbour": neighbour_order,
        "threshold": threshold_order,
        "audit": audit_order,
        "below": below_order,
    }
    cursor = dict.fromkeys(sources, 0)
    chosen: list[tuple[int, str]] = []
    taken: set[int] = set()
    picked = np.zeros((0, X.shape[1]), dtype=np.float32)

    def take(kind: str) -> bool:
        nonlocal picked
        src = sources[kind]
        while cursor[kind] < len(src):
            i = int(src[cursor[kind]])
            cursor[kind] += 1
            if i in taken:
                continue
            if len(picked) and float(np.max(picked @ X[i])) > duplicate_cosine:
                continue
            taken.add(i)
            picked = np.vstack([picked, X[i : i + 1]])
            chosen.append((i, kind))
            return True
        return False

    used = dict.fromkeys(sources, 0)
    while len(chosen) < limit:
        progressed = False
        for kind in pattern + [k for k in sources if k not in pattern]:
            if len(chosen) >= limit:
                break
            if used[kind] < quota.get(kind, 0) and take(kind):
                used[kind] += 1
                progressed = True
        if not progressed:  # quotas spent or sources dry: fill from whatever is left
            if not any(take(k) for k in ("threshold", "neighbour", "audit", "below")):
                break
            used["threshold"] += 0
    out: list[Suggestion] = []
    for i, kind in chosen:
        if len(P):
            sims = P @ X[i]
            k = min(3, len(P))
            near = np.argsort(-sims, kind="stable")[:k]
            why = tuple(int(j) for j in near)
        else:
            why = ()
        out.append(Suggestion(index=i, score=float(p[i]), reason=kind, why=why))
    return out
