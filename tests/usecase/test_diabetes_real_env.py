"""The regression use case in a real environment (issue #13): on the session's provisioned env
(`conveyor env up`: MLflow with auth, the env's serving process, storage), the repo's own bundle
deployed to dev, `diabetes_training_job` run by `conveyor bundle run`, and patients scored over
HTTP at the dev endpoint's `/diabetes_endpoint/predict`.

The bundle copy differs from the checkout only in its latency gates (relaxed: on a shared 2-core
host they measure the load) and its paused schedules (the env's scheduler stays out of the way).
The test prints one request/response and the held-out metrics (the issue's closing note).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
import pytest

from ml.serving.client import sample_rows
from tests.e2e.envs import bundle_cli as conveyor
from tests.e2e.envs import pause_schedules, relax_latency_gates

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ci"))
from local_runner import project_copy

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ENDPOINT = "diabetes_endpoint"


def _prepare(ws: Path) -> None:
    relax_latency_gates(ws)
    pause_schedules(ws)


def test_diabetes_trains_deploys_and_serves_in_a_real_dev_env(real_env, tmp_path):
    project = project_copy(ROOT, tmp_path / "checkout", branch="feature", prepare=_prepare)
    outputs_dir = tmp_path / "outputs"
    outputs_dir.mkdir()
    (outputs_dir / "dev.json").write_text(real_env.outputs.model_dump_json())
    out = real_env.outputs

    started = time.monotonic()
    conveyor(project, outputs_dir, "deploy", "-t", "dev")
    conveyor(project, outputs_dir, "run", "diabetes_training_job", "-t", "dev")
    [run] = json.loads(conveyor(project, outputs_dir, "runs", "-t", "dev", "-o", "json", "--job",
                                "diabetes_training_job").stdout)
    assert run["status"] == "success" and all(t["status"] == "success" for t in run["tasks"].values()), run
    print(f"deploy + diabetes_training_job: {time.monotonic() - started:.0f} s")

    # the champion's held-out metrics, from the dev registry (prefixed name: a development deployment)
    ci = out.credentials["ci"]
    auth = (ci.username, ci.password)
    found = httpx.get(f"{out.tracking_uri}/api/2.0/mlflow/registered-models/search",
                      params={"filter": "name LIKE '%diabetes-progression-dev'"}, auth=auth, timeout=60)
    assert found.status_code == 200, found.text
    [model] = [m["name"] for m in found.json()["registered_models"]]
    champion = httpx.get(f"{out.tracking_uri}/api/2.0/mlflow/registered-models/alias",
                         params={"name": model, "alias": "champion"}, auth=auth, timeout=60).json()["model_version"]
    metrics = httpx.get(f"{out.tracking_uri}/api/2.0/mlflow/runs/get", params={"run_id": champion["run_id"]},
                        auth=auth, timeout=60).json()["run"]["data"]["metrics"]
    held_out = {m["key"][len("test_"):]: round(m["value"], 3) for m in metrics if m["key"] in ("test_rmse", "test_mae", "test_r2")}
    print("diabetes held-out metrics:", json.dumps(held_out))
    assert set(held_out) == {"rmse", "mae", "r2"} and held_out["rmse"] < 65 and held_out["r2"] > 0.3

    # a real HTTP request to the dev endpoint's route
    patients = [dict(p, patient_id=f"real-{i}") for i, p in enumerate(sample_rows(3, seed=11, use_case="diabetes"))]
    headers = {"Authorization": f"Bearer {ci.token}"}
    url = f"{out.serving_url}/{ENDPOINT}/predict"
    deadline = time.monotonic() + 60
    while True:  # the env's serving process picks the new binding up on its next refresh
        resp = httpx.post(url, json={"rows": patients}, headers=headers, timeout=60)
        if resp.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert resp.status_code == 200, resp.text[:1000]
    answers = resp.json()
    assert [a["patient_id"] for a in answers] == [p["patient_id"] for p in patients]
    for a in answers:
        assert isinstance(a["predicted_progression"], float) and 0 < a["predicted_progression"] < 400, a
        assert a["model_version"] == champion["version"]
    print(f"request: POST {url}", json.dumps({"rows": patients[:1]}))
    print("response:", json.dumps(answers[:1]))
