"""Metrics by task type: what is computed, which way is better, what is compared by default.

Every step that scores a model (train, validate_model, deploy_model, slices) goes through
`scores`, so numbers are comparable across steps. Classification scores the probability of
the positive class (and a thresholded decision for F1/precision/recall); regression scores
the predicted value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TaskMetrics:
    names: tuple[str, ...]
    higher_is_better: frozenset[str]
    primary: str  # the default champion-vs-challenger metric
    compared: tuple[str, ...]  # the default no-regression metrics

    def better(self, metric: str) -> str:
        """`higher` or `lower`."""
        return "higher" if metric in self.higher_is_better else "lower"


TASK_METRICS: dict[str, TaskMetrics] = {
    "binary_classification": TaskMetrics(
        names=("roc_auc", "pr_auc", "f1", "precision", "recall", "log_loss"),
        higher_is_better=frozenset({"roc_auc", "pr_auc", "f1", "precision", "recall"}),
        primary="pr_auc", compared=("roc_auc", "pr_auc"),
    ),
    "regression": TaskMetrics(
        names=("rmse", "mae", "r2"), higher_is_better=frozenset({"r2"}), primary="rmse", compared=("rmse", "mae"),
    ),
}


def for_task(task: str) -> TaskMetrics:
    return TASK_METRICS[task]


def higher_is_better(task: str, metric: str) -> bool:
    return metric in TASK_METRICS[task].higher_is_better


def classification_scores(y: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
    from sklearn.metrics import (
        average_precision_score,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    pred = (proba >= threshold).astype(int)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, proba)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, proba)) if both else float("nan"),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "log_loss": float(log_loss(y, np.clip(proba, 1e-7, 1 - 1e-7), labels=[0, 1])),
    }


def regression_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y, pred = np.asarray(y, dtype="float64"), np.asarray(pred, dtype="float64")
    return {
        "rmse": float(np.sqrt(mean_squared_error(y, pred))),
        "mae": float(mean_absolute_error(y, pred)),
        "r2": float(r2_score(y, pred)) if len(y) > 1 else float("nan"),
    }


def scores(task: str, y: np.ndarray, predicted: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """The task type's metrics of `predicted` (classification: probabilities) against `y`."""
    if task == "binary_classification":
        return classification_scores(y, predicted, threshold)
    return regression_scores(y, predicted)


def passes(task: str, gate: str, value: float, threshold: float) -> bool:
    """Whether `value` meets gate `min_<metric>` (>=) or `max_<metric>` (<=)."""
    return value >= threshold if gate.startswith("min_") else value <= threshold


def relative_change(task: str, metric: str, value: float, base: float) -> float:
    """How much better (+) or worse (-) `value` is than `base`, relative to `base`."""
    if not base:
        return 0.0
    change = (value - base) / abs(base)
    return change if higher_is_better(task, metric) else -change


def improvement(task: str, metric: str, new: float, old: float) -> float:
    """How much better `new` is than `old`, in the metric's units: + is better, whichever way
    the metric points (an RMSE going from 60 to 55 is an improvement of +5)."""
    return new - old if higher_is_better(task, metric) else old - new


def beats(task: str, metric: str, new: float, old: float, margin: float = 0.0) -> bool:
    """Whether `new` is better than `old` by at least `margin` (`deployment.min_improvement`), in
    the metric's units; a tie is never better, whatever the margin, and NaN never beats."""
    gain = improvement(task, metric, new, old)
    return gain == gain and gain > 0 and gain >= margin


def meets(task: str, metric: str, value: float, bound: float) -> bool:
    """Whether `value` is at least as good as `bound` (>= for ↑ metrics, <= for ↓ ones); NaN never does."""
    if value != value:
        return False
    return value >= bound if higher_is_better(task, metric) else value <= bound


def bound_operator(task: str, metric: str) -> str:
    """The operator a value must satisfy against a bound: `>=` or `<=`."""
    return ">=" if higher_is_better(task, metric) else "<="
