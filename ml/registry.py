"""Small helpers over the MLflow model registry (aliases, version lookup, held-out data)."""

from __future__ import annotations

import pandas as pd

from ml.config import Params
from ml.data.versioning import read_version, workspace_for
from ml.errors import TaskError
from ml.training.estimator import read_training_table, split
from ml.usecase import UseCase, load_use_case

CHAMPION = "champion"
CHALLENGER = "challenger"
VALIDATION_TAG = "model_validation_status"
POINTER = "champion.json"


def champion_pointer(models_dir, registered_model: str):
    """Where `deploy_model` writes the champion pointer of one registered model:
    `<storage.models>/<registered model>/champion.json` — one per use case (registered model)
    per env, so two use cases in one env never overwrite each other's. The one place this
    path is computed; readers call it too."""
    from pathlib import Path

    if not registered_model or "/" in registered_model or "\\" in registered_model or registered_model in (".", ".."):
        raise TaskError(f"registered model name {registered_model!r} cannot name a directory")
    return Path(models_dir) / registered_model / POINTER


def parse_uri(uri: str) -> tuple[str, str]:
    """`models:/<name>/<version>` → (name, version); TaskError for any other shape."""
    if not uri.startswith("models:/") or uri.count("/") != 2:
        raise TaskError(f"model URI {uri!r} must look like models:/<name>/<version>")
    name, version = uri[len("models:/"):].split("/")
    return name, version


def alias_version(client, name: str, alias: str):
    """The model version holding `alias`, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def load_model(name: str, version: str):
    import mlflow.sklearn

    return mlflow.sklearn.load_model(f"models:/{name}/{version}")


def held_out(ctx, params: Params, data_version: str, usecase: UseCase | None = None) -> pd.DataFrame:
    """The held-out slice of a data version — what every comparison uses (the use case: `usecase`,
    else the one `params` were loaded for)."""
    uc = usecase or load_use_case(params.use_case)
    ws, remote = workspace_for(ctx, uc.name)
    gold = read_training_table(uc, read_version(ws, remote, data_version))  # the columns scoring uses
    return split(uc, gold, params.split.test_fraction, params.split.seed)[1]
