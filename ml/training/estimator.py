"""Fitting and scoring a use case's estimator — shared by training, validation and deployment.

Everything that scores a model (train metrics, validation gates, champion vs challenger,
slices) goes through `evaluate`, so the numbers are comparable across steps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.config import TrainParams
from ml.usecase import UseCase
from ml.usecase.metrics import scores


def split(uc: UseCase, gold: pd.DataFrame, test_fraction: float, seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Held-out split: the most recent `test_fraction` of rows when the dataset has a timestamp
    (models are used on the future, so they are judged on the future), else a seeded random share."""
    if uc.timestamp is not None:
        ordered = gold.sort_values([uc.timestamp, uc.id_column], kind="stable")
        cut = int(round(len(ordered) * (1.0 - test_fraction)))
        return ordered.iloc[:cut].reset_index(drop=True), ordered.iloc[cut:].reset_index(drop=True)
    test_mask = np.zeros(len(gold), dtype=bool)
    n_test = int(round(len(gold) * test_fraction))
    test_mask[np.random.default_rng(seed).permutation(len(gold))[:n_test]] = True
    return gold[~test_mask].reset_index(drop=True), gold[test_mask].reset_index(drop=True)


def fit(uc: UseCase, p: TrainParams, train: pd.DataFrame):
    model = uc.estimator(p)
    model.fit(train[uc.feature_names], train[uc.label].to_numpy())
    return model


def predict(uc: UseCase, model, X: pd.DataFrame) -> np.ndarray:
    """What the metrics score: the positive-class probability (classification) or the prediction."""
    if uc.is_classification:
        return model.predict_proba(X[uc.feature_names])[:, 1]
    return np.asarray(model.predict(X[uc.feature_names]), dtype="float64")


def evaluate(uc: UseCase, model, data: pd.DataFrame, threshold: float) -> dict[str, float]:
    return scores(uc.task, data[uc.label].to_numpy(), predict(uc, model, data), threshold)


def enough_evidence(uc: UseCase, y: np.ndarray, minimum: int) -> bool:
    """Whether labels `y` can judge a model: `minimum` positives and a negative (classification), `minimum` rows (regression)."""
    if uc.is_classification:
        positives = int(np.sum(y))
        return positives >= minimum and positives < len(y)
    return len(y) >= minimum


def slice_scores(uc: UseCase, model, data: pd.DataFrame, column: str, threshold: float, min_positives: int) -> dict[str, dict]:
    """Metrics per value of `column`; slices with too little evidence are reported, not judged."""
    predicted = predict(uc, model, data)
    labels = data[uc.label].to_numpy()
    out: dict[str, dict] = {}
    for value, idx in data.groupby(column, observed=True).indices.items():
        y = labels[idx]
        entry: dict = {"rows": int(len(idx))}
        if uc.is_classification:
            entry["positives"] = int(y.sum())
        if enough_evidence(uc, y, min_positives):
            entry.update(scores(uc.task, y, predicted[idx], threshold))
        out[str(value)] = entry
    return out
