"""Both shipped use cases in ONE environment (issue #13): fraud and diabetes trained by their jobs'
tasks (ingest → validate_data → train → validate_model → deploy_model → update_endpoint), served at
the same time by the env's one serving process (fraud on /predict, diabetes on
/diabetes_endpoint/predict), and each endpoint monitored over its own inference table.

The env is the ML harness's (tests/ml/harness.py): a real MLflow server, storage in a tmp dir, and
every task a subprocess with the runtime env vars, as `conveyor bundle run` starts it. The
endpoint files are the repo's resources with the pre-traffic latency gate relaxed: on a shared
2-core host it measures the load, not the code.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import mlflow
import pytest
import yaml

from core.contract import Credential
from ml.serving import client
from ml.serving.inference_log import read_table
from tests.ml.conftest import run_training_job
from tests.ml.harness import PROJECT, MlEnv
from tests.serving.serving_helpers import TOKEN, start_endpoint

AUTH = {"Authorization": f"Bearer {TOKEN}"}
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DIABETES = "diabetes_endpoint"
# its own env name: the session MLflow server is shared, and tests/ml registers fraud-detector-dev
FRAUD_MODEL, DIABETES_MODEL = "fraud-detector-both", "diabetes-progression-both"


def _relaxed(resource_file: Path, dest: Path) -> Path:
    doc = yaml.safe_load(resource_file.read_text())
    for endpoint in doc["resources"]["serving_endpoints"].values():
        endpoint["rollout"]["sla"].update(p95_ms=5000, min_qps=1, duration_s=1)
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def _train_and_serve(env: MlEnv, job: str, endpoint_file: Path, model: str, *task_args: str, train: dict) -> str:
    run_id, results = run_training_job(env, *task_args, extra=train)
    for task, proc in results.items():
        assert proc.returncode == 0, f"{job}/{task} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    args = ["--model-name", model, "--endpoint-file", str(endpoint_file)]
    if job == "diabetes_training_job":
        args += ["--endpoint", DIABETES]
    proc = env.run_task(run_id, "update_endpoint", "ml.serving.update_endpoint", *args, job=job)
    assert proc.returncode == 0, f"{job}/update_endpoint failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return run_id


@pytest.fixture(scope="module")
def one_env(mlflow_server, tmp_path_factory):
    base = tmp_path_factory.mktemp("two-use-cases")
    env = MlEnv("both", base / "env", mlflow_server.uri)
    storage = env.root / "storage"
    ep = start_endpoint(base, env="both", endpoint_dir=storage / "endpoint", table_dir=storage / "tables" / "inference")
    # the env's outputs point at its serving process, with the token it accepts
    env.outputs = env.outputs.model_copy(update={"serving_url": ep.url, "credentials": {
        p: Credential(username=p, password="x", token=TOKEN) for p in ("data_scientist", "ml_engineer", "ci")}})
    env.outputs_file.write_text(env.outputs.model_dump_json(indent=2))
    try:
        fraud = _train_and_serve(env, "model_training_job", _relaxed(PROJECT / "resources/endpoint.yml", base / "endpoint.yml"),
                                 FRAUD_MODEL, "--rows", "4000", train={})
        uc = ["--use-case", "diabetes"]
        diabetes = _train_and_serve(env, "diabetes_training_job",
                                    _relaxed(PROJECT / "resources/diabetes.yml", base / "diabetes.yml"), DIABETES_MODEL,
                                    train={t: uc for t in ("ingest", "validate_data", "train", "validate_model", "deploy_model")})
        yield {"env": env, "ep": ep, "runs": {"fraud": fraud, "diabetes": diabetes}}
    finally:
        ep.stop()


def test_both_models_are_served_at_once_by_one_process(one_env):
    env, ep = one_env["env"], one_env["ep"]
    default = ep.status()
    named = httpx.get(f"{ep.url}/{DIABETES}/status", timeout=5, headers=AUTH).json()
    assert default["use_case"] == "fraud" and default["models"]["champion"]["name"] == FRAUD_MODEL
    assert named["use_case"] == "diabetes" and named["models"]["champion"]["name"] == DIABETES_MODEL
    assert named["models"]["champion"]["version"] == "1"

    fraud_rows = client.sample_rows(200, seed=5, use_case="fraud")
    fraud = ep.post(fraud_rows)
    assert fraud.status_code == 200, fraud.text
    assert {"is_fraud", "fraud_probability"} <= set(fraud.json()[0])
    patients = [dict(p, patient_id=f"e2e-{i:03d}") for i, p in enumerate(client.sample_rows(120, seed=4, use_case="diabetes"))]
    answer = ep.post(patients, path=f"/{DIABETES}/predict")
    assert answer.status_code == 200, answer.text
    assert [a["patient_id"] for a in answer.json()] == [p["patient_id"] for p in patients]
    assert all(isinstance(a["predicted_progression"], float) and a["model_version"] == "1" for a in answer.json())
    print("diabetes request:", json.dumps({"rows": patients[:1]}))
    print("diabetes response:", json.dumps(answer.json()[:1]))

    tracking = mlflow.MlflowClient(tracking_uri=env.tracking_uri, registry_uri=env.tracking_uri)
    run = tracking.get_run(env.task_values(one_env["runs"]["diabetes"], "train")["training_run_id"])
    metrics = {m: round(run.data.metrics[f"test_{m}"], 3) for m in ("rmse", "mae", "r2")}
    print("diabetes held-out metrics:", json.dumps(metrics))
    assert metrics["rmse"] < 65 and metrics["r2"] > 0.3


def test_each_endpoint_is_monitored_over_its_own_table(one_env):
    env, ep = one_env["env"], one_env["ep"]
    fraud_table, diabetes_table = read_table(ep.table_dir), read_table(ep.table_dir / DIABETES)
    assert len(diabetes_table) >= 120 and set(diabetes_table["endpoint"]) == {DIABETES}
    assert "f_bmi" in diabetes_table.columns and "f_bmi" not in fraud_table.columns
    assert not fraud_table["request_id"].isin(diabetes_table["request_id"]).any()

    runs = {
        "fraud": env.run_task("mon-fraud", "monitor", "ml.monitoring.job", "--use-case", "fraud",
                              "--monitor-file", "resources/monitoring.yml", job="monitoring_job"),
        "diabetes": env.run_task("mon-diabetes", "monitor", "ml.monitoring.job", "--use-case", "diabetes",
                                 "--endpoint", DIABETES, "--monitor-file", "resources/diabetes.yml",
                                 job="diabetes_monitoring_job"),
    }
    for name, proc in runs.items():
        assert proc.returncode == 0, f"{name} monitor failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        assert "monitored" in proc.stdout and "in 1 windows" in proc.stdout, proc.stdout
        print(f"{name} monitor:", proc.stdout.strip().splitlines()[-1])
    # ordinary patients (min_window_rows of resources/diabetes.yml is 100): no drift reported
    assert "violating windows: none" in runs["diabetes"].stdout, runs["diabetes"].stdout
    metrics = env.root / "storage" / "tables" / "metrics"
    assert (metrics / DIABETES).is_dir()  # each endpoint's metrics and report apart
    for run_id in ("mon-fraud", "mon-diabetes"):
        assert Path(env.task_values(run_id, "monitor")["report"]).is_file()
