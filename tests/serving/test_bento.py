"""The endpoint's service as a Bento: the code-only one (models from the endpoint config) and the
pinned one `deploy_model` packages per champion — the same service and request schema."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from ml.serving import client
from ml.serving.endpoint_config import promote, update_config
from tests.serving.serving_helpers import ROOT, TOKEN, Endpoint, free_port, served

pytestmark = pytest.mark.slow


def _serve(tag: str, env: dict, tmp_path, **conveyor_env) -> Endpoint:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps([hashlib.sha256(TOKEN.encode()).hexdigest()]))
    port, log = free_port(), tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", tag, "--host", "127.0.0.1", "--port", str(port)],
                            cwd=tmp_path, start_new_session=True, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            env={**env, "CONVEYOR_ENV": "bento", "CONVEYOR_SERVING_TOKENS_FILE": str(tokens),
                                 **{k: str(v) for k, v in conveyor_env.items()}})
    ep = Endpoint(f"http://127.0.0.1:{port}", conveyor_env.get("CONVEYOR_ENDPOINT_DIR"),
                  conveyor_env.get("CONVEYOR_INFERENCE_TABLE"), proc, log)
    for _ in range(300):
        try:
            if httpx.get(ep.url + "/livez", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.3)
    return ep


def test_built_bento_serves_the_configured_model(tmp_path, models, rows):
    home = tmp_path / "bentoml"
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    build = subprocess.run([sys.executable, "-m", "ml.serving.bento"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    tag = build.stdout.strip().splitlines()[-1]
    assert tag.startswith("conveyor_endpoint:")
    again = subprocess.run([sys.executable, "-m", "ml.serving.bento"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=600)
    assert again.stdout.strip().splitlines()[-1] == tag  # same code → same Bento, nothing rebuilt

    ep_dir, table = tmp_path / "endpoint", tmp_path / "inference"
    ep = _serve(tag, env, tmp_path, CONVEYOR_ENDPOINT_DIR=ep_dir, CONVEYOR_INFERENCE_TABLE=table)
    try:
        assert ep.post(rows[:1]).status_code == 503
        cfg = update_config(ep_dir, lambda c: promote(c, served(models["v1"], "1")), by="test", reason="v1")
        client.wait_for_revision(ep.url, cfg.revision, timeout_s=60, confirmations=1, token=TOKEN)
        assert ep.post(rows[:2]).json()[1]["model_version"] == "1"
    finally:
        assert ep.stop(), "the Bento shuts down on SIGTERM within the grace period"


def test_pinned_bento_of_a_champion_serves_it_with_the_endpoint_schema(tmp_path, models, rows):
    home = tmp_path / "bentoml"
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    script = (
        "import json, sys, mlflow.sklearn\n"
        "from pathlib import Path\n"
        "from ml.deployment.package import package\n"
        "out = package(mlflow.sklearn.load_model(sys.argv[1]), bentoml_home=Path(sys.argv[2]), "
        "registered_model='fraud-detector-test', version='1', data_version='abc', git_sha='0123456789abcdef', "
        "service='fraud_detector', threshold=0.4)\n"
        "print(json.dumps(out))\n")
    built = subprocess.run([sys.executable, "-c", script, str(models["v1"]), str(home)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    packaged = json.loads(built.stdout.strip().splitlines()[-1])
    assert packaged["bento"] == "fraud_detector:v1-0123456789ab"
    assert packaged["bentoml_model"] == "fraud-detector-test:v1"

    ep = _serve(packaged["bento"], env, tmp_path)  # no endpoint config: the Bento is the model
    try:
        assert httpx.get(ep.url + "/readyz", timeout=5).status_code == 200
        assert ep.post(rows[:1], token=None).status_code == 401
        bad = dict(rows[0])
        bad.pop("customer_id")
        assert "rows[0].customer_id" in ep.post([bad]).json()["error"]  # the one request schema
        answer = ep.post(rows[:3])
        assert answer.status_code == 200, answer.text
        assert [(p["model_version"], p["served_by"]) for p in answer.json()] == [("1", "champion")] * 3
        assert ep.status()["models"]["champion"]["name"] == "fraud-detector-test"
    finally:
        assert ep.stop(), "the Bento shuts down on SIGTERM within the grace period"
