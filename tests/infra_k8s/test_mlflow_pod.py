"""The MLflow pod as rendered for prod, run for real on loopback (sqlite instead of PostgreSQL/S3).

Takes the rendered container's command, args and environment, the rendered auth config,
users file and roles; runs the init container's bootstrap, then `mlflow server` — so the
persona permissions, the admin, and the allowed Host headers are what a cluster would get.
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

from infra.kubernetes import bootstrap
from tests.infra_k8s.harness import ROOT, find
from tests.ports import free_port

pytestmark = pytest.mark.slow
# password hashing is deliberately slow (and the machine may be busy)
http = httpx.Client(timeout=60)


def _swap(args: list[str], flag: str, value: str) -> list[str]:
    out = list(args)
    out[out.index(flag) + 1] = value
    return out


@pytest.fixture(scope="module")
def mlflow_pod(rendered, tmp_path_factory):
    render = rendered["prod"]
    tmp: Path = tmp_path_factory.mktemp("mlflow-pod")
    secret = find(render, "Secret", "mlflow-auth")["stringData"]
    roles = find(render, "ConfigMap", "mlflow-roles")["data"]["roles.json"]
    container = find(render, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]

    auth_db = f"sqlite:///{tmp / 'auth.db'}"
    ini = "\n".join(f"database_uri = {auth_db}" if line.startswith("database_uri") else line
                    for line in secret["basic_auth.ini"].splitlines())
    (tmp / "basic_auth.ini").write_text(ini + "\n")
    (tmp / "users.json").write_text(secret["users.json"])
    (tmp / "roles.json").write_text(roles)

    # the init container
    os.environ.pop("CONVEYOR_CREATE_BUCKET", None)
    assert bootstrap.ensure_users(auth_db, json.loads(secret["users.json"]))

    port = free_port()
    args = _swap(_swap(_swap(container["args"], "--host", "127.0.0.1"), "--port", str(port)),
                 "--artifacts-destination", str(tmp / "artifacts"))
    args = _swap(args, "--workers", "1")
    env = {
        **os.environ,
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp / 'mlflow.db'}",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secret["flask-secret-key"],
        "PYTHONPATH": str(ROOT),
    }
    for item in container["env"]:
        if "value" in item and item["name"] not in ("HOME",):
            env[item["name"]] = item["value"]
    env["MLFLOW_AUTH_CONFIG_PATH"] = str(tmp / "basic_auth.ini")
    env["CONVEYOR_MLFLOW_ROLES_FILE"] = str(tmp / "roles.json")
    command = [str(Path(sys.executable).with_name(container["command"][0])), *container["command"][1:], *args]
    log = open(tmp / "mlflow.log", "w")
    proc = subprocess.Popen(command, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if http.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mlflow did not start:\n{(tmp / 'mlflow.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, json.loads(secret["users.json"]), port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_anonymous_gets_nothing(mlflow_pod):
    url, _, _ = mlflow_pod
    assert http.get(f"{url}/api/2.0/mlflow/experiments/search", params={"max_results": 1}).status_code == 401


def test_prod_data_scientist_reads_but_cannot_write(mlflow_pod):
    url, users, _ = mlflow_pod
    auth = ("data_scientist", users["data_scientist"]["password"])
    assert http.get(f"{url}/api/2.0/mlflow/experiments/search", params={"max_results": 1}, auth=auth).status_code == 200
    denied = http.post(f"{url}/api/2.0/mlflow/registered-models/create", json={"name": "fraud"}, auth=auth)
    assert denied.status_code == 403


def test_ci_writes_and_the_admin_is_the_only_admin(mlflow_pod):
    url, users, _ = mlflow_pod
    ci = ("ci", users["ci"]["password"])
    assert http.post(f"{url}/api/2.0/mlflow/registered-models/create", json={"name": "fraud-ci"}, auth=ci).status_code == 200
    admin = ("conveyor-admin", users["conveyor-admin"]["password"])
    got = http.get(f"{url}/api/2.0/mlflow/users/get", params={"username": "ci"}, auth=admin)
    assert got.status_code == 200 and got.json()["user"]["is_admin"] is False
    assert http.get(f"{url}/api/2.0/mlflow/users/get", params={"username": "data_scientist"}, auth=ci).status_code == 403


def test_in_cluster_and_port_forward_hosts_are_accepted_others_are_not(mlflow_pod):
    url, users, port = mlflow_pod
    auth = ("ci", users["ci"]["password"])
    path = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    for host in ["mlflow:5000", "mlflow.conveyor-prod:5000", "mlflow.conveyor-prod.svc.cluster.local:5000",
                 f"127.0.0.1:{port}", f"localhost:{port}"]:
        assert http.get(path, headers={"Host": host}, auth=auth).status_code == 200, host
    assert http.get(path, headers={"Host": "mlflow.conveyor-dev.svc.cluster.local:5000"}, auth=auth).status_code != 200
    assert http.get(path, headers={"Host": "evil.example"}, auth=auth).status_code != 200
