"""Figures logged with every training run, by task type (classification: ROC, PR, confusion
matrix; regression: predicted vs actual, residuals) and permutation feature importance."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

# The scorer permutation importance measures the drop of, by task type.
IMPORTANCE_SCORING = {"binary_classification": ("roc_auc", "ROC AUC"),
                      "regression": ("neg_root_mean_squared_error", "-RMSE")}


def roc(y, proba):
    fig, ax = plt.subplots(figsize=(5, 4))
    RocCurveDisplay.from_predictions(y, proba, ax=ax, name="model")
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
    ax.set_title("ROC curve (held-out)")
    fig.tight_layout()
    return fig


def pr(y, proba):
    fig, ax = plt.subplots(figsize=(5, 4))
    PrecisionRecallDisplay.from_predictions(y, proba, ax=ax, name="model")
    ax.axhline(float(np.mean(y)), ls="--", color="grey", lw=1, label="base rate")
    ax.set_title("Precision-recall (held-out)")
    fig.tight_layout()
    return fig


def confusion(y, proba, threshold: float, labels: tuple[str, str] = ("negative", "positive")):
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ConfusionMatrixDisplay.from_predictions(y, (proba >= threshold).astype(int), display_labels=list(labels), ax=ax, colorbar=False)
    ax.set_title(f"Confusion matrix @ {threshold:g}")
    fig.tight_layout()
    return fig


def predicted_vs_actual(y, pred):
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(y, pred, s=6, alpha=0.5, color="#4878d0")
    lo, hi = float(np.min([np.min(y), np.min(pred)])), float(np.max([np.max(y), np.max(pred)]))
    ax.plot([lo, hi], [lo, hi], "--", color="grey", lw=1)
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title("Predicted vs actual (held-out)")
    fig.tight_layout()
    return fig


def residuals(y, pred):
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.hist(np.asarray(pred, dtype="float64") - np.asarray(y, dtype="float64"), bins=40, color="#4878d0")
    ax.set_xlabel("predicted - actual")
    ax.set_title("Residuals (held-out)")
    fig.tight_layout()
    return fig


def for_task(task: str, y, predicted, threshold: float, labels: tuple[str, str]) -> list[tuple[str, object]]:
    """(file name, figure) of the held-out evaluation plots of `task`."""
    if task == "binary_classification":
        return [("roc_curve.png", roc(y, predicted)), ("pr_curve.png", pr(y, predicted)),
                ("confusion_matrix.png", confusion(y, predicted, threshold, labels))]
    return [("predicted_vs_actual.png", predicted_vs_actual(y, predicted)), ("residuals.png", residuals(y, predicted))]


def feature_importance(model, test: pd.DataFrame, features: list[str], label: str, task: str, sample: int,
                       seed: int) -> tuple[object, dict[str, float]]:
    """Permutation importance (drop in the task's score) — model-agnostic, on a held-out sample."""
    scoring, shown = IMPORTANCE_SCORING[task]
    data = test.sample(n=min(sample, len(test)), random_state=seed) if len(test) > sample else test
    result = permutation_importance(model, data[features], data[label], scoring=scoring, n_repeats=3, random_state=seed)
    importance = dict(zip(features, result.importances_mean.round(5).tolist()))
    order = sorted(importance, key=importance.get)
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.barh(order, [importance[f] for f in order], color="#4878d0")
    ax.set_xlabel(f"drop in {shown} when shuffled")
    ax.set_title("Feature importance (permutation)")
    fig.tight_layout()
    return fig, importance


def close(fig) -> None:
    plt.close(fig)
