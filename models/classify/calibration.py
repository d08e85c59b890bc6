"""Probabilities and the promise of a threshold.

* `fit_platt`: Platt scaling (sigmoid of an affine map of the logit) fitted by Newton's
  method on out-of-fold logits, with Platt's smoothed targets ((n₊+1)/(n₊+2) and
  1/(n₋+2)) so a handful of examples cannot give probabilities of exactly 0 or 1.
  Isotonic regression overfits below ~1,000 samples; this has two parameters.
* `estimate_prevalence`: the share of positives in a random sample of the library, by
  the EM of Saerens, Latinne & Decaestecker (2002) on probabilities calibrated for a
  known training prior. Class-balanced training gives probabilities for a 50 % prior;
  a library where 3 % of the items are receipts needs them shifted by
  logit(0.03) − logit(0.5), or the estimated precision of the automatic labels is far
  too high.
* `choose_threshold`: the lowest probability whose top set's mean probability (the
  expected precision of labelling every item above it) still meets the target.
* `clopper_pearson_lower` / `audited_precision`: what the user's own audits of the
  automatic labels prove, exactly (no normal approximation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


def logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


# -- Platt scaling ----------------------------------------------------------------------


def fit_platt(
    logits: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    max_iter: int = 50,
) -> tuple[float, float]:
    """(a, b) with p = sigmoid(a·z + b) minimising the weighted log loss against Platt's
    smoothed targets. Weights are per sample (class balance goes here). With one class
    only, or no samples, gives (1, 0) shifted to that class's smoothed rate."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    w = np.ones_like(z) if weights is None else np.asarray(weights, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        rate = (n_pos + 1) / (n_pos + n_neg + 2)
        return 1.0, logit(rate)
    t = np.where(y, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    a, b = 1.0, 0.0
    scale = float(np.std(z)) or 1.0
    zs = z / scale  # Newton on a standardised logit; a is rescaled at the end
    a *= scale
    prev = math.inf
    for _ in range(max_iter):
        p = sigmoid(a * zs + b)
        loss = float(
            -np.sum(
                w * (t * np.log(np.clip(p, 1e-15, 1)) + (1 - t) * np.log(np.clip(1 - p, 1e-15, 1)))
            )
        )
        r = w * (p - t)
        g = np.array([np.sum(r * zs), np.sum(r)])
        h = w * p * (1 - p)
        H = np.array([[np.sum(h * zs * zs), np.sum(h * zs)], [np.sum(h * zs), np.sum(h)]])
        H += np.eye(2) * 1e-9 * (1 + np.trace(H))
        step = np.linalg.solve(H, g)
        lam = 1.0
        while lam > 1e-6:
            na, nb = a - lam * step[0], b - lam * step[1]
            q = sigmoid(na * zs + nb)
            nl = float(
                -np.sum(
                    w
                    * (
                        t * np.log(np.clip(q, 1e-15, 1))
                        + (1 - t) * np.log(np.clip(1 - q, 1e-15, 1))
                    )
                )
            )
            if nl <= loss + 1e-12:
                break
            lam /= 2
        a, b = na, nb
        if abs(prev - nl) < 1e-10 * (1 + abs(nl)):
            break
        prev = nl
    return float(a / scale), float(b)


def estimate_prevalence(
    proba: np.ndarray, trained_prior: float = 0.5, *, max_iter: int = 200
) -> float:
    """The prior π of the population `proba` was drawn from, given probabilities
    calibrated for `trained_prior` (Saerens et al. 2002's EM: re-weight each posterior by
    π/π₀ and (1−π)/(1−π₀), set π to their mean, repeat). Clipped to [1e-4, 0.9]."""
    q = np.clip(np.asarray(proba, dtype=np.float64), 1e-9, 1 - 1e-9)
    if q.size == 0:
        return trained_prior
    pi = float(np.mean(q))
    for _ in range(max_iter):
        num = (pi / trained_prior) * q
        den = num + ((1 - pi) / (1 - trained_prior)) * (1 - q)
        new = float(np.mean(num / den))
        new = min(max(new, 1e-4), 0.9)
        if abs(new - pi) < 1e-7:
            pi = new
            break
        pi = new
    return pi


# -- exact binomial bounds --------------------------------------------------------------


def _binom_tail_ge(k: int, n: int, p: float) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p), summed in log space (exact up to rounding)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    j = np.arange(k, n + 1, dtype=np.float64)
    lg = (
        math.lgamma(n + 1)
        - np.array([math.lgamma(x + 1) for x in j])
        - np.array([math.lgamma(n - x + 1) for x in j])
    )
    terms = lg + j * math.log(p) + (n - j) * math.log1p(-p)
    m = float(terms.max())
    return float(min(1.0, math.exp(m) * float(np.sum(np.exp(terms - m)))))


def clopper_pearson_lower(successes: int, trials: int, confidence: float = 0.95) -> float:
    """One-sided exact lower bound L on a binomial proportion: the p with
    P(X ≥ successes | trials, p) = 1 − confidence (bisection). 0 when there are no
    trials or no successes; (1−confidence)^(1/n) when all n succeed (59/59 → 0.9505)."""
    if trials <= 0 or successes <= 0:
        return 0.0
    if not 0 <= successes <= trials:
        raise ValueError(f"{successes} successes out of {trials} trials")
    alpha = 1.0 - confidence
    if successes == trials:
        return float(alpha ** (1.0 / trials))
    lo, hi = 0.0, successes / trials
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if _binom_tail_ge(successes, trials, mid) < alpha:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return lo


def clopper_pearson_upper(successes: int, trials: int, confidence: float = 0.95) -> float:
    """One-sided exact upper bound (1 for no trials)."""
    if trials <= 0:
        return 1.0
    return 1.0 - clopper_pearson_lower(trials - successes, trials, confidence)


def audited_precision(
    confirmed: int, rejected: int, confidence: float = 0.95
) -> tuple[float | None, float]:
    """(confirmed share, its one-sided Clopper–Pearson lower bound) of the audited
    automatic labels; (None, 0.0) with no audits."""
    n = confirmed + rejected
    if n <= 0:
        return None, 0.0
    return confirmed / n, clopper_pearson_lower(confirmed, n, confidence)


# -- the threshold ----------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """What the label's decisions allow: `enough` and its `reason` from
    `fewshot.enough_evidence`, plus the audits of items above the active threshold
    (the user confirmed or rejected an automatic label, or a uniform audit question)."""

    enough: bool
    reason: str = ""
    audited_confirmed: int = 0
    audited_rejected: int = 0
    confidence: float = 0.95


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float | None  # apply automatically at proba >= threshold; None = suggest only
    estimated_precision: float | None  # mean probability of the items above the candidate
    expected_count: int  # how many undecided items the candidate threshold labels
    reason: str  # in words a user reads
    candidate: float | None = None  # the threshold the estimate supports, applied or not
    audited_precision: float | None = None
    audited_lower: float = 0.0  # Clopper–Pearson lower bound of the audited precision


# Audits that fail the target this clearly stop automatic labelling.
MIN_AUDITS_TO_VETO = 10


def candidate_threshold(proba: np.ndarray, target: float) -> tuple[float | None, float | None, int]:
    """(threshold, estimated precision, count): the lowest probability t such that the
    items with proba >= t have mean probability >= target; (None, best, 0) when even the
    single most likely item falls short."""
    p = np.asarray(proba, dtype=np.float64).ravel()
    if p.size == 0:
        return None, None, 0
    order = np.sort(p)[::-1]
    cummean = np.cumsum(order) / np.arange(1, order.size + 1)
    # only cut between distinct values: every item tied at t is labelled too
    last_of_tie = np.r_[order[1:] != order[:-1], True]
    ok = np.nonzero((cummean >= target) & last_of_tie)[0]
    if ok.size == 0:
        return None, float(order[0]), 0
    k = int(ok[-1]) + 1
    t = float(order[k - 1])
    count = int(np.count_nonzero(p >= t))  # ties at t are all in
    est = float(p[p >= t].mean())
    return t, est, count


def choose_threshold(
    library_proba: np.ndarray,
    target: float,
    *,
    evidence: Evidence | None = None,
) -> ThresholdChoice:
    """The auto-apply threshold for a label from the calibrated probabilities of every
    not-yet-decided item. The estimate is the mean probability above the threshold;
    with `evidence` that is not `enough`, or with audits whose exact upper bound is
    below the target, nothing is applied (threshold None) and the reason says why.
    `evidence=None` skips the evidence check (callers that already made it)."""
    t, est, count = candidate_threshold(library_proba, target)
    aud_p: float | None = None
    aud_lo = 0.0
    audit_words = ""
    if evidence is not None:
        aud_p, aud_lo = audited_precision(
            evidence.audited_confirmed, evidence.audited_rejected, evidence.confidence
        )
        n_aud = evidence.audited_confirmed + evidence.audited_rejected
        if aud_p is not None:
            audit_words = (
                f" You checked {n_aud} automatic labels: {aud_p:.0%} right"
                f" (at least {aud_lo:.0%} with {evidence.confidence:.0%} confidence)."
            )
    base = dict(candidate=t, audited_precision=aud_p, audited_lower=aud_lo)
    if t is None:
        best = f" (the most likely item is {est:.0%})" if est is not None else ""
        return ThresholdChoice(
            None,
            est,
            0,
            f"No items are likely enough to label automatically at {target:.0%} precision"
            f"{best}; suggestions only.{audit_words}",
            **base,  # type: ignore[arg-type]
        )
    if evidence is not None and not evidence.enough:
        return ThresholdChoice(
            None,
            est,
            count,
            f"Suggestions only: {evidence.reason}.{audit_words}",
            **base,  # type: ignore[arg-type]
        )
    if evidence is not None:
        n_aud = evidence.audited_confirmed + evidence.audited_rejected
        upper = clopper_pearson_upper(evidence.audited_confirmed, n_aud, evidence.confidence)
        if n_aud >= MIN_AUDITS_TO_VETO and upper < target:
            return ThresholdChoice(
                None,
                est,
                count,
                f"Suggestions only: your checks of the automatic labels show they are"
                f" right less often than {target:.0%}.{audit_words}",
                **base,  # type: ignore[arg-type]
            )
    assert est is not None
    return ThresholdChoice(
        t,
        est,
        count,
        f"{count} items labelled automatically; about {est:.0%} of them are expected to be"
        f" right.{audit_words}",
        **base,  # type: ignore[arg-type]
    )


def average_precision(
    scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """Average precision (area under the step precision–recall curve, as scikit-learn's
    `average_precision_score`), optionally with sample weights; ties are broken
    pessimistically (negatives first). NaN without positives."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64)
    if not y.any():
        return float("nan")
    order = np.lexsort((y, -s))  # by score desc, negatives before positives on ties
    y, w, s = y[order], w[order], s[order]
    tp = np.cumsum(w * y)
    fp = np.cumsum(w * ~y)
    # evaluate at the last index of each distinct score
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp, fp = tp[last], fp[last]
    prec = tp / np.maximum(tp + fp, 1e-300)
    rec = tp / tp[-1]
    drec = np.diff(np.r_[0.0, rec])
    return float(np.sum(drec * prec))


def _log_sigmoid(u: np.ndarray) -> np.ndarray:
    out: np.ndarray = -np.logaddexp(0.0, -u)
    return out


def fit_pu_platt(
    logits: np.ndarray,
    kind: np.ndarray,
    *,
    max_iter: int = 100,
    answered: np.ndarray | None = None,
    pu_weight: float = 1.0,
) -> tuple[float, float, float]:
    """(a, b, π): Platt scaling for the library when the negatives are mostly an
    unlabelled sample that hides positives (PU data).

    The library posterior is q(z) = sigmoid(a·z + b) and π the library's share of
    positives. Rows of `kind` 0 (labelled positives, assumed a random draw of the
    positives) and 2 (a uniform unlabelled sample) then have P(labelled | z) =
    n₀·q/π / (n₀·q/π + n₂) (their densities are f₊ and π f₊ + (1−π) f₋ = f₊·π/q);
    rows of kind 1 (rejections, chosen by their score) have P(rejected | z) = 1 − q(z).
    All three are fitted by maximum likelihood (L-BFGS on (a, b, logit π)); π is
    identified by where the labelled share stops rising — items sure to be positive.
    """
    from models.classify.fewshot import _lbfgs

    z = np.asarray(logits, dtype=np.float64)
    k = np.asarray(kind)
    ans = np.zeros(len(z), dtype=bool) if answered is None else np.asarray(answered, dtype=bool)
    # accepted review answers are Bernoulli draws of q(z), like rejections
    acc = (k == 0) & ans
    pos, rej, weak = (k == 0) & ~ans, k == 1, k == 2
    n0, n2 = int(pos.sum()), int(weak.sum())
    if n0 == 0 or n2 == 0:
        y = k == 0
        if not (~y).any():
            return 1.0, 0.0, 0.5
        a, b = fit_platt(z, y)
        return a, b, float(np.clip(y.mean(), 1e-4, 0.5))
    scale = float(np.std(z)) or 1.0
    zs = z / scale
    lratio = math.log(n0 / n2)
    # start: balanced Platt, shifted to a prior of n0/(n0+n2)
    y0 = k == 0
    n_y = int(y0.sum())
    a0, b0 = fit_platt(z, y0, np.where(y0, 1.0 / n_y, 1.0 / max(len(z) - n_y, 1)))
    pi0 = 0.05
    theta0 = np.array([a0 * scale, b0 + logit(pi0), logit(pi0)])

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, b, lp = theta
        t = a * zs + b
        q = sigmoid(t)
        log_q = _log_sigmoid(t)
        log_pi = float(_log_sigmoid(np.array([lp]))[0])
        u = lratio - log_pi + log_q
        su = sigmoid(u)
        ll_pos = pu_weight * _log_sigmoid(u[pos]).sum()
        ll_weak = pu_weight * _log_sigmoid(-u[weak]).sum()
        ll_rej = _log_sigmoid(-t[rej]).sum() + log_q[acc].sum()
        # d/du: pos 1-su, weak -su; du/dt = 1-q; du/dlp = -(1-pi)
        du = pu_weight * (np.where(pos, 1 - su, 0.0) + np.where(weak, -su, 0.0))
        dt = du * (1 - q) + np.where(rej, -q, 0.0) + np.where(acc, 1 - q, 0.0)
        pi = math.exp(log_pi)
        grad = -np.array([float(dt @ zs), float(dt.sum()), float(-du.sum() * (1 - pi))])
        # a weak pull of logit π towards 5 % keeps it finite without evidence of saturation
        grad[2] += 0.02 * (lp - logit(pi0))
        reg = 0.01 * (lp - logit(pi0)) ** 2
        return float(-(ll_pos + ll_weak + ll_rej)) + reg, grad

    theta = _lbfgs(fun, theta0, max_iter, 1e-6)
    a, b, lp = theta
    pi = float(np.clip(1.0 / (1.0 + math.exp(-lp)), 1e-4, 0.9))
    return float(a / scale), float(b), pi


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney, ties count half). Against unlabelled
    negatives that hide positives it is an affine function of the true AUC, so it ranks
    models correctly where average precision is swamped by the hidden positives."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def fit_logistic_1d(
    z: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    *,
    slope_ridge: float = 0.0,
    max_iter: int = 50,
) -> tuple[float, float]:
    """(a, b) maximising Σ w·log-likelihood of y ~ Bernoulli(sigmoid(a·z + b)) minus
    slope_ridge/2·(a·sd(z))² (Newton). Unsmoothed targets: the ridge is what keeps a
    separable set finite."""
    z = np.asarray(z, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    scale = float(np.sqrt(np.average((z - np.average(z, weights=w)) ** 2, weights=w))) or 1.0
    zs = z / scale
    a, b = 1.0, 0.0

    def loss(a: float, b: float) -> float:
        u = a * zs + b
        ll = float(np.sum(w * (t * u - np.logaddexp(0.0, u))))
        return -ll + 0.5 * slope_ridge * a * a

    cur = loss(a, b)
    for _ in range(max_iter):
        p = sigmoid(a * zs + b)
        r = w * (p - t)
        g = np.array([np.sum(r * zs) + slope_ridge * a, np.sum(r)])
        h = w * p * (1 - p)
        H = np.array(
            [[np.sum(h * zs * zs) + slope_ridge, np.sum(h * zs)], [np.sum(h * zs), np.sum(h)]]
        )
        H += np.eye(2) * 1e-9 * (1 + np.trace(H))
        step = np.linalg.solve(H, g)
        lam = 1.0
        while lam > 1e-8:
            na, nb = a - lam * step[0], b - lam * step[1]
            new = loss(na, nb)
            if new <= cur + 1e-12:
                break
            lam /= 2
        else:
            break
        done = cur - new < 1e-10 * (1 + abs(new))
        a, b, cur = na, nb, new
        if done:
            break
    return float(a / scale), float(b)


def fit_answer_platt(
    logits: np.ndarray,
    kind: np.ndarray,
    answered: np.ndarray,
    *,
    slope_ridge: float = 0.05,
    low_weight: float = 1.0,
) -> tuple[float, float, float] | None:
    """(a, b, π): Platt scaling on the review answers — the user's answers to questions
    chosen by score are draws of P(label | score), whatever chose them — plus the lower
    half of the uniform unlabelled rows (kind 2) as negatives of weight `low_weight`
    (below the median score nearly every item is a negative: they pin the lower tail),
    and π the mean calibrated probability of the unlabelled rows. None without an
    accepted and a rejected answer."""
    z = np.asarray(logits, dtype=np.float64)
    k = np.asarray(kind)
    ans = np.asarray(answered, dtype=bool) & (k != 2)
    y = k[ans] == 0
    if not y.any() or y.all():
        return None
    weak = k == 2
    zw = z[weak]
    low = zw[zw <= np.median(zw)] if weak.any() else zw
    zz = np.r_[z[ans], low]
    yy = np.r_[y, np.zeros(len(low), dtype=bool)]
    ww = np.r_[np.ones(int(ans.sum())), np.full(len(low), low_weight)]
    a, b = fit_logistic_1d(zz, yy, ww, slope_ridge=slope_ridge)
    pi = float(np.mean(sigmoid(a * zw + b))) if weak.any() else float(y.mean())
    return a, b, float(np.clip(pi, 1e-4, 0.9))
