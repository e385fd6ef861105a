"""`update_endpoint` as the bundle runner starts it, against a real MLflow registry and endpoint;
then `conveyor model rollback`. A run hands it deploy_model's decision (`--version`); the `champion`
alias (and `champion.json`) move only once that version serves."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid

import pytest
from typer.testing import CliRunner

from core.contract import Credential, EnvironmentOutputs, storage_layout
from ml.registry import champion_pointer
from ml.serving.endpoint_config import read_config
from tests.serving.serving_helpers import ROOT, endpoint_traffic

pytestmark = pytest.mark.slow
NAME = "fraud-detector-svc"
TOKEN = "ci-token"


@pytest.fixture(scope="module")
def env(tmp_path_factory, models, mlflow_server):
    """An env on the session's MLflow server (its registered model, NAME, is this module's alone)."""
    root = tmp_path_factory.mktemp("svcenv")
    server = mlflow_server
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(server.uri)
    for key in ("v1", "v2"):
        with mlflow.start_run() as run:
            mlflow.log_artifacts(str(models[key]), "model")
        mlflow.register_model(f"runs:/{run.info.run_id}/model", NAME)
    storage = root / "storage"
    layout = storage_layout(storage.as_uri())
    ep_dir, table = (storage / "endpoint"), (storage / "tables" / "inference")
    # the endpoint reads the env's storage, like infra starts it
    tokens = root / "tokens.json"
    tokens.write_text(json.dumps([hashlib.sha256(TOKEN.encode()).hexdigest()]))
    endpoint = _serve(root, ep_dir, table, tokens)
    outputs = EnvironmentOutputs(
        env="svc", platform="local", tracking_uri=server.uri, serving_url=endpoint.url, storage_uri=storage.as_uri(),
        storage=layout, credentials={p: Credential(username=p, password="x", token=TOKEN)
                                     for p in ("data_scientist", "ml_engineer", "ci")})
    (root / "outputs.json").write_text(outputs.model_dump_json())
    yield {"root": root, "outputs": root / "outputs.json", "endpoint": endpoint, "client": MlflowClient(server.uri),
           "tracking": server.uri, "ep_dir": ep_dir}
    endpoint.stop()


def _serve(root, ep_dir, table, tokens):
    import time

    import httpx

    from tests.serving.serving_helpers import Endpoint, free_port

    port = free_port()
    log = root / "serve2.log"
    proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "ml.serving.service:ConveyorEndpoint",
                             "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT, start_new_session=True,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            env={**os.environ, "CONVEYOR_ENV": "svc", "CONVEYOR_ENDPOINT_DIR": str(ep_dir),
                                 "CONVEYOR_INFERENCE_TABLE": str(table), "CONVEYOR_SERVING_TOKENS_FILE": str(tokens),
                                 # the env's model store, where update_endpoint puts what it rolls out
                                 "BENTOML_HOME": str(ep_dir.parent / "bentos")})
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/livez", timeout=1).status_code == 200:
                return Endpoint(url, ep_dir, table, proc, log)
        except httpx.HTTPError:
            time.sleep(0.3)
    raise RuntimeError(log.read_text()[-2000:])


def _endpoint_file(tmp_path, strategy: str, p95_ms: float = 5000) -> str:
    path = tmp_path / "endpoint.yml"
    path.write_text(f"""
resources:
  serving_endpoints:
    fraud_endpoint:
      model: {NAME}
      served: [{{alias: champion, traffic_percentage: 100}}]
      rollout:
        strategy: {strategy}
        stages: [{{percent: 50, seconds: 2, min_requests: 5}}, {{percent: 100, seconds: 2, min_requests: 5}}]
        max_stage_wait_s: 60
        sla: {{p95_ms: {p95_ms}, min_qps: 1, duration_s: 1, concurrency: 2}}
""")
    return str(path)


def _run(env, *args):
    run_id = uuid.uuid4().hex[:8]
    values = env["root"] / "values" / run_id
    values.mkdir(parents=True)
    e = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CONVEYOR_"))}
    e.update(CONVEYOR_ENV_OUTPUTS=str(env["outputs"]), CONVEYOR_ENV="svc", CONVEYOR_PERSONA="ci", CONVEYOR_JOB="model_training_job",
             CONVEYOR_RUN_ID=run_id, CONVEYOR_TASK="update_endpoint", CONVEYOR_TASK_VALUES_DIR=str(values),
             MLFLOW_TRACKING_URI=env["tracking"])
    proc = subprocess.run([sys.executable, "-m", "ml.serving.update_endpoint", "--model-name", NAME, *args], cwd=ROOT, env=e,
                          capture_output=True, text=True, timeout=600)
    return proc, json.loads((values / "update_endpoint.json").read_text()) if (values / "update_endpoint.json").exists() else {}


def test_update_endpoint_follows_the_champion_alias_and_rollback_restores(env, tmp_path, rows):
    client, ep = env["client"], env["endpoint"]
    client.set_registered_model_alias(NAME, "champion", "1")
    proc, values = _run(env, "--endpoint-file", _endpoint_file(tmp_path, "canary"))
    assert proc.returncode == 0, proc.stderr
    assert values["served_version"] == "1"  # first model goes direct, after the SLA gate
    assert ep.post(rows[:1], token=TOKEN).json()[0]["model_version"] == "1"

    client.set_registered_model_alias(NAME, "champion", "2")
    with endpoint_traffic(ep, rows, token=TOKEN):  # a canary advances on challenger requests: live traffic
        proc, values = _run(env, "--endpoint-file", _endpoint_file(tmp_path, "canary"))
    assert proc.returncode == 0, proc.stderr
    assert "canary passed" in proc.stdout and values["served_version"] == "2"
    # the alias stayed on what served until the canary completed, then moved
    assert "alias champion stays on v1 until the rollout completes" in proc.stdout
    assert "rollout complete; alias champion moved to v2" in proc.stdout
    assert client.get_model_version_by_alias(NAME, "champion").version == "2"

    proc, _ = _run(env, "--endpoint-file", _endpoint_file(tmp_path, "canary"))
    assert proc.returncode == 0 and "already serves" in proc.stdout

    from ml.cli import app

    result = CliRunner().invoke(app, ["rollback", "-t", "svc"], env={"CONVEYOR_ENV_OUTPUTS": str(env["outputs"])})
    assert result.exit_code == 0, result.output
    assert "serving fraud-detector-svc v1" in result.output
    assert ep.post(rows[:1], token=TOKEN).json()[0]["model_version"] == "1"
    assert client.get_model_version_by_alias(NAME, "champion").version == "1"


def test_failed_sla_keeps_champion_and_realigns_the_alias(env, tmp_path, rows):
    client, ep = env["client"], env["endpoint"]
    served = read_config(env["ep_dir"]).champion.version
    other = "2" if served == "1" else "1"
    client.set_registered_model_alias(NAME, "champion", other)
    proc, _ = _run(env, "--endpoint-file", _endpoint_file(tmp_path, "direct", p95_ms=0.01))
    assert proc.returncode == 1
    assert "failed the SLA (p95" in proc.stderr and "champion unchanged" in proc.stderr and "Traceback" not in proc.stderr
    assert ep.post(rows[:1], token=TOKEN).json()[0]["model_version"] == served
    assert client.get_model_version_by_alias(NAME, "champion").version == served
    assert client.get_model_version(NAME, other).tags["endpoint_rollout"] == "failed"


def test_ab_rollout_then_promote_by_hand(env, tmp_path, rows):
    client, ep = env["client"], env["endpoint"]
    served = read_config(env["ep_dir"]).champion.version
    other = "2" if served == "1" else "1"
    client.set_registered_model_alias(NAME, "champion", other)
    path = _endpoint_file(tmp_path, "ab")
    text = open(path).read().replace("strategy: ab", "strategy: ab\n        challenger_percent: 50")
    open(path, "w").write(text)
    proc, values = _run(env, "--endpoint-file", path)
    assert proc.returncode == 0, proc.stderr
    assert values["served_version"] == served  # champion unchanged while the A/B test runs
    answers = {p["served_by"]: p["model_version"] for p in ep.post(rows[:80], token=TOKEN).json()}
    assert answers == {"champion": served, "challenger": other}

    from ml.cli import app

    status = CliRunner().invoke(app, ["status", "-t", "svc", "--json"], env={"CONVEYOR_ENV_OUTPUTS": str(env["outputs"])})
    assert status.exit_code == 0, status.output
    doc = json.loads(status.output)
    assert doc["config"]["rollout"]["strategy"] == "ab" and doc["live"]["challenger_percent"] == 50
    assert doc["live"]["models"]["challenger"]["version"] == other

    result = CliRunner().invoke(app, ["promote", "-t", "svc"], env={"CONVEYOR_ENV_OUTPUTS": str(env["outputs"])})
    assert result.exit_code == 0, result.output
    assert {p["model_version"] for p in ep.post(rows[:20], token=TOKEN).json()} == {other}
    # promoted by hand: the alias and its champion.json pointer move together
    assert client.get_model_version_by_alias(NAME, "champion").version == other
    assert json.loads(champion_pointer(env["root"] / "storage" / "models", NAME).read_text())["version"] == other
    result = CliRunner().invoke(app, ["promote", "-t", "svc"], env={"CONVEYOR_ENV_OUTPUTS": str(env["outputs"])})
    assert result.exit_code == 1 and "no challenger to promote" in result.output


def test_the_decided_version_rolls_out_and_champion_moves_only_once_it_serves(env, tmp_path):
    """As in model_training_job: deploy_model decided `other` and left `champion` on what serves."""
    client = env["client"]
    served = read_config(env["ep_dir"]).champion.version
    other = "2" if served == "1" else "1"
    client.set_registered_model_alias(NAME, "champion", served)
    pointer = champion_pointer(env["root"] / "storage" / "models", NAME)
    before = pointer.read_text() if pointer.exists() else None

    failed, _ = _run(env, "--version", other, "--endpoint-file", _endpoint_file(tmp_path, "direct", p95_ms=0.01))
    assert failed.returncode == 1 and "failed the SLA" in failed.stderr
    assert client.get_model_version_by_alias(NAME, "champion").version == served  # a failed rollout: it stays
    assert client.get_model_version_by_alias(NAME, "challenger").version == other
    assert (pointer.read_text() if pointer.exists() else None) == before

    done, values = _run(env, "--version", other, "--endpoint-file", _endpoint_file(tmp_path, "direct"))
    assert done.returncode == 0, done.stderr
    assert values["served_version"] == other and f"rollout complete; alias champion moved to v{other}" in done.stdout
    assert client.get_model_version_by_alias(NAME, "champion").version == other  # completed: it moved
    written = json.loads(pointer.read_text())
    assert written["version"] == other and written["model_uri"] == f"models:/{NAME}/{other}"
    assert written["bentoml_model"] == f"{NAME}:v{other}"

    nothing, _ = _run(env, "--version", "", "--endpoint-file", _endpoint_file(tmp_path, "direct"))
    assert nothing.returncode == 0 and "decided no version" in nothing.stdout  # a first model below baseline
    assert read_config(env["ep_dir"]).champion.version == other
