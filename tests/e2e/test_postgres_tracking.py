"""Real `pulumi up` of an env whose MLflow runs on PostgreSQL (`conveyor:tracking.database:
postgresql`), in a throw-away project: the platform initdb's the server into the env's
storage and supervises it, and nothing is lost when it dies or the env is brought up again.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from infra.config import ConfigError
from infra.local import postgres, supervisor
from tests.e2e.envs import make_project, not_owner_only, pulumi_cmd, run
from tests.ports import free_port

ENV = "pgprod"


def _server_installed() -> bool:
    try:
        postgres.server_bin_dir()
        return True
    except ConfigError:
        return False


pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not _server_installed(), reason="PostgreSQL server not installed (scripts/postgres.sh)"),
]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    proj = make_project(tmp_path_factory.mktemp("pg"), {
        ENV: {"ports": (free_port(), free_port()), "data_scientist": "read", "default_permission": "READ"},
    })
    stack_file = proj / f"Pulumi.{ENV}.yaml"
    doc = yaml.safe_load(stack_file.read_text())
    doc["config"]["conveyor:tracking"] = {"database": "postgresql", "port": free_port()}
    stack_file.write_text(yaml.safe_dump(doc))
    run(proj, [sys.executable, "-m", "conveyor.cli", "env", "up", ENV])
    yield proj
    run(proj, [sys.executable, "-m", "conveyor.cli", "env", "down", ENV], check=False)


def _outputs(proj: Path) -> dict:
    return json.loads(run(proj, pulumi_cmd("stack", "output", "--json", "--show-secrets", "-s", ENV)).stdout)


def _env_dir(proj: Path) -> Path:
    return proj / ".state" / "envs" / ENV


class Mlflow:
    """MLflow's REST API as the env's `ci` persona (whose login lives in the auth database)."""

    def __init__(self, out: dict):
        cred = out["credentials"]["ci"]
        self.client = httpx.Client(base_url=f"{out['tracking_uri']}/api/2.0/mlflow",
                                   auth=(cred["username"], cred["password"]), timeout=30)

    def call(self, method: str, path: str, **kwargs) -> dict:
        resp = self.client.request(method, path, **kwargs)
        assert resp.status_code == 200, f"{method} {path}: {resp.status_code} {resp.text[:300]}"
        return resp.json()

    def state(self, run_id: str, model: str) -> tuple:
        """What must survive: the run's metric and the model's version source."""
        metric = self.call("GET", "/runs/get", params={"run_id": run_id})["run"]["data"]["metrics"][0]
        version = self.call("GET", "/model-versions/get", params={"name": model, "version": "1"})["model_version"]
        return metric["key"], metric["value"], version["source"]

    def wait_state(self, run_id: str, model: str, timeout: float = 90) -> tuple:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.state(run_id, model)
            except (AssertionError, httpx.TransportError, KeyError, IndexError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.25)


def test_tracking_runs_on_postgres_in_the_envs_private_storage(project):
    data = _env_dir(project) / "storage" / "tracking" / "postgres"
    assert (data / "PG_VERSION").is_file()
    assert not_owner_only(_env_dir(project)) == []  # the server's files too
    assert not list(data.parent.glob("*.db")), "no sqlite stores beside the server"
    conf = (_env_dir(project) / "run" / "programs" / "tracking.conf").read_text()
    assert 'MLFLOW_BACKEND_STORE_URI="postgresql://mlflow:' in conf
    assert "--backend-store-uri" not in conf  # the password stays out of argv
    assert "stopsignal=INT" in (_env_dir(project) / "run" / "programs" / "postgres.conf").read_text()
    auth_ini = (_env_dir(project) / "run" / "mlflow-auth.ini").read_text()
    assert "database_uri = postgresql://mlflow:" in auth_ini and "/mlflow_auth" in auth_ini


def test_a_run_and_a_model_survive_kill_9_of_postgres_and_a_second_up(project):
    out = _outputs(project)
    mlflow = Mlflow(out)
    experiment = mlflow.call("POST", "/experiments/create", json={"name": "pg-durability"})["experiment_id"]
    run_id = mlflow.call("POST", "/runs/create", json={"experiment_id": experiment})["run"]["info"]["run_id"]
    mlflow.call("POST", "/runs/log-metric", json={"run_id": run_id, "key": "auc", "value": 0.91, "timestamp": 1, "step": 0})
    mlflow.call("POST", "/registered-models/create", json={"name": "fraud-pg"})
    mlflow.call("POST", "/model-versions/create", json={"name": "fraud-pg", "source": f"runs:/{run_id}/model",
                                                         "run_id": run_id})
    before = mlflow.state(run_id, "fraud-pg")
    assert before == ("auc", 0.91, f"runs:/{run_id}/model")

    run_dir = _env_dir(project) / "run"
    old_pid = supervisor.program_info(run_dir, "postgres")["pid"]
    killed = time.monotonic()
    os.kill(old_pid, signal.SIGKILL)
    # The postmaster's backends can answer a pooled connection for a moment after it dies, so
    # wait for the supervisor's restart first, then for MLflow to serve the same data from it.
    info = _restarted(run_dir, old_pid, timeout_s=60)
    assert info["statename"] == "RUNNING" and info["pid"] != old_pid, "supervisord restarted postgres"
    assert mlflow.wait_state(run_id, "fraud-pg") == before
    back = time.monotonic() - killed
    print(f"\npostgres kill -9: MLflow served the run and the model again after {back:.1f}s")

    started = time.monotonic()
    run(project, pulumi_cmd("up", "--yes", "--skip-preview", "--expect-no-changes", "-s", ENV))
    print(f"second `pulumi up`: {time.monotonic() - started:.1f}s, no changes")
    assert mlflow.state(run_id, "fraud-pg") == before
    assert supervisor.program_info(run_dir, "postgres")["pid"] == info["pid"], "the second up left postgres alone"


def _restarted(run_dir: Path, old_pid: int, timeout_s: float) -> dict:
    """The postgres program's supervisor info once it runs under a new pid (or the last seen)."""
    deadline = time.monotonic() + timeout_s
    info = supervisor.program_info(run_dir, "postgres")
    while time.monotonic() < deadline and not (info["statename"] == "RUNNING" and info["pid"] != old_pid):
        time.sleep(0.2)
        info = supervisor.program_info(run_dir, "postgres")
    return info
