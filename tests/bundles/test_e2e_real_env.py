"""The bundle in a real provisioned environment (`conveyor env up`): deploy, run, and the
env's own supervised scheduler starting a production job on its cron."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bundles.envstore import DeploymentStore
from bundles.runner import list_runs

pytestmark = pytest.mark.e2e

FIXTURE = Path(__file__).parent / "fixtures" / "project"


def _cli(project: Path, outputs_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, CONVEYOR_PROJECT_DIR=str(project), CONVEYOR_OUTPUTS_DIR=str(outputs_dir),
               CONVEYOR_USER="e2e", DEMO_MARKER_DIR=str(project / "markers"))
    return subprocess.run([sys.executable, "-c", "from bundles.cli import app; app()", *args],
                          cwd=project, env=env, capture_output=True, text=True, timeout=600)


def test_deploy_run_and_schedule_in_a_real_env(real_env, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(FIXTURE, project)
    (project / "markers").mkdir()
    jobs = project / "resources" / "jobs.yml"
    jobs.write_text(jobs.read_text().replace('cron: "*/5 * * * *"', 'cron: "* * * * *"'))
    outputs_dir = tmp_path / "outputs"
    outputs_dir.mkdir()
    for stack in ("dev", "staging"):
        (outputs_dir / f"{stack}.json").write_text(real_env.outputs.model_dump_json())
    outputs = real_env.outputs

    for args in (["deploy", "-t", "dev"], ["deploy", "-t", "staging", "--force"]):
        proc = _cli(project, outputs_dir, *args)
        assert proc.returncode == 0, proc.stderr
    ci = outputs.credentials["ci"]
    exp = httpx.get(f"{outputs.tracking_uri}/api/2.0/mlflow/experiments/get-by-name",
                    params={"experiment_name": "demo-experiment"}, auth=(ci.username, ci.password), timeout=60)
    assert exp.status_code == 200, exp.text

    ran = _cli(project, outputs_dir, "run", "train_job", "-t", "dev")
    assert ran.returncode == 0, ran.stderr
    marker = json.loads((project / "markers" / "train_job.train.json").read_text())
    assert marker["tracking"] == outputs.tracking_uri and marker["env"] == outputs.env

    # The env's scheduler (under its supervisor) picks up the unpaused production schedule.
    staging = DeploymentStore(outputs, "demo.staging")
    deadline = time.time() + 200
    scheduled = []
    while time.time() < deadline and not scheduled:
        scheduled = [r for r in list_runs(staging) if r["trigger"] == "schedule" and r["status"] != "running"]
        time.sleep(3)
    assert scheduled and scheduled[0]["status"] == "success", list_runs(staging)
    dev_runs = list_runs(DeploymentStore(outputs, "demo.dev.e2e"))
    assert {r["trigger"] for r in dev_runs} == {"manual"}  # development schedules stay paused

    for target in ("dev", "staging"):
        proc = _cli(project, outputs_dir, "destroy", "-t", target, "--auto-approve")
        assert proc.returncode == 0, proc.stderr
    gone = httpx.get(f"{outputs.tracking_uri}/api/2.0/mlflow/experiments/get-by-name",
                     params={"experiment_name": "demo-experiment"}, auth=(ci.username, ci.password), timeout=60)
    assert gone.status_code == 404 or gone.json()["experiment"]["lifecycle_stage"] == "deleted"
