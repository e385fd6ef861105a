"""Serving code ships with `bundle deploy` (issue #14): the env's endpoint runs the deployed code,
rolls onto new code with zero failed requests under load, and keeps the old code serving when
the new code does not start. The endpoint is a Bento built from the deployed code in the env's
BentoML store, serving a model it loads by tag from the same store.

Real pieces: the launcher as the platform starts it (`python -m ml.serving.launcher`), the real
bundle engine deploying a project copy (artifact + one serving endpoint; no MLflow resources),
`bentoml serve`, `bentoml models list` / `bentoml list`. The env's storage is a tmp dir. The
batcher's latency budget is relaxed: on a shared 2-core host, building and starting the new code
next to the old slows scoring, and a request shed for latency is not what this test is about.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from bundles.engine import Engine
from bundles.envstore import DeploymentStore
from bundles.errors import BundleError
from bundles.loader import load_bundle
from core.contract import Credential, EnvironmentOutputs, storage_layout
from ml.serving import client
from ml.serving.endpoint_config import ServedModel, promote, update_config
from tests.ports import free_port
from tests.serving.serving_helpers import ROOT, TOKEN, import_into_store

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BUNDLE = """\
bundle:
  name: rollout
  artifact:
    packages: [core, ml, usecases]
targets:
  dev:
    stack: dev
    mode: development
    default: true
    run_as: ci
resources:
  serving_endpoints:
    fraud_endpoint:
      model: fraud-detector-test
      use_case: fraud
      default: true
      served:
        - {alias: champion, traffic_percentage: 100}
"""
MODEL = "fraud-detector-test"


class Load:
    """Closed-loop clients on keep-alive connections (like loadtest.run), until stopped."""

    def __init__(self, url: str, rows: list[dict], concurrency: int = 2):
        self.url, self.rows = url + "/predict", rows
        self.sent = self.failed = 0
        self.errors: list[str] = []
        self.versions: set[str] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, args=(k,), daemon=True) for k in range(concurrency)]

    def _client(self, k: int) -> None:
        with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            i = k
            while not self._stop.is_set():
                row = self.rows[i % len(self.rows)]
                i += 1
                try:
                    resp = http.post(self.url, json={"rows": [row]})
                    ok, detail = resp.status_code == 200, f"{resp.status_code} {resp.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, detail = False, f"{type(exc).__name__}: {exc}"
                with self._lock:
                    self.sent += 1
                    if not ok:
                        self.failed += 1
                        self.errors.append(detail)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def _copy_project(dest: Path) -> Path:
    dest.mkdir()
    for pkg in ("core", "ml", "usecases"):
        shutil.copytree(ROOT / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (dest / "bundle.yml").write_text(BUNDLE)
    return dest


def _deploy(project: Path, outputs: EnvironmentOutputs):
    bundle, diags = load_bundle(project, "dev", user="rollout", environ={})
    assert bundle is not None, [d.render() for d in diags]
    return Engine(bundle, outputs, jobs=None).deploy()


def _status(url: str) -> dict:
    return httpx.get(url + "/status", timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}).json()


@pytest.fixture(scope="module")
def env(tmp_path_factory, models):
    base = tmp_path_factory.mktemp("code-rollout")
    storage = base / "storage"
    layout = storage_layout(storage.as_uri())
    tokens = base / "tokens.json"
    tokens.write_text(json.dumps([hashlib.sha256(TOKEN.encode()).hexdigest()]))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc_env = {**os.environ, "CONVEYOR_ENV": "rollout", "CONVEYOR_STORAGE_URI": layout.root,
                "CONVEYOR_ENDPOINT_DIR": str(storage / "endpoint"), "CONVEYOR_INFERENCE_TABLE": str(storage / "tables" / "inference"),
                "CONVEYOR_SERVING_TOKENS_FILE": str(tokens), "BENTOML_HOME": str(storage / "bentos"),
                "BENTOML_DO_NOT_TRACK": "true", "PYTHONPATH": str(ROOT), "CONVEYOR_BATCH_MAX_LATENCY_MS": "30000"}
    log = base / "launcher.log"
    launcher = subprocess.Popen([sys.executable, "-m", "ml.serving.launcher", "--port", str(port), "--state-dir",
                                 str(base / "run" / "serving")], cwd=ROOT, env=proc_env, stdout=open(log, "w"),
                                stderr=subprocess.STDOUT, start_new_session=True)
    outputs = EnvironmentOutputs(env="rollout", platform="local", tracking_uri="http://127.0.0.1:9", serving_url=url,
                                 storage_uri=layout.root, storage=layout,
                                 credentials={"ci": Credential(username="ci", password="x", token=TOKEN)})
    try:
        for _ in range(100):
            try:
                if httpx.get(url + "/livez", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert launcher.poll() is None, log.read_text()[-3000:]
                time.sleep(0.2)
        else:
            pytest.fail(f"the launcher never answered /livez: {log.read_text()[-3000:]}")
        # the champion, in the env's BentoML model store (as deploy_model puts it there)
        model_tag = import_into_store(models["v1"], storage / "bentos", MODEL, "1", proc_env, data_version="d41d8cd9")
        yield {"base": base, "storage": storage, "url": url, "outputs": outputs, "env": proc_env, "log": log,
               "project": _copy_project(base / "project"), "model_tag": model_tag}
    finally:
        os.killpg(launcher.pid, 15)
        launcher.wait(30)


def test_before_any_deploy_the_endpoint_answers_health_and_says_to_deploy(env):
    assert httpx.get(env["url"] + "/livez", timeout=5).status_code == 200
    assert httpx.post(env["url"] + "/predict", json={"rows": []}, timeout=5).status_code == 401
    no_code = httpx.post(env["url"] + "/predict", json={"rows": []}, timeout=5,
                         headers={"Authorization": f"Bearer {TOKEN}"})
    assert no_code.status_code == 503 and "bundle deploy" in no_code.json()["error"]


def test_deployed_code_is_served_and_new_code_rolls_out_with_zero_failed_requests(env, rows):
    url, project = env["url"], env["project"]
    started = time.monotonic()
    first = _deploy(project, env["outputs"]).state
    code = _status(url)["code"]
    assert code["state"] == "serving" and code["artifact"] == first.artifact
    # the endpoint runs a Bento built from the deployed code, not the checkout
    assert code["bento"] == f"conveyor_endpoint:{first.artifact[:12]}"
    assert Path(code["source"]).is_relative_to(env["storage"] / "bentos")
    cfg = update_config(env["storage"] / "endpoint", lambda c: promote(c, ServedModel(
        name=MODEL, version="1", uri=f"bentoml:{env['model_tag']}")), by="test", reason="v1")
    client.wait_for_revision(url, cfg.revision, timeout_s=120, confirmations=1, token=TOKEN)
    old_pid = code["backend_pid"]

    service = project / "ml" / "serving" / "service.py"
    service.write_text(service.read_text() + "\n# code v2: shipped by bundle deploy\n")
    with Load(url, rows[:50]) as load:
        time.sleep(1.0)
        second = _deploy(project, env["outputs"]).state
        time.sleep(1.5)  # requests on the new code after the handover
    print(f"code rollout under load: {load.sent} requests, {load.failed} failed "
          f"({time.monotonic() - started:.0f}s for two deploys)")
    assert load.failed == 0, load.errors[:3]
    assert load.sent > 50
    code = _status(url)["code"]
    assert second.artifact != first.artifact and code["artifact"] == second.artifact
    assert "code v2: shipped by bundle deploy" in (Path(code["source"]) / "ml" / "serving" / "service.py").read_text()
    assert code["backend_pid"] != old_pid
    deadline = time.monotonic() + 40
    while _alive(old_pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _alive(old_pid), "the old backend was drained and stopped"
    assert _status(url)["models"]["champion"]["version"] == "1"  # the new code loaded the served model


def test_code_that_fails_to_start_leaves_the_old_serving_and_fails_the_deploy(env, rows):
    url, project = env["url"], env["project"]
    serving = _status(url)["code"]
    store = DeploymentStore(env["outputs"], "rollout.dev.rollout")
    service = project / "ml" / "serving" / "service.py"
    good = service.read_text()
    service.write_text(good + "\nraise RuntimeError('broken on purpose')\n")
    try:
        with Load(url, rows[:50]) as load:
            with pytest.raises(BundleError) as failed:
                _deploy(project, env["outputs"])
    finally:
        service.write_text(good)
    print(f"failed code rollout under load: {load.sent} requests, {load.failed} failed; deploy error: {failed.value}")
    assert "broken on purpose" in str(failed.value) and "previous code keeps serving" in str(failed.value)
    assert load.failed == 0 and load.sent > 0, load.errors[:3]
    assert _status(url)["code"]["artifact"] == serving["artifact"]
    # nothing lost: the deployment is still at the code that serves (jobs run it too)
    assert json.loads((store.root / "state.json").read_text())["artifact"] == serving["artifact"]


def test_model_status_shows_the_code_version_next_to_the_model_versions(env):
    from typer.testing import CliRunner

    from ml.cli import app

    outputs_file = env["base"] / "outputs.json"
    outputs_file.write_text(env["outputs"].model_dump_json())
    cli_env = {"CONVEYOR_ENV_OUTPUTS": str(outputs_file), "COLUMNS": "250"}
    code = _status(env["url"])["code"]
    as_json = CliRunner().invoke(app, ["status", "-t", "rollout", "--json"], env=cli_env)
    assert as_json.exit_code == 0, as_json.output
    doc = json.loads(as_json.output)
    assert doc["code"]["artifact"] == doc["live"]["code"]["artifact"] == code["artifact"]
    table = CliRunner().invoke(app, ["status", "-t", "rollout"], env=cli_env)
    print(table.output)
    assert table.exit_code == 0, table.output
    row = next(line for line in table.output.splitlines() if line.lstrip("│ ").startswith("code "))
    assert code["version"] in row and code["bento"] in row
    champion = next(line for line in table.output.splitlines() if "champion" in line)
    assert f"{MODEL} v1" in champion


def test_the_env_store_lists_what_it_serves_and_its_bento_serves_the_same_answers(env, rows):
    url, home = env["url"], env["storage"] / "bentos"
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    cli_env = {**env["env"], "BENTOML_HOME": str(home)}
    models = subprocess.run([bentoml, "models", "list"], env=cli_env, capture_output=True, text=True, timeout=120)
    bentos = subprocess.run([bentoml, "list"], env=cli_env, capture_output=True, text=True, timeout=120)
    print("BENTOML_HOME=<env store> bentoml models list\n" + models.stdout)
    print("BENTOML_HOME=<env store> bentoml list\n" + bentos.stdout)
    code = _status(url)["code"]
    assert env["model_tag"] in models.stdout
    assert code["bento"] in bentos.stdout
    labels = subprocess.run([bentoml, "models", "get", env["model_tag"], "-o", "json"], env=cli_env,
                            capture_output=True, text=True, timeout=120)
    got = json.loads(labels.stdout)["labels"]
    assert got == {"registered_model": MODEL, "model_version": "1", "data_version": "d41d8cd9",
                   "git_sha": "0123456789abcdef"}

    port = free_port()
    log = env["base"] / "bento-serve.log"
    proc = subprocess.Popen([bentoml, "serve", code["bento"], "--host", "127.0.0.1", "--port", str(port)],
                            cwd=env["base"], env={**cli_env, "CONVEYOR_INFERENCE_TABLE": str(env["base"] / "copy-table")},
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    other = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(other + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        batch = [dict(r, transaction_id=f"same-{i}") for i, r in enumerate(rows[:20])]
        headers = {"Authorization": f"Bearer {TOKEN}"}
        mine = httpx.post(url + "/predict", json={"rows": batch}, headers=headers, timeout=30)
        theirs = httpx.post(other + "/predict", json={"rows": batch}, headers=headers, timeout=30)
        assert mine.status_code == theirs.status_code == 200, (mine.text, theirs.text)
        assert mine.json() == theirs.json()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
