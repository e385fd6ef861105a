"""Real `pulumi up` of two environments in a throw-away project and state dir.

What a platform user relies on: each env's tracking server answers, anonymous
users get nothing, a data scientist can read prod but not create in it, a second
`up` changes nothing, `refresh` notices a dead server and `up` repairs it, and
destroying one env leaves the other running.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.envs import make_project, not_owner_only, pulumi_cmd, run
from tests.ports import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("envs")
    ports = {name: (free_port(), free_port()) for name in ("alpha", "beta")}
    proj = make_project(root, {
        # alpha is shaped like dev (data scientists write), beta like prod (they read).
        "alpha": {"ports": ports["alpha"], "data_scientist": "write", "default_permission": "EDIT"},
        "beta": {"ports": ports["beta"], "data_scientist": "read", "default_permission": "READ"},
    })
    for env in ("alpha", "beta"):
        run(proj, [sys.executable, "-m", "conveyor.cli", "env", "up", env])
    yield proj
    for env in ("alpha", "beta"):
        run(proj, [sys.executable, "-m", "conveyor.cli", "env", "down", env], check=False)


def outputs(proj, env) -> dict:
    out = run(proj, pulumi_cmd("stack", "output", "--json", "--show-secrets", "-s", env))
    return json.loads(out.stdout)


def test_tracking_servers_answer_and_anonymous_is_refused(project):
    for env in ("alpha", "beta"):
        out = outputs(project, env)
        assert httpx.get(f"{out['tracking_uri']}/health", timeout=30).status_code == 200
        anon = httpx.get(f"{out['tracking_uri']}/api/2.0/mlflow/experiments/search",
                         params={"max_results": 5}, timeout=30)
        assert anon.status_code == 401
        cred = out["credentials"]["ci"]
        ok = httpx.get(f"{out['tracking_uri']}/api/2.0/mlflow/experiments/search", params={"max_results": 5},
                       auth=(cred["username"], cred["password"]), timeout=30)
        assert ok.status_code == 200


def test_envs_are_isolated(project):
    alpha, beta = outputs(project, "alpha"), outputs(project, "beta")
    assert alpha["tracking_uri"] != beta["tracking_uri"]
    assert alpha["serving_url"] != beta["serving_url"]
    assert alpha["storage_uri"] != beta["storage_uri"]
    # Credentials of one env are not valid in the other.
    cred = alpha["credentials"]["ci"]
    cross = httpx.get(f"{beta['tracking_uri']}/api/2.0/mlflow/experiments/search", params={"max_results": 5},
                      auth=(cred["username"], cred["password"]), timeout=30)
    assert cross.status_code == 401


def _create_model(out, persona, name):
    cred = out["credentials"][persona]
    return httpx.post(f"{out['tracking_uri']}/api/2.0/mlflow/registered-models/create", json={"name": name},
                      auth=(cred["username"], cred["password"]), timeout=30)


def test_data_scientist_reads_prod_but_cannot_create_there(project):
    beta = outputs(project, "beta")
    assert _create_model(beta, "ci", "fraud-detector").status_code == 200
    cred = beta["credentials"]["data_scientist"]
    listed = httpx.get(f"{beta['tracking_uri']}/api/2.0/mlflow/registered-models/search",
                       auth=(cred["username"], cred["password"]), timeout=30)
    assert listed.status_code == 200
    assert [m["name"] for m in listed.json()["registered_models"]] == ["fraud-detector"]
    denied = _create_model(beta, "data_scientist", "my-experiment-model")
    assert denied.status_code == 403
    assert "read-only" in denied.json()["message"]


def test_data_scientist_creates_in_dev(project):
    assert _create_model(outputs(project, "alpha"), "data_scientist", "scratch-model").status_code == 200


def test_serving_endpoint_answers_health_and_refuses_without_a_model(project):
    out = outputs(project, "alpha")
    assert httpx.get(f"{out['serving_url']}/livez", timeout=30).status_code == 200
    no_token = httpx.post(f"{out['serving_url']}/predict", json={"rows": []}, timeout=30)
    assert no_token.status_code == 401
    token = out["credentials"]["ci"]["token"]
    no_model = httpx.post(f"{out['serving_url']}/predict", json={"rows": [{"amount": 1.0}]},
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert no_model.status_code == 503


def test_second_up_is_a_no_op(project):
    run(project, pulumi_cmd("preview", "-s", "alpha", "--expect-no-changes"))


def test_state_is_owner_only(project):
    """The passphrase, MLflow's databases (password hashes), the supervisor's configs and the
    outputs (credentials), and all of an env's storage: dirs 0700, files 0600, including what
    the servers created after `up` (they run with umask 077)."""
    state = project / ".state"
    assert not_owner_only(state / "secrets") == []
    assert (state / "secrets" / "pulumi-passphrase").is_file()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    env = state / "envs" / "alpha"
    for path in ("storage/tracking/auth.db", "storage/tracking/mlflow.db", "run/supervisord.conf",
                 "run/programs/tracking.conf", "run/programs/serving.conf", "run/mlflow-auth.ini", "run/outputs.json"):
        assert (env / path).is_file(), path
    assert not_owner_only(env) == []


def _supervisord_pid(proj: Path, env: str) -> int:
    return int((proj / ".state" / "envs" / env / "run" / "supervisord.pid").read_text())


def test_refresh_notices_a_dead_tracking_server_and_up_repairs_it(project):
    out = outputs(project, "alpha")
    # Kill the whole supervision tree (daemon first, so nothing restarts the server), down to
    # every descendant: bentoml's workers live in their own process group, and a worker left
    # behind would outlive the test.
    daemon = _supervisord_pid(project, "alpha")
    tree = _descendants(daemon)
    os.kill(daemon, signal.SIGKILL)
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{out['tracking_uri']}/health", timeout=5)

    run(project, pulumi_cmd("refresh", "-s", "alpha", "--yes", "--skip-preview"))
    changed = run(project, pulumi_cmd("preview", "-s", "alpha", "--json"), check=False)
    steps = json.loads(changed.stdout)["steps"]
    assert any(s["op"] == "update" and s["urn"].endswith("alpha-tracking-server") for s in steps)

    run(project, [sys.executable, "-m", "conveyor.cli", "env", "up", "alpha"])
    assert httpx.get(f"{out['tracking_uri']}/health", timeout=30).status_code == 200


def _descendants(pid: int) -> list[int]:
    children = [int(c) for c in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
    return [d for c in children for d in (c, *_descendants(c))]


def test_destroy_one_env_leaves_the_other_running(project):
    alpha, beta = outputs(project, "alpha"), outputs(project, "beta")
    run(project, [sys.executable, "-m", "conveyor.cli", "env", "down", "alpha"])
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{alpha['tracking_uri']}/health", timeout=5)
    assert httpx.get(f"{beta['tracking_uri']}/health", timeout=30).status_code == 200
    assert httpx.get(f"{beta['serving_url']}/livez", timeout=30).status_code == 200
    assert not (project / ".state" / "envs" / "alpha" / "storage").exists()


def test_bad_stack_config_fails_preview_naming_the_key(tmp_path):
    from tests.e2e.envs import make_project

    proj = make_project(tmp_path, {"bad": {"ports": (free_port(), free_port()), "data_scientist": "write",
                                           "default_permission": "EDIT"}})
    stack_file = proj / "Pulumi.bad.yaml"
    stack_file.write_text(stack_file.read_text().replace("conveyor:platform: local", "conveyor:platform: nomad"))
    proc = run(proj, pulumi_cmd("preview", "-s", "bad"), check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "conveyor:platform: Input should be 'local' or 'kubernetes', got 'nomad'" in text
    assert "Traceback" not in text
