"""Helpers for serving tests: tiny real models and a real `bentoml serve` endpoint on loopback."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-serving-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(path: Path, *, seed: int, kind: str = "good") -> Path:
    """A small fraud model saved in MLflow format; `broken`/`slow` misbehave at predict time only."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    from ml.data.generate import generate_transactions
    from ml.features import FEATURES, LABEL, build_features

    raw = generate_transactions(3000, seed=seed, days=14)
    X, y = build_features(raw)[FEATURES], raw[LABEL]
    state = {"armed": False}

    def misbehave(frame):
        if state["armed"] and kind == "broken":
            raise RuntimeError("deliberately broken challenger")
        if state["armed"] and kind == "slow":
            time.sleep(0.3)
        return frame

    steps = [("misbehave", FunctionTransformer(misbehave, validate=False))] if kind != "good" else []
    pipe = Pipeline([
        *steps,
        ("prep", ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["merchant_category"])],
                                   remainder="passthrough")),
        ("clf", LogisticRegression(max_iter=1000, C=0.5 if seed % 2 else 2.0)),
    ]).fit(X, y)
    signature = infer_signature(X, pipe.predict_proba(X)[:, 1])
    state["armed"] = True
    # a custom function cannot go through skops' safe format; cloudpickle is what a user would pick too
    fmt = {"serialization_format": "cloudpickle"} if kind != "good" else {}
    mlflow.sklearn.save_model(pipe, str(path), signature=signature, **fmt)
    return path


