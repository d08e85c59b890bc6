"""Few-shot labels (models/classify): exact bounds, folds, the prior, thresholds, the
review queue and Head storage, on numpy-only synthetic data."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from models.classify import (
    Evidence,
    Head,
    LabelData,
    TrainConfig,
    audited_precision,
    choose_threshold,
    clopper_pearson_lower,
    enough_evidence,
    evaluate_recipe,
    fold_of,
    select_review,
    train_label,
)
from models.classify.calibration import candidate_threshold

D = 64


def _unit(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def _world(
    seed: int = 0, n: int = 3000, prevalence: float = 0.08
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items around 12 cluster centres; cluster 0 is the label. (X, y, ids)."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(12, D)))
    y = rng.random(n) < prevalence
    k = np.where(y, 0, rng.integers(1, 12, n))
    X = _unit(centres[k] + 0.12 * rng.normal(size=(n, D)))
    ids = rng.permutation(n).astype(np.int64) * 13 + 7
    return X, y, ids


def _data(
    X: np.ndarray,
    y: np.ndarray,
    ids: np.ndarray,
    n_pos: int,
    n_neg: int,
    seed: int = 0,
    prior: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> tuple[LabelData, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = y if labels is None else labels
    P = rng.choice(np.nonzero(truth)[0], n_pos, replace=False)
    N = rng.choice(np.nonzero(~truth)[0], n_neg, replace=False)
    rest = np.setdiff1d(np.arange(len(X)), np.r_[P, N])
    U = rng.choice(rest, 400, replace=False)
    data = LabelData(X[P], X[N], X[U], ids[P], ids[N], ids[U], prior=prior)
    return data, rest


def test_clopper_pearson_matches_known_values() -> None:
    assert clopper_pearson_lower(59, 59) == pytest.approx(0.9505, abs=1e-4)
    assert clopper_pearson_lower(0, 10) == 0.0
    assert clopper_pearson_lower(10, 10) == pytest.approx(0.7411, abs=1e-4)
    assert clopper_pearson_lower(0, 0) == 0.0
    # 8/10 at 95 % one-sided: beta.ppf(0.05, 8, 3) = 0.4931
    assert clopper_pearson_lower(8, 10) == pytest.approx(0.4931, abs=1e-3)
    assert clopper_pearson_lower(95, 100) == pytest.approx(0.8979, abs=1e-3)
    point, lower = audited_precision(29, 1)
    assert point == pytest.approx(29 / 30) and 0.84 < lower < 0.86
    assert audited_precision(0, 0) == (None, 0.0)


def test_folds_are_a_fixed_function_of_the_ids() -> None:
    ids = np.arange(1000, dtype=np.int64) * 31 + 5
    folds = fold_of(ids, 5)
    perm = np.random.default_rng(1).permutation(1000)
    assert np.array_equal(fold_of(ids[perm], 5), folds[perm])
    assert np.array_equal(fold_of(ids, 5), folds)
    counts = np.bincount(folds, minlength=5)
    assert counts.min() > 150  # spread evenly
    # and training sees the same folds in any row order
    X, y, key = _world()
    data, _ = _data(X, y, key, 12, 6)
    shuffled = LabelData(
        data.positives[::-1],
        data.negatives[::-1],
        data.unlabelled[::-1],
        data.positive_keys[::-1],
        data.negative_keys[::-1],
        data.unlabelled_keys[::-1],
    )
    a = evaluate_recipe(data, {"reg": 0.1})
    b = evaluate_recipe(shuffled, {"reg": 0.1})
    assert a["auc"] == pytest.approx(b["auc"], abs=1e-6)


def test_prior_dominates_with_few_examples_and_data_with_many() -> None:
    X, y, ids = _world(seed=3, prevalence=0.15)
    true_dir = _unit(X[y].mean(axis=0, keepdims=True))[0]
    # a prior that points half-way to a wrong cluster
    rng = np.random.default_rng(5)
    wrong = _unit(rng.normal(size=(1, D)))[0]
    prior = _unit((true_dir + 1.2 * wrong)[None])[0]

    def cos(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    few, _ = _data(X, y, ids, 3, 0, prior=prior)
    w_few = train_label(few).head.w
    many, _ = _data(X, y, ids, 120, 40, prior=prior)
    w_many = train_label(many).head.w
    # with 3 examples the prior is a large part of the weights ...
    assert cos(w_few, prior) > 0.5
    # ... with 120 examples the data: nearer the truth than the prior is, and than before
    assert cos(w_many, true_dir) > cos(prior, true_dir) + 0.1
    assert cos(w_many, true_dir) > cos(w_few, true_dir) + 0.02


def test_threshold_is_none_with_too_little_evidence() -> None:
    X, y, ids = _world()
    data, rest = _data(X, y, ids, 5, 0)
    result = train_label(data)
    ok, why = enough_evidence(data, result.metrics)
    assert not ok and "rejected" in why
    proba = result.head.proba(X[rest])
    choice = choose_threshold(proba, 0.95, evidence=Evidence(ok, why))
    assert choice.threshold is None and "suggestions only" in choice.reason.lower()
    # nothing likely enough: None too
    assert choose_threshold(np.full(100, 0.3), 0.95).threshold is None
    # audits that clearly fail the target veto automatic labels
    sure = np.r_[np.full(50, 0.99), np.full(500, 0.01)]
    assert choose_threshold(sure, 0.95, evidence=Evidence(True, "")).threshold is not None
    assert choose_threshold(sure, 0.95, evidence=Evidence(True, "", 10, 10)).threshold is None


def test_threshold_with_enough_evidence_on_a_separable_pool() -> None:
    X, y, ids = _world()
    # enough evidence and a separable pool: a threshold whose estimate meets the target
    data0, rest2 = _data(X, y, ids, 20, 10)
    # 5 examples the user picked, 15 accepted and 10 rejected review answers
    answered = np.arange(20) >= 5
    data2 = dataclasses.replace(
        data0, positive_from_review=answered, negative_from_review=np.ones(10, bool)
    )
    r2 = train_label(data2)
    ok2, why2 = enough_evidence(data2, r2.metrics)
    assert ok2, why2
    p2 = r2.head.proba(X[rest2])
    c2 = choose_threshold(p2, 0.95, evidence=Evidence(ok2, why2))
    assert c2.threshold is not None and c2.estimated_precision is not None
    assert c2.estimated_precision >= 0.95
    realised = float(y[rest2][p2 >= c2.threshold].mean())
    assert realised >= 0.9


def test_select_review_has_no_near_duplicates_and_explains_itself() -> None:
    X, y, ids = _world(seed=2)
    rng = np.random.default_rng(0)
    # add exact and near duplicates of the top items
    X = np.concatenate([X, _unit(X[y][:40] + 0.001 * rng.normal(size=(40, D)))])
    y = np.r_[y, np.ones(40, bool)]
    ids = np.r_[ids, np.arange(40, dtype=np.int64) + 10**9]
    data, rest = _data(X, y, ids, 6, 0)
    head = train_label(data).head
    proba = head.proba(X[rest])
    for n_dec in (0, 30):
        out = select_review(
            X[rest], proba, 0.9 if n_dec else None, data.positives, n_dec, 20, rng=rng
        )
        assert len(out) == 20
        chosen = X[rest][[s.index for s in out]]
        sims = chosen @ chosen.T
        np.fill_diagonal(sims, 0)
        assert sims.max() <= 0.95
        for s in out:
            nearest = np.argsort(-(data.positives @ X[rest][s.index]))[:3]
            assert s.why == tuple(int(i) for i in nearest)
            assert s.score == pytest.approx(float(proba[s.index]))
        reasons = {s.reason for s in out}
        if n_dec == 0:
            assert "neighbour" in reasons
        else:
            assert {"threshold", "audit", "below"} <= reasons


def test_head_round_trips_and_scores_float16_in_chunks() -> None:
    X, y, ids = _world()
    data, rest = _data(X, y, ids, 10, 5)
    head = train_label(data).head
    back = Head.from_arrays(dict(np.load(_save(head))))
    X16 = X[rest].astype(np.float16)
    assert np.allclose(back.proba(X16), head.proba(X16), atol=1e-6)
    assert np.allclose(head.logits(X16, chunk=7), head.logits(X16), atol=1e-4)
    assert head.logits(X16).dtype == np.float32


def _save(head: Head) -> str:
    import io
    import tempfile

    del io
    path = tempfile.mktemp(suffix=".npz")
    np.savez(path, **head.to_arrays())  # type: ignore[arg-type]
    return path


def test_shuffled_labels_score_worse_on_the_same_folds() -> None:
    X, y, ids = _world(seed=4)
    data, _ = _data(X, y, ids, 30, 20)
    real = train_label(data)
    rng = np.random.default_rng(9)
    # the same rows, positives and rejections shuffled among each other
    rows = np.concatenate([data.positives, data.negatives])
    keys = np.concatenate([data.positive_keys, data.negative_keys])
    perm = rng.permutation(len(rows))
    corrupted = LabelData(
        rows[perm[:30]],
        rows[perm[30:]],
        data.unlabelled,
        keys[perm[:30]],
        keys[perm[30:]],
        data.unlabelled_keys,
    )
    bad = train_label(corrupted)
    good_m = evaluate_recipe(data, real.recipe)
    bad_m = evaluate_recipe(data, bad.recipe)  # the recipe only; real data's folds
    assert good_m["auc"] >= bad_m["auc"] - 1e-9
    # the corrupted training itself is measurably worse on its own held-out folds
    assert real.metrics["auc"] > bad.metrics["auc"] + 0.1
    assert real.metrics["ap"] > bad.metrics["ap"]
    assert math.isfinite(real.metrics["log_loss"])


def test_candidate_threshold_never_cuts_inside_a_tie() -> None:
    # 100 items at 1.0 and 1,900 at 0.0: cutting at the first 0.0 keeps the running mean
    # above 95 % but labels every tied item; the threshold must stay at 1.0
    p = np.r_[np.ones(100), np.zeros(1900)].astype(np.float32)
    t, est, count = candidate_threshold(p, 0.95)
    assert t == 1.0 and count == 100 and est == 1.0


def test_review_answers_calibrate_the_shown_precision() -> None:
    X, y, ids = _world(seed=6, prevalence=0.1)
    rng = np.random.default_rng(3)
    examples = rng.choice(np.nonzero(y)[0], 5, replace=False)
    first = train_label(_label_data(X, ids, examples, [], [], rng)).head
    # 30 answers to questions near the would-be threshold, as the queue asks them
    rest = np.setdiff1d(np.arange(len(X)), examples)
    p0 = first.proba(X[rest])
    asked = rest[np.argsort(np.abs(p0 - 0.5))[:30]]
    acc, rej = asked[y[asked]], asked[~y[asked]]
    data = _label_data(X, ids, np.r_[examples, acc], acc, rej, rng)
    result = train_label(data)
    und = np.setdiff1d(rest, asked)
    proba = result.head.proba(X[und])
    choice = choose_threshold(proba, 0.95)
    assert choice.threshold is not None and choice.estimated_precision is not None
    auto = proba >= choice.threshold
    realised = float(y[und][auto].mean())
    # the promise is kept (on this separable pool the answers' slope is ridge-limited:
    # cautious, never over-confident)
    assert choice.estimated_precision >= 0.95 and realised >= 0.95
    assert realised - choice.estimated_precision < 0.05
    # and it labels more than PU calibration on the same decisions
    pu = train_label(data, TrainConfig(calibration="pu")).head.proba(X[und])
    pu_choice = choose_threshold(pu, 0.95)
    pu_count = 0 if pu_choice.threshold is None else int(np.sum(pu >= pu_choice.threshold))
    assert int(auto.sum()) > pu_count
    # one flag per row, or an error
    with pytest.raises(ValueError):
        train_label(dataclasses.replace(data, positive_from_review=np.ones(3, bool)))


def _label_data(
    X: np.ndarray,
    ids: np.ndarray,
    pos: np.ndarray,
    accepted: np.ndarray,
    rejected: np.ndarray,
    rng: np.random.Generator,
) -> LabelData:
    pos, rej = np.asarray(pos, dtype=np.int64), np.asarray(rejected, dtype=np.int64)
    rest = np.setdiff1d(np.arange(len(X)), np.r_[pos, rej])
    U = rng.choice(rest, 400, replace=False)
    return LabelData(
        X[pos],
        X[rej],
        X[U],
        ids[pos],
        ids[rej],
        ids[U],
        positive_from_review=np.isin(pos, np.asarray(accepted, dtype=np.int64)),
        negative_from_review=np.ones(len(rej), dtype=bool),
    )


def test_marked_top_rows_are_not_weak_negatives_but_calibrate() -> None:
    # a small library with a common label (25 %): a uniform sample of half the undecided
    # items hides ~70 positives
    X, y, ids = _world(seed=7, n=600, prevalence=0.25)
    rng = np.random.default_rng(4)
    P = rng.choice(np.nonzero(y)[0], 12, replace=False)
    rest = np.setdiff1d(np.arange(len(X)), P)
    U = rng.choice(rest, len(rest) // 2, replace=False)
    # the engine's current scores (here the examples' centroid): top max(50, 5·12) marked
    current = X[rest] @ X[P].mean(axis=0)
    top_rows = rest[np.argsort(-current)[:60]]
    marked = np.isin(U, top_rows)
    assert marked.any() and y[U][marked].mean() > 0.9
    plain = LabelData(X[P], X[:0], X[U], ids[P], ids[:0], ids[U])
    with_top = dataclasses.replace(plain, unlabelled_top=marked)
    on = TrainConfig(use_top=True)
    a = train_label(plain, on)
    b = train_label(with_top, on)
    off = TrainConfig(use_top=False)
    assert np.array_equal(train_label(with_top, off).head.w, train_label(plain, off).head.w)
    from models.classify import average_precision

    und = np.setdiff1d(rest, U)
    ap_plain = average_precision(a.head.logits(X[und]), y[und])
    ap_top = average_precision(b.head.logits(X[und]), y[und])
    assert ap_top >= ap_plain - 1e-9
    # the marked rows are not trained on: the same data without them trains the same w
    dropped = LabelData(X[P], X[:0], X[U[~marked]], ids[P], ids[:0], ids[U[~marked]])
    assert np.allclose(train_label(dropped, on).head.w, b.head.w, atol=1e-5)
    # ... but they are in the uniform sample the prevalence is estimated on
    assert b.head.prevalence > train_label(dropped, on).head.prevalence
    assert b.metrics["n_weak"] == len(U)
    with pytest.raises(ValueError):
        train_label(dataclasses.replace(plain, unlabelled_top=np.ones(3, bool)), on)
