"""The regression use case (usecases/diabetes) end to end in one env, against a real MLflow server:
ingest → validate_data → train → validate_model → deploy_model, next to fraud's data in the same env."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from ml.registry import champion_pointer
from tests.ml.conftest import TRAINING_TASKS, run_training_job
from tests.ml.harness import MlEnv, new_run_id

pytestmark = pytest.mark.slow

DIABETES = {task: ["--use-case", "diabetes"] for task, _ in TRAINING_TASKS}


@pytest.fixture(scope="module")
def diabetes_env(mlflow_server, tmp_path_factory):
    env = MlEnv("dev", tmp_path_factory.mktemp("env-diabetes"), mlflow_server.uri)
    run_id, results = run_training_job(env, extra=DIABETES)
    for task, proc in results.items():
        assert proc.returncode == 0, f"{task} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert list(results) == [task for task, _ in TRAINING_TASKS]
    return env, run_id


def test_diabetes_job_trains_validates_and_promotes_a_regressor(diabetes_env):
    env, run_id = diabetes_env
    assert env.task_values(run_id, "ingest")["data_rows"] == 442
    train = env.task_values(run_id, "train")
    assert train["model_uri"] == "models:/diabetes-progression-dev/1"
    client = mlflow.MlflowClient(tracking_uri=env.tracking_uri, registry_uri=env.tracking_uri)
    run = client.get_run(train["training_run_id"])
    metrics = {m: run.data.metrics[f"test_{m}"] for m in ("rmse", "mae", "r2")}
    print("diabetes held-out metrics:", json.dumps({k: round(v, 3) for k, v in metrics.items()}))
    # params.yaml gates: a fitted model passes them, the mean (RMSE ~77, R² ~0) does not
    assert metrics["rmse"] < 65 and metrics["mae"] < 55 and metrics["r2"] > 0.3
    assert run.data.params["train.model_type"] == "ridge"
    assert run.data.params["test_rows"] == "88" and run.data.params["train_rows"] == "354"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/feature_importance.png", "plots/challenger_vs_champion.png"} <= artifacts
    mv = client.get_model_version("diabetes-progression-dev", "1")
    assert mv.tags["model_validation_status"] == "PASSED" and mv.tags["deployment_decision"] == "promoted"
    assert client.get_model_version_by_alias("diabetes-progression-dev", "champion").version == "1"
    deploy = json.loads(Path(client.download_artifacts(run.info.run_id, "deployment_comparison.json",
                                                        str(env.root))).read_text())
    assert deploy["primary_metric"] == "rmse" and deploy["reason"].startswith("first model; meets baseline rmse<=")
    assert json.loads(champion_pointer(env.root / "storage" / "models", "diabetes-progression-dev").read_text())["registered_model"] \
        == "diabetes-progression-dev"


def test_a_worse_regressor_is_refused_on_rmse(diabetes_env):
    env, first = diabetes_env
    data_version = env.task_values(first, "ingest")["data_version"]
    run_id = new_run_id()
    weak = ["--use-case", "diabetes", "--set", "train.alpha=2000", "--set", "model_validation.max_rmse=80",
            "--set", "model_validation.max_mae=70", "--set", "model_validation.min_r2=0.0"]
    assert env.run_task(run_id, "train", "ml.training.train", "--data-version", data_version, *weak).returncode == 0
    check = env.run_task(run_id, "validate_model", "ml.validation.validate_model", *weak)
    assert check.returncode == 1 and "no_regression_rmse" in check.stderr and "Traceback" not in check.stderr


def test_each_use_case_has_its_own_dvc_workspace(diabetes_env):
    env, first = diabetes_env
    fraud = env.run_task(new_run_id(), "ingest", "ml.data.ingest", "--use-case", "fraud", "--rows", "1000")
    assert fraud.returncode == 0, fraud.stderr
    again_id = new_run_id()
    again = env.run_task(again_id, "ingest", "ml.data.ingest", "--use-case", "diabetes")
    assert again.returncode == 0, again.stderr
    workspaces = env.root / "storage" / "dvc-workspaces"
    assert {p.name for p in workspaces.iterdir()} == {"diabetes", "fraud"}
    # fraud's ingest did not touch diabetes' stages: same data, same workspace commit
    for key in ("data_version", "data_commit"):
        assert env.task_values(again_id, "ingest")[key] == env.task_values(first, "ingest")[key], key
