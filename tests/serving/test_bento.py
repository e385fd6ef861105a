"""The endpoint's code as a Bento: built from the repo, served by tag, models from the endpoint config."""

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

    ep_dir, table, tokens = tmp_path / "endpoint", tmp_path / "inference", tmp_path / "tokens.json"
    tokens.write_text(json.dumps([hashlib.sha256(TOKEN.encode()).hexdigest()]))
    port, log = free_port(), tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", tag, "--host", "127.0.0.1", "--port", str(port)],
                            cwd=tmp_path, start_new_session=True, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            env={**env, "CONVEYOR_ENV": "bento", "CONVEYOR_ENDPOINT_DIR": str(ep_dir),
                                 "CONVEYOR_INFERENCE_TABLE": str(table), "CONVEYOR_SERVING_TOKENS_FILE": str(tokens)})
    ep = Endpoint(f"http://127.0.0.1:{port}", ep_dir, table, proc, log)
    try:
        for _ in range(300):
            try:
                if httpx.get(ep.url + "/livez", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert ep.post(rows[:1]).status_code == 503
        cfg = update_config(ep_dir, lambda c: promote(c, served(models["v1"], "1")), by="test", reason="v1")
        client.wait_for_revision(ep.url, cfg.revision, timeout_s=60, confirmations=1)
        assert ep.post(rows[:2]).json()[1]["model_version"] == "1"
    finally:
        assert ep.stop() is not None
