"""The serving pod as rendered for staging, run for real on loopback.

The rendered command, env and tokens file; paths that would be volumes point at a temp
dir. Checks what the kubelet and callers rely on: the probe paths answer, the tokens file
Pulumi writes is the format the endpoint's gate reads, and an env without a model says 503.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.infra_k8s.harness import ROOT, find, outputs
from tests.ports import free_port

pytestmark = pytest.mark.slow
http = httpx.Client(timeout=60)


@pytest.fixture(scope="module")
def serving_pod(rendered, tmp_path_factory):
    render = rendered["staging"]
    tmp: Path = tmp_path_factory.mktemp("serving-pod")
    container = find(render, "Deployment", "serving")["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    (tmp / "tokens").mkdir()
    (tmp / "tokens" / "tokens.json").write_text(find(render, "Secret", "serving")["stringData"]["tokens.json"])

    def local(value: str) -> str:  # volume paths → temp dirs
        for name, mount in mounts.items():
            if value.startswith(mount):
                return str(tmp / name) + value[len(mount):]
        return value

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = local(item["value"])
    env["MLFLOW_TRACKING_PASSWORD"] = "unused-without-a-model"
    port = free_port()
    args = list(container["args"])
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    command = [str(Path(sys.executable).with_name(container["command"][0])), *container["command"][1:], *args]
    log = open(tmp / "serving.log", "w")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    probes = {"readiness": container["readinessProbe"]["httpGet"]["path"],
              "liveness": container["livenessProbe"]["httpGet"]["path"]}
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if http.get(f"{url}{probes['liveness']}", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"serving did not start:\n{(tmp / 'serving.log').read_text()[-3000:]}")
            time.sleep(1)
        yield url, probes, outputs(render)["credentials"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_probe_paths_answer(serving_pod):
    url, probes, _ = serving_pod
    assert http.get(f"{url}{probes['liveness']}").status_code == 200
    assert http.get(f"{url}{probes['readiness']}").status_code == 200  # no model yet is still ready


def test_persona_tokens_from_the_stack_open_the_endpoint(serving_pod):
    url, _, credentials = serving_pod
    body = {"rows": []}
    assert http.post(f"{url}/predict", json=body).status_code == 401
    assert http.post(f"{url}/predict", json=body, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    token = credentials["data_scientist"]["token"]
    answer = http.post(f"{url}/predict", json=body, headers={"Authorization": f"Bearer {token}"})
    # past the token check: the pod runs the launcher, which has no serving code before a bundle deploy
    assert answer.status_code == 503 and "no serving code is deployed" in answer.json()["error"]
