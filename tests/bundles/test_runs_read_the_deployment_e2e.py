"""Issue #14 in a real environment: what a run does is what was deployed, whatever the checkout holds.

The repo's bundle (a copy, as CI checks it out) is deployed to the session's real env (`pulumi up`
of the local platform: MLflow with auth, the env's serving process, storage). Then the checkout is
edited WITHOUT deploying: the diabetes use case's params.yaml (ridge `alpha`), its feature function
(blood sugar clipped) and its resource file (the endpoint's pre-traffic SLA). The next
`conveyor bundle run diabetes_training_job` logs the deployed params to MLflow, versions data
built by the deployed features, rolls out with the deployed SLA, and the endpoint serves the
model it trained. After `conveyor bundle deploy`, the next run has all three edits.

The run skips `validate_data` (GX suites; not what this test is about) to stay lean.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from bundles.envstore import DeploymentStore
from bundles.runner import list_runs
from core.contract import local_path
from ml.data.versioning import WORKSPACES, cache_file
from tests.e2e.envs import bundle_cli, relax_latency_gates

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ci"))
from local_runner import project_copy

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
JOB, ENDPOINT = "diabetes_training_job", "diabetes_endpoint"
ONLY = "ingest,train,validate_model,deploy_model,update_endpoint"
DEPLOYMENT = "conveyor.dev.runs14"


def conveyor(project: Path, outputs_dir: Path, *args: str) -> subprocess.CompletedProcess:
    # a deployment of its own: other tests of the session deploy dev as `e2e`
    return bundle_cli(project, outputs_dir, *args, user="runs14")


def edit_checkout(project: Path) -> None:
    """A params knob, a feature function and a resource setting change in the working tree."""
    params = project / "usecases" / "diabetes" / "params.yaml"
    text = params.read_text()
    for old, new in (("  alpha: 1.0", "  alpha: 30.0"),
                     # the edited model must replace the first one whatever its RMSE: the test is not about it
                     ("  min_improvement: 0.0", "  min_improvement: -1000.0"),
                     ("  max_relative_regression: 0.05", "  max_relative_regression: 10.0")):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    params.write_text(text)
    features = project / "usecases" / "diabetes" / "features.py"
    text = features.read_text()
    # both feature functions, as a user keeps them in step: the frame one (training, batch) and the
    # array one (the endpoint's few-row fast path, checked against the frame one when it loads)
    for fn, clip in (("def build_features(", 'out["glu"] = out["glu"].clip(upper=100.0)'),
                     ("def build_feature_arrays(", 'out["glu"] = np.minimum(out["glu"], 100.0)')):
        head, body = text.split(fn)
        assert "\n    return out\n" in body, fn
        text = head + fn + body.replace("\n    return out\n", f"\n    {clip}\n    return out\n", 1)
    features.write_text(text)
    resources = project / "resources" / "diabetes.yml"
    text = resources.read_text()
    assert text.count("p95_ms: 5000") == 1  # relax_latency_gates' value
    resources.write_text(text.replace("p95_ms: 5000", "p95_ms: 4321"))


def train(real_env, project: Path, outputs_dir: Path, rows: list[dict]) -> dict:
    """One run of the job; what it logged, versioned, rolled out and what the endpoint then answers."""
    out = real_env.outputs
    conveyor(project, outputs_dir, "run", JOB, "-t", "dev", "--only", ONLY)
    [run] = list_runs(DeploymentStore(out, DEPLOYMENT), job=JOB, limit=1)
    assert run["status"] == "success", run
    values_dir = DeploymentStore(out, DEPLOYMENT).runs_dir / run["run_id"] / "values"
    values = {p.stem: json.loads(p.read_text()) for p in values_dir.glob("*.json")}
    ci = out.credentials["ci"]
    got = httpx.get(f"{out.tracking_uri}/api/2.0/mlflow/runs/get", params={"run_id": values["train"]["training_run_id"]},
                    auth=(ci.username, ci.password), timeout=60)
    assert got.status_code == 200, got.text
    params = {p["key"]: p["value"] for p in got.json()["run"]["data"]["params"]}
    data_version = values["ingest"]["data_version"]
    gold = pd.read_parquet(cache_file(local_path(out.storage.root) / WORKSPACES / "diabetes", data_version))
    config = json.loads((local_path(out.storage.endpoint) / ENDPOINT / "endpoint.json").read_text())
    headers = {"Authorization": f"Bearer {ci.token}"}
    deadline = time.monotonic() + 60
    while True:  # every serving worker on the new revision
        answer = httpx.post(f"{out.serving_url}/{ENDPOINT}/predict", json={"rows": rows}, headers=headers, timeout=60)
        assert answer.status_code == 200, answer.text[:500]
        served = {a["model_version"] for a in answer.json()}
        if served == {values["train"]["model_version"]} or time.monotonic() > deadline:
            break
        time.sleep(1)
    return {"alpha": params["train.alpha"], "data_version": data_version, "glu_max": float(gold["glu"].max()),
            "sla_p95_ms": config["sla"]["p95_ms"], "champion": config["champion"]["version"],
            "trained": values["train"]["model_version"], "served": served,
            "predictions": [round(a["predicted_progression"], 6) for a in answer.json()]}


@pytest.mark.timeout(1800)  # two deploys and two training runs: ~4 min alone, far more on a shared host
def test_a_run_uses_what_is_deployed_until_the_edits_are_deployed(real_env, tmp_path):
    from ml.serving.client import sample_rows

    started = time.monotonic()
    project = project_copy(ROOT, tmp_path / "checkout", branch="main", prepare=relax_latency_gates)
    outputs_dir = tmp_path / "outputs"
    outputs_dir.mkdir()
    (outputs_dir / "dev.json").write_text(real_env.outputs.model_dump_json())
    rows = [dict(r, patient_id=f"p14-{i:02d}") for i, r in enumerate(sample_rows(20, seed=14, use_case="diabetes"))]
    conveyor(project, outputs_dir, "deploy", "-t", "dev")
    try:
        edit_checkout(project)
        before = train(real_env, project, outputs_dir, rows)
        # the deployed version: params.yaml's alpha, the original features (blood sugar up to 124), its SLA
        assert before["alpha"] == "1.0", before
        assert before["glu_max"] > 100.0, before
        assert before["sla_p95_ms"] == 5000, before
        assert before["served"] == {before["trained"]} == {before["champion"]}, before

        conveyor(project, outputs_dir, "deploy", "-t", "dev")
        after = train(real_env, project, outputs_dir, rows)
        assert after["alpha"] == "30.0", after
        assert after["glu_max"] <= 100.0 and after["data_version"] != before["data_version"], after
        assert after["sla_p95_ms"] == 4321, after
        assert after["served"] == {after["trained"]} == {after["champion"]} != before["served"], after
        assert after["predictions"] != before["predictions"]
        shown = {k: {f: v for f, v in run.items() if f != "predictions"} for k, run in (("before", before), ("after", after))}
        print(f"runs read the deployment: {json.dumps(shown, default=sorted)}")
    finally:
        conveyor(project, outputs_dir, "destroy", "-t", "dev", "--auto-approve")
        print(f"test took {time.monotonic() - started:.0f} s")
