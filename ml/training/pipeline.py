"""The fraud classifier and how it is judged — shared by training, validation and deployment.

Everything that scores a model (train metrics, validation gates, champion vs
challenger) goes through `evaluate`, so the numbers are comparable across steps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, f1_score, log_loss, precision_score, recall_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from ml.config import TrainParams
from ml.data.generate import CATEGORY_NAMES
from ml.features import CATEGORICAL_FEATURES, FEATURES, LABEL, NUMERIC_FEATURES


def split(gold: pd.DataFrame, test_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Time-based split: the most recent `test_fraction` of transactions is held out.

    Fraud models are used on the future, so they are judged on the future.
    """
    ordered = gold.sort_values(["timestamp", "transaction_id"], kind="stable")
    cut = int(round(len(ordered) * (1.0 - test_fraction)))
    return ordered.iloc[:cut].reset_index(drop=True), ordered.iloc[cut:].reset_index(drop=True)


def build_pipeline(p: TrainParams) -> Pipeline:
    categories = OneHotEncoder(categories=[CATEGORY_NAMES], handle_unknown="ignore", sparse_output=False)
    if p.model_type == "logistic_regression":
        numeric = Pipeline([("log", FunctionTransformer(np.log1p, feature_names_out="one-to-one")), ("scale", StandardScaler())])
        model = LogisticRegression(C=p.C, max_iter=1000, random_state=p.random_state)
    else:
        numeric = "passthrough"
        model = HistGradientBoostingClassifier(
            learning_rate=p.learning_rate,
            max_iter=p.max_iter,
            max_depth=p.max_depth,
            max_leaf_nodes=p.max_leaf_nodes,
            min_samples_leaf=p.min_samples_leaf,
            l2_regularization=p.l2_regularization,
            early_stopping=False,
            random_state=p.random_state,
        )
    features = ColumnTransformer(
        [("category", categories, CATEGORICAL_FEATURES), ("numeric", numeric, NUMERIC_FEATURES)],
        verbose_feature_names_out=False,
    )
    return Pipeline([("features", features), ("model", model)])


def fit(p: TrainParams, train: pd.DataFrame) -> Pipeline:
    pipe = build_pipeline(p)
    pipe.fit(train[FEATURES], train[LABEL].to_numpy())
    return pipe


def fraud_probability(model, X: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(X[FEATURES])[:, 1]


def scores(y: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
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


def evaluate(model, data: pd.DataFrame, threshold: float) -> dict[str, float]:
    return scores(data[LABEL].to_numpy(), fraud_probability(model, data), threshold)


def slice_scores(model, data: pd.DataFrame, column: str, threshold: float, min_positives: int) -> dict[str, dict]:
    """Metrics per value of `column`; slices with too few positives are reported, not judged."""
    proba = fraud_probability(model, data)
    out: dict[str, dict] = {}
    for value, idx in data.groupby(column, observed=True).indices.items():
        y = data[LABEL].to_numpy()[idx]
        positives = int(y.sum())
        entry: dict = {"rows": int(len(idx)), "positives": positives}
        if positives >= min_positives and positives < len(idx):
            entry.update(scores(y, proba[idx], threshold))
        out[str(value)] = entry
    return out
