"""What the benchmarks take from the use case, in one place: rows, features, the estimator.

The harness (servers, load tools, profiles, tables) names no column and no model; it asks
the project's default use case (`ml.usecase.load_use_case`) through these few functions,
so a benchmark of another use case needs no change here.
"""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from ml.usecase import UseCase, load_use_case


@cache
def use_case() -> UseCase:
    return load_use_case()


def params(overrides: list[str] | None = None):
    return use_case().load_params(overrides or [])


def transactions(rows: int, seed: int) -> pd.DataFrame:
    """Raw rows from the use case's own generator (label included)."""
    return use_case().generate(params([f"data.rows={rows}", f"data.seed={seed}", "data.subset=1.0"]).data)


def model_input(raw: pd.DataFrame) -> pd.DataFrame:
    """The frame the model takes: the declared features computed from raw rows."""
    return use_case().build_features(raw)


def request_columns() -> list[str]:
    return use_case().request_columns


def fit(raw: pd.DataFrame):
    """A fitted estimator of the job's factory and params on all of `raw`."""
    uc = use_case()
    return uc.estimator(params().train).fit(uc.build_features(raw), raw[uc.label].to_numpy())


def floor(raw: pd.DataFrame) -> dict[str, float]:
    """The training job's floor on `raw`, in process: features → time split → fit → predict (seconds)."""
    uc, p = use_case(), params()
    t0 = time.perf_counter()
    features = uc.build_features(raw)
    t1 = time.perf_counter()
    order = raw[uc.timestamp].to_numpy().argsort(kind="stable") if uc.timestamp else np.arange(len(raw))
    cut = int(round(len(raw) * (1.0 - p.split.test_fraction)))
    train, test = order[:cut], order[cut:]
    X, y = features.iloc[train], raw[uc.label].to_numpy()[train]
    t2 = time.perf_counter()
    model = uc.estimator(p.train).fit(X, y)
    t3 = time.perf_counter()
    model.predict_proba(features.iloc[test])
    t4 = time.perf_counter()
    return {"features_s": t1 - t0, "split_s": t2 - t1, "fit_s": t3 - t2, "predict_s": t4 - t3, "train_rows": cut}


def save_small_model(dest: Path, rows: int = 5000) -> Path:
    """An MLflow sklearn model of the job's estimator and params, fitted on `rows` generated rows."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    raw = transactions(rows, seed=3)
    model, X = fit(raw), model_input(raw)
    trusted = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
    mlflow.sklearn.save_model(model, str(dest), signature=infer_signature(X, model.predict_proba(X)),
                              input_example=X.head(5), pyfunc_predict_fn="predict_proba", skops_trusted_types=trusted)
    return dest
