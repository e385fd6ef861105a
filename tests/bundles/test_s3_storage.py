"""The bundle engine on `s3://` env storage (the kubernetes platform's), against a real S3 API.

Same promises as on a local disk: deploy/redeploy/destroy, one deploy at a time, a killed
deploy completed by the next, runs importing the deployed code, and storage errors said
in one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bundles.engine import Engine
from bundles.loader import load_bundle
from bundles.runner import JobRunner
from tests.bundles.racing import kill_at_action, race_two_deploys
from tests.s3server import s3_client

pytestmark = pytest.mark.slow


def _engine(project: Path, outputs, user: str, target: str = "dev") -> Engine:
    bundle, diags = load_bundle(project, target, user=user)
    assert bundle is not None, [d.render() for d in diags]
    return Engine(bundle, outputs, jobs=None)  # the storage side; CronJobs: tests/infra_k8s


def _keys(outputs) -> set[str]:
    bucket, prefix = outputs.storage.bundle.removeprefix("s3://").split("/", 1)
    resp = s3_client(os.environ["AWS_ENDPOINT_URL"]).list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {o["Key"].removeprefix(prefix + "/") for o in resp.get("Contents", [])}


def test_deploy_keeps_state_in_the_bucket_and_destroy_empties_it(project, s3_outputs, user):
    engine = _engine(project, s3_outputs, user)
    result = engine.deploy()
    assert result.state.sequence == 1 and len(result.state.resources) == 4
    dep = f"deployments/demo.dev.{user}"
    keys = _keys(s3_outputs)
    assert f"{dep}/state.json" in keys and f"{dep}/jobs/train_job.json" in keys
    assert any(k.startswith(f"{dep}/artifacts/") and k.endswith(".whl") for k in keys)
    assert f"{dep}/lock.json" not in keys and f"{dep}/state.journal" not in keys

    # another machine (empty local work dir) sees the same deployment: nothing to do
    again = _engine(project, s3_outputs, user)
    assert {a.action for a in again.plan().actions} == {"unchanged"}
    assert again.summary()["deployed"] is True

    engine.destroy()
    assert not any(k.startswith(dep) for k in _keys(s3_outputs))


def test_two_concurrent_deploys_exactly_one_wins(project, s3_outputs, user):
    results = race_two_deploys(project, s3_outputs, user)
    assert results[1] == "ok", results
    assert results[0].startswith(f"error: deploy lock for demo.dev.{user} is held by {user}"), results
    assert _engine(project, s3_outputs, user).state().sequence == 1


def test_killed_deploy_is_completed_by_the_next_one(project, s3_outputs, user):
    engine = _engine(project, s3_outputs, user)
    kill_at_action(engine, 3)  # the process is killed between two actions
    with pytest.raises(KeyboardInterrupt):
        engine.deploy()
    partial = _engine(project, s3_outputs, user).state()
    assert len(partial.resources) == 2 and partial.sequence == 0  # the journal in the bucket says so
    result = _engine(project, s3_outputs, user).deploy()
    assert result.state.sequence == 1 and len(result.state.resources) == 4
    assert f"deployments/demo.dev.{user}/state.journal" not in _keys(s3_outputs)


def test_run_fetches_the_deployed_code_from_the_bucket(project, s3_outputs, user, tmp_path, monkeypatch):
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("DEMO_MARKER_DIR", str(markers))
    engine = _engine(project, s3_outputs, user)
    engine.deploy()
    # the runner works from a machine that never saw the deploy: fresh local work dir
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "other-machine"))
    runner_engine = _engine(project, s3_outputs, user)
    record = JobRunner(s3_outputs, runner_engine.store).run("train_job")
    assert record.status == "success", {k: (v.status, v.reason) for k, v in record.tasks.items()}
    train = json.loads((markers / "train_job.train.json").read_text())
    assert train["module_file"].startswith(str(tmp_path / "other-machine"))  # unpacked from the bucket's wheel
    assert train["job_spec_name"] == f"dev_{user}_train"  # task_spec read the deployed spec from S3


def test_storage_errors_are_one_clear_line(project, s3_outputs, user, tmp_path):
    out = tmp_path / "outputs"
    out.mkdir()
    bad = s3_outputs.model_copy(deep=True)
    bucket = s3_outputs.storage.bundle.removeprefix("s3://").split("/", 1)[0]
    for field in ("bundle",):
        setattr(bad.storage, field, getattr(bad.storage, field).replace(bucket, "no-such-bucket-here"))
    (out / "dev.json").write_text(bad.model_dump_json())
    env = {**os.environ, "CONVEYOR_OUTPUTS_DIR": str(out), "CONVEYOR_USER": user}
    proc = subprocess.run([sys.executable, "-m", "conveyor.cli", "bundle", "deploy", "-t", "dev"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "no-such-bucket-here" in proc.stderr and "error:" in proc.stderr

    env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"  # nothing listens there
    (out / "dev.json").write_text(s3_outputs.model_dump_json())
    proc = subprocess.run([sys.executable, "-m", "conveyor.cli", "bundle", "deploy", "-t", "dev"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "127.0.0.1:9" in proc.stderr, proc.stderr
