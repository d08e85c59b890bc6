"""Reference methods for the benchmark and the tests (not used by the app).

Each takes the same `LabelData` as `train_label` and returns a scoring function over
item features (higher = more likely positive; only the ranking matters for AP).

* `nearest_centroid`: cosine to the mean of the positives.
* `plain_logistic`: logistic regression with no prior, L2 towards 0, class-balanced
  (positives and negatives each weigh 1 in total; a weak negative counts as much as a
  rejection), λ by the same cross-validation on the same folds and grid as the method
  — i.e. `train_label` with `prior_mode="none"` and `weak_weight=1`, every unlabelled
  row a weak negative (`unlabelled_top` ignored).
* `tip_adapter`: Tip-Adapter (Zhang et al. 2022), training-free: zero-shot logits
  100·cos(x, prior) plus α·Σⱼ exp(−β(1 − cos(x, kⱼ))) over the cached positive keys,
  minus the same over the cached negatives rescaled to as many shots as there are
  positives (a binary label's "other" class). The prior is the label-name text
  embedding when given, else the positive-minus-unlabelled centroid. α = 1, β = 5.5:
  the paper's ImageNet setting (it tunes them on a validation set, which five
  examples do not have).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from models.classify.fewshot import LabelData, TrainConfig, train_label

Scorer = Callable[[np.ndarray], np.ndarray]


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    out: np.ndarray = v / np.maximum(n, 1e-12)
    return out


def nearest_centroid(data: LabelData) -> Scorer:
    c = _unit(np.asarray(data.positives, dtype=np.float64).mean(axis=0)).astype(np.float32)

    def score(X: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.asarray(X, dtype=np.float32) @ c
        return out

    return score


def plain_logistic(data: LabelData, config: TrainConfig | None = None) -> Scorer:
    cfg = replace(
        config or TrainConfig(), prior_mode="none", weak_weight=1.0, adjust_prevalence=False
    )
    head = train_label(replace(data, unlabelled_top=None), cfg).head
    return head.logits


def tip_adapter(data: LabelData, alpha: float = 1.0, beta: float = 5.5) -> Scorer:
    pos = _unit(data.positives).astype(np.float32)
    neg_parts = [a for a in (data.negatives, data.unlabelled) if len(a)]
    neg = _unit(np.concatenate(neg_parts)).astype(np.float32) if neg_parts else pos[:0]
    if data.prior is not None:
        prior = _unit(data.prior)
    else:
        ref = neg.mean(axis=0) if len(neg) else 0.0
        prior = _unit(pos.mean(axis=0) - ref)
    prior32 = prior.astype(np.float32)
    shots = len(pos)

    def score(X: np.ndarray) -> np.ndarray:
        Xf = np.asarray(X, dtype=np.float32)
        zero_shot = 100.0 * (Xf @ prior32)
        cache_pos = np.exp(-beta * (1.0 - Xf @ pos.T)).sum(axis=1)
        cache_neg = (
            np.exp(-beta * (1.0 - Xf @ neg.T)).sum(axis=1) * (shots / len(neg)) if len(neg) else 0.0
        )
        out: np.ndarray = zero_shot + alpha * (cache_pos - cache_neg)
        return out

    return score
