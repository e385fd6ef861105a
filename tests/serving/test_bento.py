"""The endpoint's service as a Bento (the only one: one service, one request schema): built once per
code version, it serves the models the endpoint config names, by their tag in the BentoML model store
of its `BENTOML_HOME` (where `deploy_model` imports each champion)."""

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
from ml.serving.endpoint_config import ServedModel, promote, update_config
from tests.serving.serving_helpers import ROOT, TOKEN, Endpoint, free_port, import_into_store

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


def test_endpoint_bento_serves_the_configured_model_by_its_tag_in_the_store(tmp_path, models, rows):
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

    model_tag = import_into_store(models["v1"], home, "fraud-detector-test", "1", env, data_version="abc")
    assert model_tag == "fraud-detector-test:v1"

    ep_dir, table = tmp_path / "endpoint", tmp_path / "inference"
    ep = _serve(tag, env, tmp_path, CONVEYOR_ENDPOINT_DIR=ep_dir, CONVEYOR_INFERENCE_TABLE=table)
    try:
        assert ep.post(rows[:1]).status_code == 503
        by_tag = ServedModel(name="fraud-detector-test", version="1", uri=f"bentoml:{model_tag}")
        cfg = update_config(ep_dir, lambda c: promote(c, by_tag), by="test", reason="v1")
        client.wait_for_revision(ep.url, cfg.revision, timeout_s=60, confirmations=1, token=TOKEN)
        assert ep.post(rows[:2]).json()[1]["model_version"] == "1"
        bad = dict(rows[0])
        bad.pop("customer_id")
        assert "rows[0].customer_id" in ep.post([bad]).json()["error"]  # the one request schema
    finally:
        assert ep.stop(), "the Bento shuts down on SIGTERM within the grace period"
