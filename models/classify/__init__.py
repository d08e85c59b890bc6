"""Few-shot labels: a per-label classifier on stored embeddings, calibrated thresholds
that keep a precision promise, and the review queue. numpy only; no Qt, no catalog."""

from models.classify.calibration import (
    Evidence,
    ThresholdChoice,
    audited_precision,
    average_precision,
    choose_threshold,
    clopper_pearson_lower,
    clopper_pearson_upper,
    estimate_prevalence,
    fit_platt,
)
from models.classify.fewshot import (
    Head,
    LabelData,
    TrainConfig,
    TrainResult,
    enough_evidence,
    evaluate_recipe,
    fold_of,
    train_label,
)
from models.classify.review import Suggestion, select_review

__all__ = [
    "Evidence",
    "Head",
    "LabelData",
    "Suggestion",
    "ThresholdChoice",
    "TrainConfig",
    "TrainResult",
    "audited_precision",
    "average_precision",
    "choose_threshold",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "enough_evidence",
    "estimate_prevalence",
    "evaluate_recipe",
    "fit_platt",
    "fold_of",
    "select_review",
    "train_label",
]
