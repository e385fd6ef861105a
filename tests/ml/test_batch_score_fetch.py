"""The batch job's model comes from a second process (ml/inference/fetch.py) and loads as MLflow loads it.

Real MLflow server; one small fraud pipeline registered as the `champion` of env `fetchtest`,
then the `batch_score` task run against it once, and the REST fetch (ml/inference/rest_fetch.py)
compared with MLflow's download (~20 s in all).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest

from ml import task
from ml.inference import fetch, rest_fetch
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


def test_the_rest_fetch_downloads_what_mlflow_downloads_without_importing_it(registered, tmp_path):
    server, _, version = registered
    env = {"MLFLOW_TRACKING_URI": server.uri}
    answer = rest_fetch.fetch(NAME, None, "champion", str(tmp_path / "rest"), env)
    assert answer is not None and answer["version"] == version and answer["allowed"] is True
    mlflow.set_tracking_uri(server.uri)
    reference = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/{version}", dst_path=str(tmp_path / "mlflow")))
    want = {p.relative_to(reference): p.read_bytes() for p in reference.rglob("*") if p.is_file()}
    want.pop(Path("registered_model_meta"), None)  # MLflow's note of the name and version it downloaded
    got = {p.relative_to(tmp_path / "rest"): p.read_bytes() for p in (tmp_path / "rest").rglob("*") if p.is_file()}
    assert got == want and answer["sklearn"] == mlflow.models.Model.load(str(reference)).flavors["sklearn"]
    assert rest_fetch.fetch(NAME, None, "nobody-set-this", str(tmp_path / "none"), env) == {"missing": True}
    assert rest_fetch.fetch(NAME, "99", "champion", str(tmp_path / "none"), env) is None  # MLflow says what is wrong
    for only_mlflow in ({"MLFLOW_TRACKING_INSECURE_TLS": "true"}, {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "maybe"}):
        assert rest_fetch.fetch(NAME, None, "champion", str(tmp_path / "other"), {**env, **only_mlflow}) is None
    assert rest_fetch.fetch(NAME, None, "champion", str(tmp_path / "off"),
                            {**env, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "False"})["allowed"] is False


@pytest.mark.parametrize(("extra", "imports_mlflow"), [({}, False), ({"MLFLOW_TRACKING_INSECURE_TLS": "true"}, True)])
def test_the_fetch_process_imports_mlflow_only_when_the_rest_fetch_does_not_apply(registered, tmp_path, extra,
                                                                                   imports_mlflow):
    server, _, version = registered
    code = ("import json, sys; from ml.inference import fetch; fetch.main(sys.argv[1:]); "
            "print(json.dumps({'mlflow': 'mlflow' in sys.modules}))")
    proc = subprocess.run([sys.executable, "-c", code, NAME, "--alias", "champion", str(tmp_path / "dest")],
                          cwd=fetch.PROJECT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MLFLOW_TRACKING_URI": server.uri, **extra})
    assert proc.returncode == 0, proc.stderr
    answer, imported = (json.loads(line) for line in proc.stdout.strip().splitlines()[-2:])
    assert answer["version"] == version and imported == {"mlflow": imports_mlflow}


def test_artifact_paths_that_leave_the_model_dir_are_refused():
    class Listing:
        def get(self, endpoint, **query):
            return {"files": [{"path": "../../outside", "is_dir": False}]}

    with pytest.raises(rest_fetch.NotHere, match="artifact path"):
        rest_fetch._files(Listing(), "1/models/m-1/artifacts")


def test_credentials_go_as_mlflow_sends_them():
    basic = rest_fetch.Api("http://127.0.0.1:1/", {"MLFLOW_TRACKING_USERNAME": "ci", "MLFLOW_TRACKING_PASSWORD": "pw"})
    assert basic.base == "http://127.0.0.1:1" and basic.headers["Authorization"] == "Basic Y2k6cHc="
    assert rest_fetch.Api("http://h", {"MLFLOW_TRACKING_TOKEN": "t"}).headers["Authorization"] == "Bearer t"
    assert "Authorization" not in rest_fetch.Api("http://h", {}).headers
