"""Loading a served model version and scoring a feature frame with it.

A version is a model of the env's BentoML model store (`bentoml:<tag>`: what environments
serve; `deploy_model` imports each champion there, `ml.serving.deploy.materialize` any other
version that is rolled out) or an MLflow model (a local copy, else its `models:/` URI: tests and
tools). The store is `$BENTOML_HOME` of the serving process (the env's `storage.bentos`).
mlflow and bentoml are imported lazily (they take seconds) so the endpoint answers health
checks at once.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.serving.endpoint_config import ServedModel

_load_lock = threading.Lock()
BENTOML_SCHEME = "bentoml:"


def bentoml_uri(tag: str) -> str:
    return f"{BENTOML_SCHEME}{tag}"


def bentoml_tag(uri: str) -> str | None:
    """The BentoML model tag of a `bentoml:<tag>` URI, else None."""
    return uri[len(BENTOML_SCHEME):] if uri.startswith(BENTOML_SCHEME) else None


@dataclass
class LoadedModel:
    spec: ServedModel
    model: Any
    columns: list[str] | None
    has_proba: bool
    loaded_in_s: float = 0.0
    extra: dict = field(default_factory=dict)
    # feature columns (name -> array) -> scores without a DataFrame (`ml.serving.compiled`), set by the
    # engine once checked equal to `predict_proba`; None: `predict_proba` on a frame
    compiled: Any = None

    @property
    def version(self) -> str:
        return self.spec.version

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """The score per row: classification, the class-1 column of predict_proba; else the prediction."""
        frame = features[self.columns] if self.columns else features
        if self.has_proba:
            return np.asarray(self.model.predict_proba(frame))[:, 1]
        return np.asarray(self.model.predict(frame), dtype=float).reshape(-1)


def _signature_columns(source: str) -> list[str] | None:
    from mlflow.models import get_model_info

    try:
        sig = get_model_info(source).signature
    except Exception:
        return None
    if sig is None or sig.inputs is None:
        return None
    names = sig.inputs.input_names()
    return [n for n in names if isinstance(n, str)] or None


def load(spec: ServedModel) -> LoadedModel:
    """Load a model fully (and warm it up) before anyone routes traffic to it."""
    started = time.perf_counter()
    tag = bentoml_tag(spec.uri)
    if tag is not None:
        return _load_bentoml(spec, tag, started)
    import mlflow.pyfunc

    source = spec.path if spec.path and Path(spec.path).exists() else spec.uri
    with _load_lock:  # mlflow's loaders are not all thread-safe
        columns = _signature_columns(source)
        try:
            import mlflow.sklearn

            model = mlflow.sklearn.load_model(source)
            has_proba = hasattr(model, "predict_proba")
        except Exception:
            model = mlflow.pyfunc.load_model(source)
            has_proba = False
    return LoadedModel(spec=spec, model=model, columns=columns, has_proba=has_proba,
                       loaded_in_s=time.perf_counter() - started)


def _load_bentoml(spec: ServedModel, tag: str, started: float) -> LoadedModel:
    """A scikit-learn model of the BentoML store. Its input columns are those of the MLflow
    signature, kept in the model's metadata when it was imported; without them the engine gives
    it the feature columns of its endpoint's use case (those training used)."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        with _load_lock:
            stored = bentoml.models.get(tag)
            model = bentoml.sklearn.load_model(stored)
    except NotFound:
        from ml.serving.errors import ServingError

        raise ServingError(f"model {tag} is not in this endpoint's BentoML store "
                           f"(BENTOML_HOME={os.environ.get('BENTOML_HOME', '~/bentoml')})") from None
    columns = stored.info.metadata.get("columns") or None
    return LoadedModel(spec=spec, model=model, columns=list(columns) if columns else None,
                       has_proba=hasattr(model, "predict_proba"), loaded_in_s=time.perf_counter() - started,
                       extra={"bentoml_model": str(stored.tag)})
