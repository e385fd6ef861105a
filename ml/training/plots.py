"""Figures logged with every training run: ROC, PR, confusion matrix, feature importance."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

from ml.features import FEATURES, LABEL


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


def confusion(y, proba, threshold: float):
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ConfusionMatrixDisplay.from_predictions(y, (proba >= threshold).astype(int), display_labels=["legit", "fraud"], ax=ax, colorbar=False)
    ax.set_title(f"Confusion matrix @ {threshold:g}")
    fig.tight_layout()
    return fig


def feature_importance(model, test: pd.DataFrame, sample: int, seed: int) -> tuple[object, dict[str, float]]:
    """Permutation importance (drop in ROC AUC) — model-agnostic, on a held-out sample."""
    data = test.sample(n=min(sample, len(test)), random_state=seed) if len(test) > sample else test
    result = permutation_importance(model, data[FEATURES], data[LABEL], scoring="roc_auc", n_repeats=3, random_state=seed)
    importance = dict(zip(FEATURES, result.importances_mean.round(5).tolist()))
    order = sorted(importance, key=importance.get)
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.barh(order, [importance[f] for f in order], color="#4878d0")
    ax.set_xlabel("drop in ROC AUC when shuffled")
    ax.set_title("Feature importance (permutation)")
    fig.tight_layout()
    return fig, importance


def close(fig) -> None:
    plt.close(fig)
