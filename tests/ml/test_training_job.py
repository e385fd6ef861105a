"""The training job end to end in one env, against a real MLflow server, DVC remote and BentoML store."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest

from usecases.fraud.generate import generate_transactions
from ml.registry import champion_pointer
from ml.serving.client import request_rows
from tests.ml.conftest import run_training_job
from tests.ml.harness import PROJECT, MlEnv, free_port, new_run_id

pytestmark = pytest.mark.slow


def client_for(env: MlEnv) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=env.tracking_uri, registry_uri=env.tracking_uri)


def test_full_job_registers_validated_champion_with_lineage(trained_env):
    env, run_id, _ = trained_env
    ingest = env.task_values(run_id, "ingest")
    train = env.task_values(run_id, "train")
    assert train["model_uri"] == "models:/fraud-detector-dev/1"
    client = client_for(env)

    run = client.get_run(train["training_run_id"])
    assert run.info.run_id == ingest["mlflow_run_id"], "all tasks log into the job run's MLflow run"
    for metric in ("test_roc_auc", "test_pr_auc", "test_f1", "test_log_loss"):
        assert metric in run.data.metrics
    assert run.data.metrics["test_roc_auc"] > 0.8
    assert run.data.params["train.max_iter"] == "100"
    tags = run.data.tags
    assert tags["data_version"] == ingest["data_version"]
    assert tags["git_sha"] == "0123456789abcdef0123456789abcdef01234567"
    assert tags["bundle_target"] == "dev" and tags["job_run_id"] == run_id
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/roc_curve.png", "plots/pr_curve.png", "plots/confusion_matrix.png",
            "plots/feature_importance.png", "plots/challenger_vs_champion.png"} <= artifacts
    assert any(a.path == "data_docs/index.html" for a in client.list_artifacts(run.info.run_id, "data_docs"))

    mv = client.get_model_version("fraud-detector-dev", "1")
    assert mv.tags["model_validation_status"] == "PASSED"
    assert mv.tags["data_version"] == ingest["data_version"]
    assert "Validation PASSED" in mv.description
    assert client.get_model_version_by_alias("fraud-detector-dev", "champion").version == "1"
    assert client.get_model_version_by_alias("fraud-detector-dev", "challenger").version == "1"
    report = json.loads(champion_pointer(env.root / "storage" / "models", "fraud-detector-dev").read_text())
    assert report["version"] == "1" and report["data_version"] == ingest["data_version"]


def test_held_out_rows_are_scored_once_per_job_and_a_mismatched_key_scores_again(trained_env):
    """validate_model and deploy_model use train's scores of the challenger (same metrics as
    train's); a task that finds scores under another key scores the model itself."""
    env, run_id, results = trained_env
    for task in ("validate_model", "deploy_model"):
        assert "held-out scores reused" in results[task].stdout, task
        assert "held-out rows of data version" in results[task].stdout, f"{task} took train's rows, not gold again"
    client = client_for(env)
    train = env.task_values(run_id, "train")
    metrics = client.get_run(train["training_run_id"]).data.metrics
    for m in ("roc_auc", "pr_auc", "f1", "log_loss"):
        assert metrics[f"test_{m}"] == metrics[f"validation_{m}"] == metrics[f"deploy_challenger_{m}"], m

    # validate_model again in another run, whose folder holds scores of this version keyed to
    # another data version — scores that would fail every gate if they were used
    name, version = train["model_uri"].split("/")[1:]
    saved = env.values_root / run_id / "held_out_scores" / f"{name}-v{version}.npz"
    with np.load(saved) as npz:
        key, rows = json.loads(str(npz["key"])), len(npz["scores"])
    key["data_version"] = "another-data-version"
    rerun = new_run_id()
    foreign = env.values_root / rerun / "held_out_scores" / saved.name
    foreign.parent.mkdir(parents=True)
    np.savez(foreign, scores=np.zeros(rows), key=np.array(json.dumps(key, sort_keys=True)))
    again = env.run_task(rerun, "validate_model", "ml.validation.validate_model", "--model-uri", train["model_uri"])
    assert again.returncode == 0, again.stderr
    assert "held-out scores reused" not in again.stdout
    assert "held-out rows of data version" not in again.stdout, "no rows kept in that run: gold read and split"
    history = client.get_metric_history(train["training_run_id"], "validation_roc_auc")
    assert len(history) == 2 and {h.value for h in history} == {metrics["test_roc_auc"]}


def test_data_version_is_rematerialised_from_the_env_remote(trained_env, tmp_path):
    env, run_id, _ = trained_env
    version = env.task_values(run_id, "ingest")["data_version"]
    out = tmp_path / "restored.parquet"
    proc = subprocess.run([sys.executable, "-m", "ml.data.restore", "--data-version", version, "--out", str(out)],
                          cwd=PROJECT, env=env.task_env(new_run_id(), "restore"), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    import hashlib

    assert hashlib.md5(out.read_bytes()).hexdigest() == version
    assert len(pd.read_parquet(out)) == 4000
    # An unknown version is one clear line, not a traceback.
    bad = subprocess.run([sys.executable, "-m", "ml.data.restore", "--data-version", "0" * 32], cwd=PROJECT,
                         env=env.task_env(new_run_id(), "restore"), capture_output=True, text=True)
    assert bad.returncode == 1 and "not in the DVC remote" in bad.stderr and "Traceback" not in bad.stderr


def test_champion_is_in_the_env_model_store_and_the_endpoint_bento_serves_it_by_tag(trained_env, tmp_path):
    env, run_id, _ = trained_env
    values = env.task_values(run_id, "deploy_model")
    home = env.root / "storage" / "bentos"
    proc_env = {**env.task_env(new_run_id(), "serve"), "BENTOML_HOME": str(home)}
    labels = subprocess.run([sys.executable, "-c", (
        f"import bentoml, json; m = bentoml.models.get({values['bentoml_model']!r}); "
        "print(json.dumps([m.info.labels, m.info.metadata]))")],
        env=proc_env, capture_output=True, text=True, cwd=tmp_path)
    assert labels.returncode == 0, labels.stderr
    got, metadata = json.loads(labels.stdout.strip().splitlines()[-1])
    assert got["model_version"] == "1" and got["registered_model"] == "fraud-detector-dev"
    assert got["data_version"] == env.task_values(run_id, "ingest")["data_version"] and got["git_sha"].startswith("0123456789")
    assert metadata["model_uri"] == "models:/fraud-detector-dev/1" and "amount" in metadata["columns"]
    assert client_for(env).get_model_version("fraud-detector-dev", "1").tags["bentoml_model"] == values["bentoml_model"]

    # the env endpoint's Bento (one service, one request schema) serves it by its tag in the env store
    built = subprocess.run([sys.executable, "-m", "ml.serving.bento"], cwd=PROJECT, env=proc_env, capture_output=True,
                           text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    endpoint_dir = tmp_path / "endpoint"
    endpoint_dir.mkdir()
    (endpoint_dir / "endpoint.json").write_text(json.dumps({"revision": 1, "state": "serving", "champion": {
        "name": "fraud-detector-dev", "version": "1", "uri": f"bentoml:{values['bentoml_model']}"}}))
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps([hashlib.sha256(b"bento-token").hexdigest()]))
    port = free_port()
    server = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "bentoml"), "serve",
                               built.stdout.strip().splitlines()[-1], "--host", "127.0.0.1", "--port", str(port)],
                              cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**proc_env, "CONVEYOR_SERVING_TOKENS_FILE": str(tokens),
                                   "CONVEYOR_ENDPOINT_DIR": str(endpoint_dir),
                                   "CONVEYOR_INFERENCE_TABLE": str(tmp_path / "inference")})
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, "bentoml serve exited"
            time.sleep(1)
        rows = request_rows(generate_transactions(3, seed=5))
        resp = httpx.post(f"http://127.0.0.1:{port}/predict", json={"rows": rows}, timeout=30,
                          headers={"Authorization": "Bearer bento-token"})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert len(body) == 3 and all(0.0 <= r["fraud_probability"] <= 1.0 and r["model_version"] == "1" for r in body)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_batch_inference_scores_with_champion(trained_env, tmp_path):
    env, _, _ = trained_env
    table = tmp_path / "to_score.parquet"
    generate_transactions(1500, seed=99).drop(columns=["is_fraud"]).to_parquet(table)
    out = tmp_path / "predictions"
    run_id = new_run_id()
    proc = env.run_task(run_id, "batch_score", "ml.inference.batch_score", "--input", str(table), "--output", str(out),
                        job="batch_inference_job")
    assert proc.returncode == 0, proc.stderr
    preds = pd.read_parquet(out)
    assert len(preds) == 1500
    assert set(preds["model_version"]) == {"1"} and preds["scored_at"].notna().all()
    assert preds["fraud_probability"].between(0, 1).all()
    assert env.task_values(run_id, "batch_score")["rows_scored"] == 1500


def test_worse_model_is_refused_and_champion_unchanged(trained_env):
    env, first_run, _ = trained_env
    data_version = env.task_values(first_run, "ingest")["data_version"]
    run_id = new_run_id()
    # Floors lowered so that only the comparison with the champion can refuse it.
    weak = ["--set", "train.max_iter=1", "--set", "train.max_depth=1",
            "--set", "model_validation.min_roc_auc=0.5", "--set", "model_validation.min_pr_auc=0.0"]
    train = env.run_task(run_id, "train", "ml.training.train", "--data-version", data_version, *weak)
    assert train.returncode == 0, train.stderr
    uri = env.task_values(run_id, "train")["model_uri"]
    check = env.run_task(run_id, "validate_model", "ml.validation.validate_model", *weak)
    assert check.returncode == 1
    assert "no_regression_" in check.stderr and "refused" in check.stderr and "Traceback" not in check.stderr
    client = client_for(env)
    name, version = uri.split("/")[1:]
    assert client.get_model_version(name, version).tags["model_validation_status"] == "FAILED"
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    assert client.get_model_version_by_alias(name, "challenger").version == "1"
    # deploy_model refuses an unvalidated version outright.
    deploy = env.run_task(run_id, "deploy_model", "ml.deployment.deploy_model")
    assert deploy.returncode == 1 and "not validated" in deploy.stderr
    assert client.get_model_version_by_alias(name, "champion").version == "1"


def test_same_data_version_and_params_give_same_metrics(trained_env):
    env, first_run, _ = trained_env
    data_version = env.task_values(first_run, "ingest")["data_version"]
    first = client_for(env).get_run(env.task_values(first_run, "train")["training_run_id"]).data.metrics
    run_id = new_run_id()
    again = env.run_task(run_id, "train", "ml.training.train", "--data-version", data_version)
    assert again.returncode == 0, again.stderr
    second = client_for(env).get_run(env.task_values(run_id, "train")["training_run_id"]).data
    assert second.tags["data_version"] == data_version
    for key in ("test_roc_auc", "test_pr_auc", "test_f1", "test_log_loss"):
        assert second.metrics[key] == first[key], key


def test_corrupted_dataset_is_stopped_before_training(mlflow_server, tmp_path):
    env = MlEnv("staging", tmp_path / "env-staging", mlflow_server.uri)
    bad = generate_transactions(3000, seed=3)
    bad.loc[:40, "amount"] = -12.5
    bad.loc[100:120, "merchant_category"] = "casino"
    bad.loc[200:210, "txn_lat"] = None
    source = tmp_path / "landing.parquet"
    bad.to_parquet(source)
    run_id, results = run_training_job(env, "--source", str(source))
    assert results["ingest"].returncode == 0, results["ingest"].stderr
    check = results["validate_data"]
    assert check.returncode == 1 and "train" not in results
    assert "expect_column_values_to_be_between(column=amount" in check.stderr
    assert "casino" in check.stderr and "nothing was trained" in check.stderr and "Traceback" not in check.stderr
    client = client_for(env)
    run = client.get_run(env.task_values(run_id, "ingest")["mlflow_run_id"])
    assert run.info.status == "FAILED" and run.data.tags["data_validation_status"] == "FAILED"
    assert any(a.path == "data_docs/index.html" for a in client.list_artifacts(run.info.run_id, "data_docs"))
    assert client.search_model_versions("name='fraud-detector-staging'") == []
