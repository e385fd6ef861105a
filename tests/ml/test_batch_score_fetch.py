"""The batch job's model comes from a second process (ml/inference/fetch.py) and loads as MLflow loads it.

Real MLflow server; one small fraud pipeline registered as the `champion` of env `fetchtest`,
then the `batch_score` task run against it once (~15 s in all).
"""

from __future__ import annotations

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest

from ml import task
from ml.inference import fetch
from ml.training.train import TRUSTED_TYPES
from ml.usecase import load_use_case
from tests.ml.harness import MlEnv, new_run_id
from usecases.fraud.generate import generate_transactions

NAME = "fraud-detector-fetchtest"  # the fraud use case's registered name in env `fetchtest`


@pytest.fixture(scope="module")
def registered(mlflow_server):
    uc = load_use_case("fraud")
    train = generate_transactions(2000, seed=11)
    model = uc.estimator(uc.load_params([]).train).fit(uc.build_features(train), train[uc.label].to_numpy())
    mlflow.set_tracking_uri(mlflow_server.uri)
    mlflow.set_experiment("fetchtest")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name=NAME, skops_trusted_types=TRUSTED_TYPES)
    version = str(info.registered_model_version)
    mlflow.MlflowClient().set_registered_model_alias(NAME, "champion", version)
    return mlflow_server, uc, version


def _fetched(name: str, version: str | None, alias: str):
    got = fetch.Fetch(name, version, alias)
    try:
        return got.result()
    finally:
        got.close()


def test_the_fetched_model_is_the_one_mlflow_loads(registered, monkeypatch):
    server, uc, version = registered
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    got = fetch.Fetch(NAME, None, "champion")
    try:
        answer = got.result()
        assert answer["version"] == version and answer["sklearn"]["serialization_format"] == "skops"
        model = fetch.load(answer)
    finally:
        got.close()
    reference = mlflow.sklearn.load_model(f"models:/{NAME}/{version}")
    X = uc.build_features(generate_transactions(500, seed=12))
    np.testing.assert_array_equal(model.predict_proba(X), reference.predict_proba(X))


def test_no_such_alias_is_none_and_a_bad_version_one_task_error(registered, monkeypatch):
    server, _, _ = registered
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    assert _fetched(NAME, None, "nobody-set-this") is None
    with pytest.raises(task.TaskError, match=f"cannot fetch model {NAME}: .*") as err:
        _fetched(NAME, "99", "champion")
    assert "\n" not in str(err.value)


def test_batch_job_scores_with_the_fetched_champion(registered, tmp_path):
    server, uc, version = registered
    env = MlEnv("fetchtest", tmp_path / "env", server.uri)
    raw = generate_transactions(1500, seed=13).drop(columns=["is_fraud"])
    raw.to_parquet(tmp_path / "rows.parquet")
    run_id = new_run_id()
    proc = env.run_task(run_id, "batch_score", "ml.inference.batch_score", "--input", str(tmp_path / "rows.parquet"),
                        "--output", str(tmp_path / "out"), job="batch_inference_job")
    assert proc.returncode == 0, proc.stderr
    preds = pd.read_parquet(tmp_path / "out")
    want = mlflow.sklearn.load_model(f"models:/{NAME}/{version}").predict_proba(uc.build_features(raw))[:, 1]
    assert preds["transaction_id"].tolist() == raw["transaction_id"].tolist()
    np.testing.assert_array_equal(preds["fraud_probability"].to_numpy(), want)
    assert set(preds["model_version"]) == {version} and env.task_values(run_id, "batch_score")["model_version"] == version
    gone = env.run_task(run_id, "batch_score", "ml.inference.batch_score", "--input", str(tmp_path / "rows.parquet"),
                        "--alias", "nobody-set-this", job="batch_inference_job")
    assert gone.returncode != 0 and f"{NAME} has no `nobody-set-this`" in gone.stderr and "Traceback" not in gone.stderr
