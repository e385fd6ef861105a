"""Prod does not start empty (issue #14): a production deploy runs an endpoint's `bootstrap_job`
while the endpoint serves no model, and waits for it; development deploys never do.

A tiny bundle whose bootstrap job stands in for model_training_job (its one task does what
update_endpoint does at the end: the endpoint config gets a champion), deployed by the real
engine and run by the real local job backend from the deployed wheel. The repository's own
wiring (fraud → model_training_job, diabetes → diabetes_training_job) is checked on the real
bundle, and exercised for real by `make demo` (prod is only deployed, never trained by hand).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bundles.engine import Engine
from bundles.errors import BundleError
from bundles.loader import load_bundle
from bundles.runner import list_runs

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

BUNDLE = """\
bundle:
  name: boot
  artifact:
    packages: [core, boot_tasks]
targets:
  dev:
    mode: development
    default: true
    run_as: data_scientist
  release:
    mode: production
    git: {branch: release}
    run_as: ci
resources:
  jobs:
    seed_job:
      tasks:
        serve_first:
          python:
            module: boot_tasks.serve_first
  serving_endpoints:
    fraud_endpoint:
      model: fraud-detector
      use_case: fraud
      default: true
      served: [{alias: champion, traffic_percentage: 100}]
      bootstrap_job: seed_job
"""
TASK = '''"""Stands in for the training job's last step: the endpoint config names a champion."""
import json, os, sys
from core import runtime

ctx = runtime.context()
if os.environ.get("BOOT_FAIL"):
    sys.exit("no model good enough")
path = ctx.storage_path("endpoint") / "endpoint.json"
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps({"revision": 1, "champion": {"name": "fraud-detector", "version": "1",
                                                         "uri": "bentoml:fraud-detector:v1"}}))
'''


@pytest.fixture
def boot_project(tmp_path) -> Path:
    project = tmp_path / "boot"
    (project / "boot_tasks").mkdir(parents=True)
    shutil.copytree(ROOT / "core", project / "core", ignore=shutil.ignore_patterns("__pycache__"))
    (project / "boot_tasks" / "__init__.py").write_text("")
    (project / "boot_tasks" / "serve_first.py").write_text(TASK)
    (project / "bundle.yml").write_text(BUNDLE)
    return project


def _engine(project: Path, outputs, target: str, user: str) -> Engine:
    bundle, diags = load_bundle(project, target, user=user, environ={})
    assert bundle is not None, [d.render() for d in diags]
    return Engine(bundle, outputs)


def _champion(outputs) -> dict | None:
    path = Path(outputs.storage.endpoint.removeprefix("file://")) / "endpoint.json"
    return json.loads(path.read_text()).get("champion") if path.exists() else None


def test_a_production_deploy_serves_a_model_without_anyone_running_a_job(boot_project, env_outputs, user):
    dev = _engine(boot_project, env_outputs, "dev", user)
    dev.deploy()
    assert _champion(env_outputs) is None  # development targets never bootstrap

    release = _engine(boot_project, env_outputs, "release", user)
    release.deploy(force=True)
    assert _champion(env_outputs)["version"] == "1"
    runs = list_runs(release.store)
    assert [(r["job"], r["status"]) for r in runs] == [("seed_job", "success")]

    release.deploy(force=True)  # it serves a model now: nothing runs again
    assert len(list_runs(release.store)) == 1


def test_a_failing_bootstrap_fails_the_deploy_and_the_next_deploy_retries(boot_project, env_outputs, user,
                                                                          monkeypatch):
    monkeypatch.setenv("BOOT_FAIL", "1")
    release = _engine(boot_project, env_outputs, "release", user)
    with pytest.raises(BundleError) as failed:
        release.deploy(force=True)
    assert "bootstrap job seed_job failed" in str(failed.value) and "fraud_endpoint serves no model" in str(failed.value)
    assert _champion(env_outputs) is None
    monkeypatch.delenv("BOOT_FAIL")
    release.deploy(force=True)
    assert _champion(env_outputs)["version"] == "1"
    assert [r["status"] for r in list_runs(release.store)] == ["success", "failed"]  # newest first: the retry ran


def test_the_repository_endpoints_name_their_training_jobs_and_bootstrap_in_prod_only():
    bundle, diags = load_bundle(ROOT, "prod", environ={})
    assert bundle is not None, [d.render() for d in diags]
    endpoints = bundle.resources.serving_endpoints
    assert {k: (e.bootstrap_job, e.bootstrap) for k, e in endpoints.items()} == {
        "fraud_endpoint": ("model_training_job", True), "diabetes_endpoint": ("diabetes_training_job", True)}
    assert all(e.bootstrap_job in bundle.resources.jobs for e in endpoints.values())
    staging, _ = load_bundle(ROOT, "staging", environ={})
    assert not any(e.bootstrap for e in staging.resources.serving_endpoints.values())  # CI trains staging itself
