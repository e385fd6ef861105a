"""Issue #5 in a real environment: drift triggers retraining, clean traffic does not.

The unit tests (test_monitoring.py, test_retraining_job.py) check the windows, the metrics
and the condition on hand-made tables. This one runs the loop as a user would, on the
session's real env (`pulumi up`: MLflow with auth, the BentoML endpoint, storage): the
repo's own bundle deployed to staging, a champion trained by `model_training_job`, traffic
over HTTP to the endpoint (which writes the inference table itself), and
`conveyor bundle run retraining_job -t staging` deciding — once after clean traffic, once
after traffic drifted with the generator's knob.

Edits to the bundle copy are about time only: `fraud_monitor` cuts 3 s windows instead of
60 min ones, the endpoint rolls out `direct` instead of a 60 s canary (with relaxed latency
gates), and schedules are paused so the env's scheduler stays out of the way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from core.contract import local_path
from ml.serving.inference_log import read_table
from tests.e2e.envs import relax_latency_gates
from usecases.fraud.generate import generate_transactions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ci"))
from local_runner import project_copy

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CONVEYOR = Path(sys.executable).with_name("conveyor")
WINDOW_S = 3.0          # fraud_monitor.config.window_minutes = 0.05
BURST_ROWS = 200        # one request per burst: one request time, so one window each
TRAINING_ROWS = "3000"  # enough fraud cases for the first model to meet the deployment baseline


def fast_loop(ws: Path) -> None:
    relax_latency_gates(ws)
    path = ws / "resources" / "monitoring.yml"
    doc = yaml.safe_load(path.read_text())
    doc["resources"]["monitors"]["fraud_monitor"]["config"].update(window_minutes=WINDOW_S / 60, min_window_rows=100)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path = ws / "resources" / "endpoint.yml"
    doc = yaml.safe_load(path.read_text())
    doc["resources"]["serving_endpoints"]["fraud_endpoint"]["rollout"]["strategy"] = "direct"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    # the env's scheduler must not start a run of its own mid-test (staging is a production target)
    for path in (ws / "resources").glob("*.yml"):
        doc = yaml.safe_load(path.read_text())
        for job in ((doc.get("resources") or {}).get("jobs") or {}).values():
            if "schedule" in job:
                job["schedule"]["pause_status"] = "PAUSED"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))


def conveyor(project: Path, outputs_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """`conveyor bundle <args>` in the project copy, pointed at the real env's outputs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "PULUMI_"))}
    env.update(CONVEYOR_PROJECT_DIR=str(project), CONVEYOR_OUTPUTS_DIR=str(outputs_dir), CONVEYOR_USER="e2e")
    proc = subprocess.run([str(CONVEYOR), "bundle", *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"conveyor bundle {' '.join(args)}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def runs(project: Path, outputs_dir: Path, *args: str) -> list[dict]:
    """Run history of the staging target, newest first (`conveyor bundle runs -o json`)."""
    return json.loads(conveyor(project, outputs_dir, "runs", "-t", "staging", "-o", "json", "-n", "100", *args).stdout)


def task_log(project: Path, outputs_dir: Path, run: dict, task: str) -> str:
    return conveyor(project, outputs_dir, "runs", run["run_id"], "-t", "staging", "--log", task).stdout


def model_versions(real_env) -> list[str]:
    out = real_env.outputs
    ci = out.credentials["ci"]
    resp = httpx.get(f"{out.tracking_uri}/api/2.0/mlflow/model-versions/search",
                     params={"filter": "name='fraud-detector-staging'"}, auth=(ci.username, ci.password), timeout=60)
    assert resp.status_code == 200, resp.text
    return sorted(v["version"] for v in resp.json().get("model_versions", []))


def send_bursts(real_env, drift: float, seed: int, bursts: int = 3) -> None:
    """`bursts` requests of BURST_ROWS transactions, more than a window apart; each waits until the
    endpoint's inference log has written its rows (flushed off the request path)."""
    out = real_env.outputs
    table = local_path(out.storage.inference_table)
    headers = {"Authorization": f"Bearer {out.credentials['ci'].token}"}
    for i in range(bursts):
        sent = time.time()
        raw = generate_transactions(BURST_ROWS, seed=seed + i, drift=drift).drop(columns=["is_fraud"])
        raw["transaction_id"] = [f"{t}-d{drift}" for t in raw["transaction_id"]]
        rows = json.loads(raw.to_json(orient="records", date_format="iso"))
        resp = httpx.post(f"{out.serving_url}/predict", json={"rows": rows}, headers=headers, timeout=120)
        assert resp.status_code == 200, resp.text[:500]
        assert {p["served_by"] for p in resp.json()} == {"champion"}
        ids = set(raw["transaction_id"])
        deadline = time.monotonic() + 30
        while True:
            logged = read_table(table)
            if len(logged) and ids <= set(logged["request_id"]):
                break
            assert time.monotonic() < deadline, f"burst {i} not in the inference table after 30 s"
            time.sleep(0.2)
        if i < bursts - 1:
            time.sleep(max(0.0, WINDOW_S + 0.5 - (time.time() - sent)))


def test_drift_triggers_retraining_and_clean_traffic_does_not(real_env, tmp_path):
    project = project_copy(ROOT, tmp_path / "checkout", branch="main", prepare=fast_loop)
    outputs_dir = tmp_path / "outputs"
    outputs_dir.mkdir()
    (outputs_dir / "staging.json").write_text(real_env.outputs.model_dump_json())
    conveyor(project, outputs_dir, "deploy", "-t", "staging", "--var", f"training_rows={TRAINING_ROWS}")

    # A champion on the endpoint.
    conveyor(project, outputs_dir, "run", "model_training_job", "-t", "staging")
    [first] = runs(project, outputs_dir, "--job", "model_training_job")
    assert first["status"] == "success" and first["trigger"] == "manual"
    assert model_versions(real_env) == ["1"]

    # Clean traffic: nothing to retrain.
    send_bursts(real_env, drift=0.0, seed=1000)
    conveyor(project, outputs_dir, "run", "retraining_job", "-t", "staging")
    clean = runs(project, outputs_dir, "--job", "retraining_job")[0]
    tasks = clean["tasks"]
    assert clean["status"] == "success", clean
    assert tasks["monitor"]["status"] == "success"
    assert tasks["drift_sustained"]["status"] == "success" and tasks["drift_sustained"]["outcome"] is False, tasks
    assert tasks["retrain"]["status"] == "skipped" and tasks["retrain"]["child_run"] is None, tasks
    # three bursts, three 3 s windows: the float window_minutes is honoured
    assert "of the last 3 windows violate" in task_log(project, outputs_dir, clean, "drift_sustained")
    assert [r["run_id"] for r in runs(project, outputs_dir, "--job", "model_training_job")] == [first["run_id"]]

    # Drifted traffic (the generator's knob): the condition holds and model_training_job runs.
    send_bursts(real_env, drift=1.5, seed=2000)
    conveyor(project, outputs_dir, "run", "retraining_job", "-t", "staging")
    drifted = runs(project, outputs_dir, "--job", "retraining_job")[0]
    tasks = drifted["tasks"]
    assert drifted["run_id"] != clean["run_id"] and drifted["status"] == "success", drifted
    assert tasks["drift_sustained"]["outcome"] is True, tasks
    decided = task_log(project, outputs_dir, drifted, "drift_sustained")
    assert "retrain: true — 3 of the last 3 windows violate" in decided and "feature drift" in decided, decided
    assert tasks["retrain"]["status"] == "success" and tasks["retrain"]["child_run"], tasks
    retrained = runs(project, outputs_dir, "--job", "model_training_job")
    assert [r["run_id"] for r in retrained] == [tasks["retrain"]["child_run"], first["run_id"]]
    child = retrained[0]
    assert child["trigger"] == "run_job" and child["parent_run"] == drifted["run_id"]
    assert child["status"] == "success" and all(t["status"] == "success" for t in child["tasks"].values()), child
    assert model_versions(real_env) == ["1", "2"]  # the retrained model is registered
