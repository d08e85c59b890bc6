"""Tags from stored image vectors: zero-shot (CLIP) and classifier heads. numpy only.

**The threshold rule.** A tagger turns each item's vector into a probability per
concept — for CLIP a softmax over the whole vocabulary of the cosine similarities
times CLIP's logit scale (100, the value the model was trained with), for a
classifier the softmax of its head's logits — and tags the item with every concept
whose probability is at least `min_score`, best first, at most `max_tags`. The
reported score is that probability, in [0, 1].

Why this rule, for CLIP ViT-B/32: raw cosines sit around 0.15–0.35 for every
concept and the right ones are only 0.03–0.08 above the median, so a fixed cosine
cut-off either tags everything or nothing, and its best value moves with the
picture (a busy scene scores every concept higher). The softmax is the calibration
CLIP was trained with: what counts is a concept's margin over the item's *other*
concepts, not its absolute cosine — 0.05 above the rest is e^5 ≈ 150 times their
weight. A photo showing several things spreads the mass over them (dog 0.6, puppy
0.2, beach 0.08 …), so the default `min_score` of 0.05 keeps the concepts within
about ln(p_top / 0.05) logits of the best one, and at most 1 / min_score of them
can pass. A picture that matches nothing in particular (every cosine alike: only
the direction all CLIP vectors share) has a flat distribution whose best
probability is tiny, and gets no tags; a vector orthogonal to every concept gets
exactly 1 / len(vocabulary) for each.

Consequences: CLIP's softmax is confident, so most photos get at least their best
concept, which may be wrong for a picture the vocabulary does not cover. The
probabilities depend on the vocabulary (a user's word takes its share;
near-synonyms split one, which is why the built-in vocabulary avoids them), so
`min_score` must stay well above 1 / len(vocabulary) (~0.0014 for the built-in
one). `min_score = 0` keeps the top `max_tags` whatever they score.

Vectorised over blocks of `block_rows` items in float32: one [block, d] × [d, n]
product, a row softmax, then the entries over the threshold taken directly (a
partition for the top `max_tags` only when the threshold lets many through). The
product dominates: 100k items × ~740 concepts × 512 dims is ~75 GFLOP.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

DEFAULT_MIN_SCORE = 0.05
DEFAULT_MAX_TAGS = 10
CLIP_LOGIT_SCALE = 100.0
BLOCK_ROWS = 4096

Tags = list[tuple[str, float]]


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    """float32 rows of unit length; zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: np.ndarray = x / np.maximum(norms, np.float32(1e-12))
    return out


def ensemble_text_embeddings(per_prompt: np.ndarray, groups: Sequence[int]) -> np.ndarray:
    """One vector per concept from its prompts' text embeddings (CLIP's prompt
    ensembling): each prompt embedding L2-normalised, averaged over the concept's
    prompts, the mean normalised again. `per_prompt` holds the prompts of concept 0,
    then concept 1, …; `groups[i]` is how many belong to concept i. → [len(groups), d]
    float32."""
    per_prompt = np.asarray(per_prompt)
    if per_prompt.ndim != 2:
        raise ValueError(f"per_prompt must be [prompts, dim], not {per_prompt.shape}")
    counts = np.asarray(groups, dtype=np.int64).reshape(-1)
    if counts.size == 0:
        if per_prompt.shape[0]:
            raise ValueError("prompts were given for no concepts")
        return np.zeros((0, per_prompt.shape[1]), dtype=np.float32)
    if (counts < 1).any():
        raise ValueError("every concept needs at least one prompt")
    if int(counts.sum()) != per_prompt.shape[0]:
        raise ValueError(
            f"groups add up to {int(counts.sum())} prompts but {per_prompt.shape[0]} were given"
        )
    unit = _normalise_rows(per_prompt.astype(np.float64))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    means = np.add.reduceat(unit, starts, axis=0) / counts[:, None]
    return _normalise_rows(means)


def _select(probs: np.ndarray, names: Sequence[str], min_score: float, max_tags: int) -> list[Tags]:
    """Per row, the columns with probability ≥ min_score, best first (ties: lower
    column first), at most max_tags."""
    rows, n = probs.shape
    k = min(max_tags, n)
    if k <= 0 or rows == 0:
        return [[] for _ in range(rows)]
    passing = probs >= np.float32(min_score)
    # A probability threshold lets few columns through (at most 1 / min_score a row):
    # take those directly. Otherwise (min_score 0 or tiny) partition out the top k.
    if np.count_nonzero(passing) <= 2 * rows * k:
        r, c = np.nonzero(passing)
        p = probs[r, c]
        order = np.lexsort((c, -p, r))
        r, c, p = r[order], c[order], p[order]
        counts = np.bincount(r, minlength=rows)
        firsts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        keep = np.arange(len(r)) - np.repeat(firsts, counts) < k
        r, c, p = r[keep], c[keep], p[keep]
        counts = np.bincount(r, minlength=rows)
        columns = c.tolist()
        shown = np.round(p.astype(np.float64), 6).tolist()
        out: list[Tags] = []
        at = 0
        for count in counts.tolist():
            out.append(
                [
                    (names[j], q)
                    for j, q in zip(columns[at : at + count], shown[at : at + count], strict=True)
                ]
            )
            at += count
        return out
    if k < n:
        idx = np.argpartition(probs, n - k, axis=1)[:, n - k :]
    else:
        idx = np.broadcast_to(np.arange(n), (rows, n))
    top = np.take_along_axis(probs, idx, axis=1)
    order = np.lexsort((idx, -top), axis=1)
    idx = np.take_along_axis(idx, order, axis=1)
    top = np.take_along_axis(top, order, axis=1)
    passed = (top >= np.float32(min_score)).sum(axis=1).tolist()
    values = np.round(top.astype(np.float64), 6).tolist()
    return [
        [(names[j], q) for j, q in zip(cols[:count], ps[:count], strict=True)]
        for cols, ps, count in zip(idx.tolist(), values, passed, strict=True)
    ]


def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    """In place, float32."""
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


def _check_args(min_score: float, max_tags: int) -> None:
    if not 0.0 <= min_score <= 1.0:
        raise ValueError(f"min_score must be in [0, 1], not {min_score}")
    if max_tags < 0:
        raise ValueError(f"max_tags must be ≥ 0, not {max_tags}")


def _as_matrix(x: np.ndarray, dim: int, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{what} must be [n, {dim}], not {x.shape}")
    return x


class ZeroShotTagger:
    """CLIP zero-shot tags: `concepts[i]`'s text vector is `matrix[i]` (normalised
    again here). Image vectors need not be normalised (they are, here)."""

    def __init__(
        self,
        concepts: Sequence[str],
        matrix: np.ndarray,
        logit_scale: float = CLIP_LOGIT_SCALE,
        *,
        block_rows: int = BLOCK_ROWS,
    ) -> None:
        matrix = np.asarray(matrix, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(concepts):
            raise ValueError(
                f"{len(concepts)} concepts need a [{len(concepts)}, dim] matrix, not {matrix.shape}"
            )
        if block_rows < 1:
            raise ValueError("block_rows must be ≥ 1")
        self.concepts = list(concepts)
        self.logit_scale = float(logit_scale)
        self.block_rows = block_rows
        self.dim = int(matrix.shape[1])
        # [d, n], pre-multiplied by the logit scale: one product gives the logits.
        self._text_t = np.ascontiguousarray(
            (_normalise_rows(matrix) * np.float32(self.logit_scale)).T
        )

    def _block_probabilities(self, block: np.ndarray) -> np.ndarray:
        logits = _normalise_rows(block) @ self._text_t
        return _softmax_rows(logits)

    def probabilities(self, image_vectors: np.ndarray) -> np.ndarray:
        """[m, n] float32: each item's softmax over the concepts."""
        x = _as_matrix(image_vectors, self.dim, "image_vectors")
        out = np.empty((x.shape[0], len(self.concepts)), dtype=np.float32)
        for start in range(0, x.shape[0], self.block_rows):
            stop = start + self.block_rows
            out[start:stop] = self._block_probabilities(x[start:stop])
        return out

    def score(
        self,
        image_vectors: np.ndarray,
        min_score: float = DEFAULT_MIN_SCORE,
        max_tags: int = DEFAULT_MAX_TAGS,
    ) -> list[Tags]:
        """Per item, [(concept, probability)] best first: probability ≥ min_score,
        at most max_tags (see the module docstring)."""
        _check_args(min_score, max_tags)
        x = _as_matrix(image_vectors, self.dim, "image_vectors")
        out: list[Tags] = []
        for start in range(0, x.shape[0], self.block_rows):
            probs = self._block_probabilities(x[start : start + self.block_rows])
            out += _select(probs, self.concepts, min_score, max_tags)
        return out


class ClassifierTagger:
    """Tags from an image model's own classification head (no text tower), e.g.
    MobileNetV2's ImageNet linear layer: probabilities = softmax(features @ W.T + b).

    `features` are the head's input as the network produced it — *not* the stored,
    L2-normalised embedding. The embed stage stores each vector's length before
    normalising; pass those as `norms=` (or scale the vectors yourself) to get the
    feature back. Classes sharing a name (after lowercasing) are one tag whose
    probability is their sum.
    """

    def __init__(
        self,
        weight: np.ndarray,
        bias: np.ndarray,
        class_names: Sequence[str],
        *,
        block_rows: int = BLOCK_ROWS,
    ) -> None:
        weight = np.asarray(weight, dtype=np.float32)
        bias = np.asarray(bias, dtype=np.float32).reshape(-1)
        if weight.ndim != 2 or weight.shape[0] != len(class_names):
            raise ValueError(
                f"{len(class_names)} classes need a [{len(class_names)}, dim] weight, "
                f"not {weight.shape}"
            )
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"bias must be [{weight.shape[0]}], not {bias.shape}")
        if block_rows < 1:
            raise ValueError("block_rows must be ≥ 1")
        self.dim = int(weight.shape[1])
        self.block_rows = block_rows
        self._weight_t = np.ascontiguousarray(weight.T)
        self._bias = bias
        names: list[str] = []
        column: dict[str, int] = {}
        inverse: list[int] = []
        for name in class_names:
            if name not in column:
                column[name] = len(names)
                names.append(name)
            inverse.append(column[name])
        self.class_names = list(class_names)
        self.tag_names = names
        self._inverse = np.asarray(inverse, dtype=np.intp)
        self._merged = len(names) != len(class_names)

    def _block_probabilities(self, block: np.ndarray) -> np.ndarray:
        probs = _softmax_rows(block @ self._weight_t + self._bias)
        if not self._merged:
            return probs
        out = np.zeros((probs.shape[0], len(self.tag_names)), dtype=np.float32)
        np.add.at(out.T, self._inverse, probs.T)
        return out

    def probabilities(self, features: np.ndarray, norms: np.ndarray | None = None) -> np.ndarray:
        """[m, len(tag_names)] float32 softmax probabilities."""
        x = self._features(features, norms)
        out = np.empty((x.shape[0], len(self.tag_names)), dtype=np.float32)
        for start in range(0, x.shape[0], self.block_rows):
            stop = start + self.block_rows
            out[start:stop] = self._block_probabilities(x[start:stop])
        return out

    def score(
        self,
        features: np.ndarray,
        min_score: float = DEFAULT_MIN_SCORE,
        max_tags: int = DEFAULT_MAX_TAGS,
        *,
        norms: np.ndarray | None = None,
    ) -> list[Tags]:
        """Per item, [(class name, probability)] best first: probability ≥ min_score,
        at most max_tags. `norms`: each row's length, when `features` are the stored
        unit vectors."""
        _check_args(min_score, max_tags)
        x = self._features(features, norms)
        out: list[Tags] = []
        for start in range(0, x.shape[0], self.block_rows):
            probs = self._block_probabilities(x[start : start + self.block_rows])
            out += _select(probs, self.tag_names, min_score, max_tags)
        return out

    def _features(self, features: np.ndarray, norms: np.ndarray | None) -> np.ndarray:
        x = _as_matrix(features, self.dim, "features")
        if norms is None:
            return x
        lengths = np.asarray(norms, dtype=np.float32).reshape(-1)
        if lengths.shape != (x.shape[0],):
            raise ValueError(f"norms must be [{x.shape[0]}], not {lengths.shape}")
        scaled: np.ndarray = x * lengths[:, None]
        return scaled


# Readable names where lowercasing torchvision's would merge two classes.
_IMAGENET_RENAMES = {"Cardigan": "cardigan welsh corgi"}


@lru_cache(maxsize=1)
def _imagenet_tag_names() -> tuple[str, ...]:
    tv_models = importlib.import_module("torchvision.models")
    categories = tv_models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
    return tuple(_IMAGENET_RENAMES.get(str(c), str(c)).lower() for c in categories)


def imagenet_tag_names() -> list[str]:
    """The 1000 ImageNet-1k class names as tags, lowercase, in class order, from
    torchvision's MobileNetV2 weights metadata (torchvision is imported here only)."""
    return list(_imagenet_tag_names())
