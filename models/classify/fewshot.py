"""A per-label classifier on stored embeddings, started from and pulled towards a prior.

The model of one label is logistic on L2-normalised embeddings x:

    z(x) = x·v + Σⱼ sⱼ·(x·dⱼ)/σⱼ + b

where the dⱼ are the prior's directions, one per feature block (an image block and a
text block are separate): the label name's text embedding when the model has a text
tower, and always the positive-minus-unlabelled centroid of the training rows
(recomputed inside every fold, so a held-out example never shapes its own prior);
σⱼ is that prior feature's spread over the training rows (so every sⱼ is O(1)). The
free part v is pulled to 0 by λ/2·‖v‖², the prior scales sⱼ only by a tiny ridge:
the prior is a feature the data may scale but can leave only at a price. With five
examples, λ chosen by cross-validation is large and z is (nearly) the prior; with
more, CV picks a small λ and v carries the data.

Loss: class-balanced log loss — the positives share a total weight of 1, the
negatives another 1, of which each weak (unlabelled) negative counts `weak_weight` of
a rejection. Solved by L-BFGS (numpy, warm-started along the λ grid from the
largest, fold by fold).

Folds are a fixed function of the item ids (`fold_of`: splitmix64 of the id, mod k),
so two recipes, or the same recipe on next week's decisions, meet identical folds.
λ is chosen by out-of-fold average precision (the largest λ within `ap_tolerance` of
the best). Probabilities: Platt scaling of the out-of-fold logits, class-balanced,
then moved from the 50 % prior of balanced training to the library's prevalence,
estimated by EM on the unlabelled sample (see `calibration.estimate_prevalence`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from models.classify.calibration import (
    average_precision,
    estimate_prevalence,
    fit_answer_platt,
    fit_platt,
    fit_pu_platt,
    logit,
    roc_auc,
    sigmoid,
)

PRIOR_MODES = ("auto", "text", "centroid", "none")
SCORE_CHUNK = 16384  # rows per matmul when scoring: 16384 × 1280 float32 = 80 MB at most
FOLD_SALT = 0x5EED_F01D_C0DE_2024


# -- data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelData:
    positives: np.ndarray  # (p, d) the user's examples and accepts, rows unit per block
    negatives: np.ndarray  # (q, d) the user's rejections (may be (0, d))
    unlabelled: np.ndarray  # (u, d) a random sample of undecided items: weak negatives
    positive_keys: np.ndarray  # (p,) int64 item ids
    negative_keys: np.ndarray  # (q,)
    unlabelled_keys: np.ndarray  # (u,)
    prior: np.ndarray | None = None  # (d,) label-name text embedding, unit per block
    blocks: tuple[int, ...] = ()  # feature blocks' widths; () = one block
    # Which rows are review answers (the user accepted / rejected a suggestion) rather
    # than examples the user picked: answers to score-chosen questions are a fair
    # sample of P(label | score) and calibrate the probabilities; examples are not.
    # None: no positive is a review answer, every rejection is.
    positive_from_review: np.ndarray | None = None  # (p,) bool
    negative_from_review: np.ndarray | None = None  # (q,) bool
    # Which unlabelled rows are among the current top scores (by the active version):
    # the likeliest hidden positives, left out of the weak negatives in training but
    # kept in the uniform sample that calibration and the prevalence are fitted on.
    # None: every unlabelled row is a weak negative.
    unlabelled_top: np.ndarray | None = None  # (u,) bool

    @property
    def dim(self) -> int:
        return int(self.positives.shape[1])

    def block_slices(self) -> list[slice]:
        widths = self.blocks or (self.dim,)
        if sum(widths) != self.dim:
            raise ValueError(f"blocks {widths} do not add up to the feature width {self.dim}")
        out, start = [], 0
        for w in widths:
            out.append(slice(start, start + w))
            start += w
        return out


@dataclass(frozen=True)
class TrainConfig:
    target_precision: float = 0.95
    folds: int = 5
    seed: int = 0
    regs: tuple[float, ...] = (3.0, 1.0, 0.3, 0.1, 0.03, 0.01, 0.003)
    weak_weight: float = 0.1  # a weak (unlabelled) negative's weight relative to a rejection
    prior_reg: float = 1e-3  # ridge on the prior scales sⱼ
    prior_mode: str = "auto"  # auto: text (if given) + centroid; text; centroid; none
    default_reg: float = 0.1  # λ when cross-validation cannot run (too few positives)
    min_cv_positives: int = 8
    ap_tolerance: float = 1e-4  # prefer the largest λ whose OOF criterion is this close to the best
    calib_reject_weight: float = 1.0  # a rejection's weight vs a weak negative in Platt
    adjust_prevalence: bool = True  # move probabilities to the library's estimated prior
    # "answers": Platt on the review answers (fit_answer_platt), PU Platt without them;
    # "pu": fit_pu_platt; "mixed": PU Platt with accepts as Bernoulli;
    # "balanced": balanced Platt + EM prior
    calibration: str = "answers"
    pu_weight: float = 1.0
    loo_prior: bool = True  # positives' centroid feature leaves the positive out
    prefer_small_reg: bool = False
    prior_growth: float = 0.01  # the prior ridge grows by this per positive
    min_fit_positives: int = 5  # below CV: fit at fit_reg from this many positives
    cv_prior_off: bool = True
    # Once CV can run, whether the prior recipe stays a candidate next to the plain one
    # (prior off). Off: the OOF criterion cannot tell them apart at 8–16 positives
    # (bench: its difference has correlation −0.09 / 0.02 with the test-AP difference
    # over 63 draws each, and CV's choice lost 0.0019 / 0.0009 AP to the plain recipe).
    cv_keep_prior: bool = False
    # Leave the unlabelled rows marked `unlabelled_top` out of training (not weak
    # negatives; still in the calibration sample). False: every row a weak negative.
    use_top: bool = True
    slope_ridge: float = 0.05
    low_weight: float = 1.0
    select: str = "auc"  # CV criterion for λ: "auc" (PU-robust) or "ap"
    max_iter: int = 200
    tol: float = 1e-6


@dataclass
class Head:
    w: np.ndarray  # (d,) float32
    b: float
    calib_a: float  # p = sigmoid(calib_a·(X@w + b) + calib_b)
    calib_b: float
    prevalence: float = 0.5  # the library prior the probabilities are calibrated for

    def logits(self, X: np.ndarray, chunk: int = SCORE_CHUNK) -> np.ndarray:
        """X@w + b as float32, `chunk` rows at a time (X may be float16 or a memmap)."""
        w = np.asarray(self.w, dtype=np.float32)
        n = X.shape[0]
        out = np.empty((n,), dtype=np.float32)
        for start in range(0, n, chunk):
            block = X[start : start + chunk]
            if block.dtype != np.float32:
                block = block.astype(np.float32)
            np.dot(block, w, out=out[start : start + chunk])
        out += np.float32(self.b)
        return out

    def calibrate(self, logits: np.ndarray) -> np.ndarray:
        z = np.asarray(logits, dtype=np.float32) * np.float32(self.calib_a) + np.float32(
            self.calib_b
        )
        return sigmoid(z).astype(np.float32)

    def proba(self, X: np.ndarray) -> np.ndarray:
        return self.calibrate(self.logits(X))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "w": np.asarray(self.w, dtype=np.float32),
            "b": np.array([self.b], dtype=np.float64),
            "calib": np.array([self.calib_a, self.calib_b], dtype=np.float64),
            "prevalence": np.array([self.prevalence], dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Head:
        calib = np.asarray(arrays["calib"], dtype=np.float64)
        prevalence = arrays.get("prevalence")
        return cls(
            w=np.asarray(arrays["w"], dtype=np.float32).copy(),
            b=float(np.asarray(arrays["b"]).ravel()[0]),
            calib_a=float(calib[0]),
            calib_b=float(calib[1]),
            prevalence=0.5 if prevalence is None else float(np.asarray(prevalence).ravel()[0]),
        )


@dataclass
class TrainResult:
    head: Head
    reg: float
    metrics: dict[str, float]
    recipe: dict[str, float]
    oof: dict[str, np.ndarray] = field(default_factory=dict)  # out-of-fold logits (bench)


# -- folds ------------------------------------------------------------------------------


def fold_of(keys: np.ndarray, folds: int) -> np.ndarray:
    """Fold of each item id: splitmix64(id ^ salt) mod `folds`. A fixed function of the id
    alone — the same in every process, for every recipe, in any order."""
    with np.errstate(over="ignore"):
        z = np.asarray(keys, dtype=np.int64).astype(np.uint64) ^ np.uint64(FOLD_SALT)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(folds)).astype(np.int64)


# -- the optimiser ----------------------------------------------------------------------

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


def _lbfgs(
    fun: Objective, x0: np.ndarray, max_iter: int, tol: float, memory: int = 8
) -> np.ndarray:
    """Minimise a smooth convex function: L-BFGS with Armijo backtracking."""
    x = x0.copy()
    f, g = fun(x)
    s_hist: list[np.ndarray] = []
    y_hist: list[np.ndarray] = []
    rho_hist: list[float] = []
    for it in range(max_iter):
        gnorm = float(np.max(np.abs(g)))
        if gnorm < tol:
            break
        q = g.copy()
        alphas = []
        for s, y, rho in zip(reversed(s_hist), reversed(y_hist), reversed(rho_hist), strict=True):
            a = rho * float(s @ q)
            alphas.append(a)
            q -= a * y
        if s_hist:
            gamma = float(s_hist[-1] @ y_hist[-1]) / float(y_hist[-1] @ y_hist[-1])
        else:
            gamma = 1.0 / max(float(np.linalg.norm(g)), 1e-12)
        r = gamma * q
        for s, y, rho, a in zip(s_hist, y_hist, rho_hist, reversed(alphas), strict=True):
            bcoef = rho * float(y @ r)
            r += s * (a - bcoef)
        d = -r
        gd = float(g @ d)
        if gd >= 0:  # not a descent direction: restart from steepest descent
            s_hist.clear()
            y_hist.clear()
            rho_hist.clear()
            d = -g / max(float(np.linalg.norm(g)), 1e-12)
            gd = float(g @ d)
        step = 1.0
        for _ in range(30):
            xn = x + step * d
            fn, gn = fun(xn)
            if fn <= f + 1e-4 * step * gd:
                break
            step *= 0.5
        else:
            break
        s_vec, y_vec = xn - x, gn - g
        sy = float(s_vec @ y_vec)
        if sy > 1e-12:
            s_hist.append(s_vec)
            y_hist.append(y_vec)
            rho_hist.append(1.0 / sy)
            if len(s_hist) > memory:
                s_hist.pop(0)
                y_hist.pop(0)
                rho_hist.pop(0)
        done = abs(f - fn) <= 1e-10 * max(1.0, abs(f))
        x, f, g = xn, fn, gn
        if done and it > 2:
            break
    return x


@dataclass
class _Problem:
    X: np.ndarray  # (n, d) float64
    P: np.ndarray  # (n, m) standardised prior features
    y: np.ndarray  # (n,) float64 0/1
    c: np.ndarray  # (n,) weights
    dirs: np.ndarray  # (d, m) prior directions / their spread

    def objective(self, lam: float, mu: float) -> Objective:
        X, P, y, c = self.X, self.P, self.y, self.c
        d, m = X.shape[1], P.shape[1]

        def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
            v, s, b = theta[:d], theta[d : d + m], theta[-1]
            z = X @ v + P @ s + b
            loss = float(c @ (np.logaddexp(0.0, z) - y * z))
            r = c * (sigmoid(z) - y)
            g = np.empty_like(theta)
            g[:d] = X.T @ r + lam * v
            g[d : d + m] = P.T @ r + mu * s
            g[-1] = r.sum()
            return loss + 0.5 * lam * float(v @ v) + 0.5 * mu * float(s @ s), g

        return fun

    def start(self) -> np.ndarray:
        d, m = self.X.shape[1], self.P.shape[1]
        theta = np.zeros(d + m + 1)
        theta[d : d + m] = 1.0
        z = self.P.sum(axis=1)
        theta[-1] = -float(np.average(z, weights=self.c)) if m else 0.0
        return theta

    def weights(self, theta: np.ndarray) -> tuple[np.ndarray, float]:
        d, m = self.X.shape[1], self.P.shape[1]
        w = theta[:d] + self.dirs @ theta[d : d + m]
        return w, float(theta[-1])


def _directions(
    data: LabelData,
    X: np.ndarray,
    kind: np.ndarray,
    rows: np.ndarray,
    mode: str,
    centroid_cols: list[tuple[int, slice, float, np.ndarray]] | None = None,
) -> np.ndarray:
    """(d, k) unit prior directions per block from the training `rows`; appends
    (column, block, norm, positives' mean) of each centroid column to `centroid_cols`."""
    cols: list[np.ndarray] = []
    slices = data.block_slices()
    use_text = mode in ("auto", "text") and data.prior is not None
    use_centroid = mode == "centroid" or (mode == "auto") or (mode == "text" and data.prior is None)
    if use_text:
        prior = np.asarray(data.prior, dtype=np.float64)
        for sl in slices:
            col = np.zeros(X.shape[1])
            col[sl] = prior[sl]
            norm = float(np.linalg.norm(col))
            if norm > 1e-9:
                cols.append(col / norm)
    if use_centroid:
        tr_kind = kind[rows]
        pos = X[rows][tr_kind == 0]
        ref = X[rows][tr_kind == 2]
        if len(ref) == 0:
            ref = X[rows][tr_kind == 1]
        mean_pos = pos.mean(axis=0)
        mean_ref = ref.mean(axis=0) if len(ref) else np.zeros_like(mean_pos)
        for sl in slices:
            col = np.zeros(X.shape[1])
            col[sl] = mean_pos[sl] - mean_ref[sl]
            norm = float(np.linalg.norm(col))
            if norm > 1e-9:
                if centroid_cols is not None:
                    centroid_cols.append((len(cols), sl, norm, mean_pos[sl]))
                cols.append(col / norm)
    if not cols:
        return np.zeros((X.shape[1], 0))
    return np.stack(cols, axis=1)


def _class_weights(kind: np.ndarray, weak_weight: float) -> np.ndarray:
    """Positives share 1, negatives share 1; a weak negative is `weak_weight` of a rejection."""
    c = np.zeros(kind.shape, dtype=np.float64)
    n_pos = int(np.count_nonzero(kind == 0))
    n_rej = int(np.count_nonzero(kind == 1))
    n_weak = int(np.count_nonzero(kind == 2))
    if n_pos:
        c[kind == 0] = 1.0 / n_pos
    neg_mass = n_rej + weak_weight * n_weak
    if neg_mass > 0:
        c[kind == 1] = 1.0 / neg_mass
        c[kind == 2] = weak_weight / neg_mass
    return c


def _problem(
    data: LabelData,
    X: np.ndarray,
    kind: np.ndarray,
    rows: np.ndarray,
    mode: str,
    weak_weight: float,
    loo_prior: bool = True,
) -> _Problem:
    cent: list[tuple[int, slice, float, np.ndarray]] = []
    dirs = (
        _directions(data, X, kind, rows, mode, cent)
        if mode != "none"
        else np.zeros((X.shape[1], 0))
    )
    Xr = X[rows]
    P = Xr @ dirs
    pos = kind[rows] == 0
    n_pos = int(pos.sum())
    if loo_prior and n_pos > 1:
        # A positive's centroid feature leaves itself out of the centroid (as a held-out
        # item's does): else the fit trusts a feature that has seen its own answer.
        for j, sl, norm, mean_pos in cent:
            xp = Xr[pos][:, sl]
            P[pos, j] -= np.einsum("ij,ij->i", xp, xp - mean_pos) / ((n_pos - 1) * norm)
    spread = P.std(axis=0) if len(rows) > 1 else np.ones(P.shape[1])
    keep = spread > 1e-9
    dirs, P, spread = dirs[:, keep], P[:, keep], spread[keep]
    return _Problem(
        X=Xr,
        P=P / spread,
        y=(kind[rows] == 0).astype(np.float64),
        c=_class_weights(kind[rows], weak_weight),
        dirs=dirs / spread,
    )


# -- training ---------------------------------------------------------------------------


def _review_mask(data: LabelData) -> np.ndarray:
    """(n,) bool over the stacked rows: which are review answers."""
    p, q, u = len(data.positives), len(data.negatives), len(data.unlabelled)
    pos = (
        np.zeros(p, dtype=bool)
        if data.positive_from_review is None
        else np.asarray(data.positive_from_review, dtype=bool).ravel()
    )
    neg = (
        np.ones(q, dtype=bool)
        if data.negative_from_review is None
        else np.asarray(data.negative_from_review, dtype=bool).ravel()
    )
    if len(pos) != p or len(neg) != q:
        raise ValueError("positive_from_review / negative_from_review need one flag per row")
    return np.concatenate([pos, neg, np.zeros(u, dtype=bool)])


def _top_mask(data: LabelData) -> np.ndarray:
    """(n,) bool over the stacked rows: the unlabelled rows marked `unlabelled_top` (no
    weak negatives in training; still part of the uniform sample calibration uses)."""
    p, q, u = len(data.positives), len(data.negatives), len(data.unlabelled)
    top = (
        np.zeros(u, dtype=bool)
        if data.unlabelled_top is None
        else np.asarray(data.unlabelled_top, dtype=bool).ravel()
    )
    if len(top) != u:
        raise ValueError("unlabelled_top needs one flag per unlabelled row")
    return np.concatenate([np.zeros(p + q, dtype=bool), top])


def _stack(data: LabelData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = data.dim
    parts = [
        np.asarray(a, dtype=np.float64).reshape(-1, d)
        for a in (data.positives, data.negatives, data.unlabelled)
    ]
    X = np.concatenate(parts)
    kind = np.concatenate([np.full(len(p), k, dtype=np.int8) for k, p in enumerate(parts)])
    keys = np.concatenate(
        [
            np.asarray(k, dtype=np.int64).ravel()
            for k in (data.positive_keys, data.negative_keys, data.unlabelled_keys)
        ]
    )
    if len(keys) != len(X):
        raise ValueError("every row needs its item id")
    return X, kind, keys


@dataclass
class _Recipe:
    reg: float
    weak_weight: float
    prior_reg: float
    prior_mode: str

    def to_dict(self) -> dict[str, float]:
        return {
            "reg": float(self.reg),
            "weak_weight": float(self.weak_weight),
            "prior_reg": float(self.prior_reg),
            "prior_mode": float(PRIOR_MODES.index(self.prior_mode)),
        }

    @classmethod
    def from_mapping(cls, recipe: Mapping[str, float], config: TrainConfig) -> _Recipe:
        mode = recipe.get("prior_mode")
        return cls(
            reg=float(recipe["reg"]),
            weak_weight=float(recipe.get("weak_weight", config.weak_weight)),
            prior_reg=float(recipe.get("prior_reg", config.prior_reg)),
            prior_mode=config.prior_mode if mode is None else PRIOR_MODES[int(mode)],
        )


def _prior_ridge(recipe: _Recipe, prob: _Problem, config: TrainConfig) -> float:
    n_pos = float(prob.y.sum())
    return recipe.prior_reg + config.prior_growth * n_pos


def _cv_logits(
    data: LabelData,
    X: np.ndarray,
    kind: np.ndarray,
    keys: np.ndarray,
    regs: tuple[float, ...],
    recipe: _Recipe,
    config: TrainConfig,
    top: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold logits (len(regs), n) and the mask of rows that have them (a fold is
    skipped when its complement lacks a positive or a negative). Rows in `top` are
    never trained on, but get their fold's logits."""
    folds = fold_of(keys, config.folds)
    out = np.full((len(regs), len(X)), np.nan)
    have = np.zeros(len(X), dtype=bool)
    trainable = np.ones(len(X), dtype=bool) if top is None else ~top
    for f in range(config.folds):
        test = np.nonzero(folds == f)[0]
        train = np.nonzero((folds != f) & trainable)[0]
        if len(test) == 0:
            continue
        tk = kind[train]
        if not (tk == 0).any() or not (tk != 0).any():
            continue
        prob = _problem(
            data, X, kind, train, recipe.prior_mode, recipe.weak_weight, config.loo_prior
        )
        theta = prob.start()
        Xt = X[test]
        for i, lam in enumerate(regs):
            theta = _lbfgs(
                prob.objective(lam, _prior_ridge(recipe, prob, config)),
                theta,
                config.max_iter,
                config.tol,
            )
            w, b = prob.weights(theta)
            out[i, test] = Xt @ w + b
        have[test] = True
    return out, have


def _balanced_log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    pos = -np.mean(np.log(p[y])) if y.any() else 0.0
    neg = -np.mean(np.log(1 - p[~y])) if (~y).any() else 0.0
    return float(0.5 * (pos + neg))


def _calibration(
    z: np.ndarray, kind: np.ndarray, config: TrainConfig, review: np.ndarray | None = None
) -> tuple[float, float, float]:
    """(a, b, prevalence): balanced Platt on logits `z` of rows of `kind`, then the
    intercept moved to the prevalence EM estimates on the weak (unlabelled) rows."""
    y = kind == 0
    w = np.zeros(len(z))
    n_pos = int(y.sum())
    if n_pos:
        w[y] = 1.0 / n_pos
    neg_w = np.where(kind == 1, config.calib_reject_weight, 1.0)
    neg_mass = float(neg_w[~y].sum())
    if neg_mass > 0:
        w[~y] = neg_w[~y] / neg_mass
    if config.calibration == "pu":
        return fit_pu_platt(z, kind)
    if config.calibration == "mixed":
        return fit_pu_platt(z, kind, answered=review, pu_weight=config.pu_weight)
    if config.calibration == "answers":
        got = fit_answer_platt(
            z,
            kind,
            np.zeros(len(z), bool) if review is None else review,
            slope_ridge=config.slope_ridge,
            low_weight=config.low_weight,
        )
        return got if got is not None else fit_pu_platt(z, kind, answered=review)
    a, b = fit_platt(z, y, w)
    prevalence = 0.5
    weak = kind == 2
    if config.adjust_prevalence:
        if weak.any():
            prevalence = estimate_prevalence(sigmoid(a * z[weak] + b), 0.5)
        else:
            prevalence = min(0.5, max(1e-4, n_pos / max(len(z), 1)))
        b += logit(prevalence)
    return a, b, prevalence


def _metrics(
    z: np.ndarray,
    kind: np.ndarray,
    data: LabelData,
    config: TrainConfig,
    review: np.ndarray | None = None,
    top: np.ndarray | None = None,
) -> dict[str, float]:
    """OOF metrics; the ranking ones leave out the `top` rows (likely hidden positives:
    counting them as negatives would penalise ranking them high), calibration has all."""
    a, b, prevalence = _calibration(z, kind, config, review)
    if top is not None and top.any():
        z, kind = z[~top], kind[~top]
    y = kind == 0
    balanced = sigmoid(a * z + b - logit(prevalence))
    strong = kind != 2
    return {
        "ap": average_precision(z, y),
        "auc": roc_auc(z, y),
        "ap_rejections": average_precision(z[strong], y[strong]) if (kind == 1).any() else math.nan,
        "log_loss": _balanced_log_loss(balanced, y),
        "n_pos": float(len(data.positives)),
        "n_neg": float(len(data.negatives)),
        "n_weak": float(len(data.unlabelled)),
        "n_oof": float(len(z)),
        "prevalence": float(prevalence),
    }


def _empty_metrics(data: LabelData) -> dict[str, float]:
    return {
        "ap": math.nan,
        "auc": math.nan,
        "ap_rejections": math.nan,
        "log_loss": math.nan,
        "n_pos": float(len(data.positives)),
        "n_neg": float(len(data.negatives)),
        "n_weak": float(len(data.unlabelled)),
        "n_oof": 0.0,
        "prevalence": math.nan,
    }


def _can_cv(kind: np.ndarray, config: TrainConfig) -> bool:
    return int(np.count_nonzero(kind == 0)) >= config.min_cv_positives and bool((kind != 0).any())


def train_label(data: LabelData, config: TrainConfig = TrainConfig()) -> TrainResult:
    """Train one label's head: λ by cross-validation on the label's own decisions, then
    a fit on all of them, Platt-calibrated on the out-of-fold logits."""
    if config.prior_mode not in PRIOR_MODES:
        raise ValueError(f"prior_mode must be one of {PRIOR_MODES}")
    X, kind, keys = _stack(data)
    review = _review_mask(data)
    top = _top_mask(data) if config.use_top else np.zeros(len(X), dtype=bool)
    if not (kind == 0).any():
        raise ValueError("a label needs at least one positive example")
    base = _Recipe(config.default_reg, config.weak_weight, config.prior_reg, config.prior_mode)
    regs = tuple(sorted(config.regs, reverse=True))
    oof: dict[str, np.ndarray] = {}
    mode = base.prior_mode
    reg = config.default_reg
    if _can_cv(kind[~top], config):
        # The candidates, simplest first: the plain recipe (prior off) wins ties, the
        # prior must beat it by more than `ap_tolerance`.
        if base.prior_mode == "none":
            modes = ["none"]
        elif not config.cv_prior_off:
            modes = [base.prior_mode]
        elif config.cv_keep_prior:
            modes = ["none", base.prior_mode]
        else:
            modes = ["none"]
        best_key: tuple[float, int] | None = None
        crit = roc_auc if config.select == "auc" else average_precision
        for mi, m in enumerate(modes):
            rec_m = _Recipe(base.reg, base.weak_weight, base.prior_reg, m)
            logits, have = _cv_logits(data, X, kind, keys, regs, rec_m, config, top)
            ranked = have & ~top
            y = kind[ranked] == 0
            if not (~y).any() or not y.any():
                continue
            aps = np.array([crit(z[ranked], y) for z in logits])
            if not np.isfinite(aps).any():
                continue
            best = float(np.nanmax(aps))
            close = np.nonzero(aps >= best - config.ap_tolerance)[0]
            # the largest λ that is close (or the smallest, prefer_small_reg)
            i = int(close[-1] if config.prefer_small_reg else close[0])
            # the prior wins ties: "none" must beat it by more than the tolerance
            key = (best - mi * config.ap_tolerance, -mi)
            if best_key is None or key > best_key:
                best_key = key
                mode, reg = m, regs[i]
                oof = {
                    "logits": logits[i][have],
                    "kind": kind[have],
                    "keys": keys[have],
                    "review": review[have],
                    "top": top[have],
                    "ap_by_reg": aps,
                }
    recipe = _Recipe(reg, base.weak_weight, base.prior_reg, mode)
    every = np.nonzero(~top)[0]
    if (kind[every] != 0).any():
        prob = _problem(
            data, X, kind, every, recipe.prior_mode, recipe.weak_weight, config.loo_prior
        )
        theta = prob.start()
        n_pos = int(np.count_nonzero(kind == 0))
        if oof or prob.P.shape[1] == 0 or n_pos >= config.min_fit_positives:
            theta = _lbfgs(
                prob.objective(reg, _prior_ridge(recipe, prob, config)),
                theta,
                config.max_iter,
                config.tol,
            )
        # else: too few positives to cross-validate: the prior itself, its standardised
        # directions summed with equal weight (fitting their scales to one or two
        # examples overfits)
        w, b = prob.weights(theta)
    else:  # positives only: the prior direction alone
        dirs = _directions(
            data, X, kind, every, "auto" if recipe.prior_mode == "none" else recipe.prior_mode
        )
        w = dirs.sum(axis=1) * 10.0
        b = -float(np.median(X @ w))
    if oof:
        a, cb, prevalence = _calibration(oof["logits"], oof["kind"], config, oof["review"])
        metrics = _metrics(oof["logits"], oof["kind"], data, config, oof["review"], oof["top"])
    else:  # in-sample calibration: overconfident, and enough_evidence says no anyway
        z_in = X @ w + b
        a, cb, prevalence = _calibration(z_in, kind, config, review)
        metrics = _empty_metrics(data)
        metrics["prevalence"] = prevalence
    head = Head(w.astype(np.float32), float(b), float(a), float(cb), float(prevalence))
    return TrainResult(head=head, reg=float(reg), metrics=metrics, recipe=recipe.to_dict(), oof=oof)


def evaluate_recipe(
    data: LabelData, recipe: Mapping[str, float], config: TrainConfig = TrainConfig()
) -> dict[str, float]:
    """Out-of-fold metrics of `recipe` (a `TrainResult.recipe`) on this data's folds —
    the same names as `TrainResult.metrics`. NaN metrics when CV cannot run."""
    X, kind, keys = _stack(data)
    review = _review_mask(data)
    top = _top_mask(data) if config.use_top else np.zeros(len(X), dtype=bool)
    rec = _Recipe.from_mapping(recipe, config)
    if not _can_cv(kind[~top], config):
        return _empty_metrics(data)
    logits, have = _cv_logits(data, X, kind, keys, (rec.reg,), rec, config, top)
    ranked = have & ~top
    if not ranked.any() or not (kind[ranked] == 0).any() or not (kind[ranked] != 0).any():
        return _empty_metrics(data)
    return _metrics(logits[0][have], kind[have], data, config, review[have], top[have])


def enough_evidence(
    data: LabelData,
    metrics: Mapping[str, float] | None = None,
    *,
    min_positives: int = 8,
    min_negatives: int = 4,
    min_decisions: int = 15,
) -> tuple[bool, str]:
    """Whether the label's decisions can support automatic labels: at least
    `min_positives` positives (examples and accepts), `min_negatives` rejections and
    `min_decisions` of both together, and — given the training metrics — an out-of-fold
    estimate to calibrate on. (False, what is missing in words) otherwise."""
    p, q = len(data.positives), len(data.negatives)
    missing = []
    if p < min_positives:
        missing.append(f"{min_positives - p} more accepted examples")
    if q < min_negatives:
        missing.append(f"{min_negatives - q} more rejected suggestions")
    if not missing and p + q < min_decisions:
        missing.append(f"{min_decisions - p - q} more answers")
    if metrics is not None and not missing and not math.isfinite(metrics.get("ap", math.nan)):
        missing.append("answers spread over more items")
    if missing:
        return False, "needs " + " and ".join(missing)
    return True, f"{p} examples and {q} rejections"
