"""The batch job's REST model fetch (ml/inference/rest_fetch.py) against MLflow with basic-auth,
as the local platform runs it: a persona's credentials fetch, wrong ones fall back to MLflow (~10 s)."""

from __future__ import annotations

import mlflow
import mlflow.sklearn
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from ml.inference import rest_fetch
from tests.bundles.conftest import ADMIN

NAME = "rest-fetch-auth-test"


@pytest.fixture(scope="module")
def registered(mlflow_server):
    url, creds = mlflow_server
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
        mp.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
        mlflow.set_tracking_uri(url)
        mlflow.set_experiment("rest-fetch-auth")
        model = LogisticRegression().fit(np.arange(20.0).reshape(-1, 1), np.arange(20) % 2)
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(model, name="model", registered_model_name=NAME,
                                            serialization_format="skops", skops_trusted_types=[])
        mlflow.MlflowClient().set_registered_model_alias(NAME, "champion", str(info.registered_model_version))
    return url, creds, str(info.registered_model_version)


def test_a_persona_fetches_over_rest_and_a_wrong_password_is_left_to_mlflow(registered, tmp_path):
    url, creds, version = registered
    ci = {"MLFLOW_TRACKING_URI": url, "MLFLOW_TRACKING_USERNAME": creds["ci"].username,
          "MLFLOW_TRACKING_PASSWORD": creds["ci"].password}
    answer = rest_fetch.fetch(NAME, None, "champion", str(tmp_path / "ci"), ci)
    assert answer is not None and answer["version"] == version and (tmp_path / "ci" / "model.skops").is_file()
    wrong = {**ci, "MLFLOW_TRACKING_PASSWORD": "not-it"}
    assert rest_fetch.fetch(NAME, None, "champion", str(tmp_path / "wrong"), wrong) is None
    assert rest_fetch.fetch(NAME, None, "champion", str(tmp_path / "anon"), {"MLFLOW_TRACKING_URI": url}) is None
