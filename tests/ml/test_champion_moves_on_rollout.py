"""`deploy_model` decides, it does not move `champion` (issue #15 item 5): the alias still names the
old champion after a better challenger was decided, until what rolls it out completes
(`update_endpoint`, tests/serving/test_update_endpoint_task.py; here, with no endpoint, the
`promote` task). The champion pointer follows the alias, never the decision.

Real MLflow server and DVC remote (tests/ml/harness.py); one ingest, two small trainings."""

from __future__ import annotations

import json

import mlflow
import pytest

from ml.registry import champion_pointer
from tests.ml.conftest import run_training_job
from tests.ml.harness import MlEnv, new_run_id

pytestmark = pytest.mark.slow
NAME = "fraud-detector-aliases"
# a deliberately weak first champion (few shallow trees), its gates lowered so that it is accepted
WEAK = ["--set", "train.max_iter=3", "--set", "train.max_depth=2", "--set", "model_validation.min_roc_auc=0.5",
        "--set", "model_validation.min_pr_auc=0.0", "--set", "model_validation.min_slice_roc_auc=0.0",
        "--set", "deployment.baseline.roc_auc=0.5", "--set", "deployment.baseline.pr_auc=0.0"]


def test_deploy_model_hands_the_decision_over_and_the_alias_waits(mlflow_server, tmp_path):
    env = MlEnv("aliases", tmp_path / "env", mlflow_server.uri)
    first, results = run_training_job(env, "--rows", "4000", extra={t: WEAK for t in ("train", "validate_model", "deploy_model")})
    for task, proc in results.items():
        assert proc.returncode == 0, f"{task} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    client = mlflow.MlflowClient(tracking_uri=env.tracking_uri, registry_uri=env.tracking_uri)
    assert client.get_model_version_by_alias(NAME, "champion").version == "1"
    pointer = champion_pointer(env.root / "storage" / "models", NAME)
    weak = json.loads(pointer.read_text())
    assert weak["version"] == "1" and weak["metrics"]["pr_auc"] > 0

    # a better model on the same data: deploy_model promotes it — as a decision only
    data_version = env.task_values(first, "ingest")["data_version"]
    run_id = new_run_id()
    for task, module, args in (("train", "ml.training.train", ["--data-version", data_version]),
                               ("validate_model", "ml.validation.validate_model", []),
                               ("deploy_model", "ml.deployment.deploy_model", ["--no-package"])):
        proc = env.run_task(run_id, task, module, *args)
        assert proc.returncode == 0, f"{task} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    decided = env.task_values(run_id, "deploy_model")
    assert decided["promoted"] is True and decided["champion_version"] == "2", decided
    assert "alias champion moves when that completes (until then: v1)" in proc.stdout
    assert client.get_model_version_by_alias(NAME, "champion").version == "1"  # what still serves
    assert client.get_model_version_by_alias(NAME, "challenger").version == "2"
    assert json.loads(pointer.read_text())["version"] == "1"

    # the step that completes the hand-off moves it, and the pointer with it
    done = env.run_task(run_id, "promote", "ml.deployment.promote")
    assert done.returncode == 0, done.stderr
    assert client.get_model_version_by_alias(NAME, "champion").version == "2"
    moved = json.loads(pointer.read_text())
    assert moved["version"] == "2" and moved["data_version"] == data_version
    assert moved["metrics"]["pr_auc"] > weak["metrics"]["pr_auc"]  # the held-out figures deploy_model logged
    assert "promote: alias champion moved to v2" in done.stdout
