"""`run`: task DAG as subprocesses in the env, task values, conditions, run_job, failures, schedules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bundles import scheduler
from bundles.engine import Engine
from bundles.errors import BundleError
from bundles.loader import load_bundle
from bundles.runner import JobRunner, list_runs

pytestmark = pytest.mark.slow

ORCHESTRATOR = """
resources:
  jobs:
    retrain_check:
      parameters:
        violations: 0
      tasks:
        check:
          condition:
            module: demo_tasks.check
            parameters:
              violations: "{{job.parameters.violations}}"
              limit: 2
        retrain:
          depends_on: [check]
          run_job:
            job: train_job
            parameters:
              rows: 7
"""


def _deploy(project: Path, outputs, user: str, target: str = "dev", **kw) -> Engine:
    bundle, diags = load_bundle(project, target, user=user, **kw)
    assert bundle is not None, [d.render() for d in diags]
    engine = Engine(bundle, outputs)
    engine.deploy(force=True)
    return engine


def _runner(engine: Engine, project: Path, trigger: str = "manual") -> JobRunner:
    return JobRunner(engine.outputs, engine.store, trigger=trigger)


@pytest.fixture
def markers(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    monkeypatch.setenv("DEMO_MARKER_DIR", str(path))
    return path


def _marker(markers: Path, job: str, task: str) -> dict:
    return json.loads((markers / f"{job}.{task}.json").read_text())


def test_run_passes_values_downstream_with_env_credentials(project, env_outputs, user, markers):
    engine = _deploy(project, env_outputs, user)
    record = _runner(engine, project).run("train_job")
    assert record.status == "success"
    status = {k: v.status for k, v in record.tasks.items()}
    assert status == {"prepare": "success", "train": "success", "gate": "success",
                      "publish": "success", "report_low": "skipped"}
    assert record.tasks["gate"].outcome is True
    assert record.tasks["report_low"].reason == "condition gate was true"

    prepare = _marker(markers, "train_job", "prepare")
    assert prepare["args"]["rows"] == 100  # {{job.parameters.rows}}
    train = _marker(markers, "train_job", "train")
    assert train["args"]["upstream"] == "prepare-ok"  # {{tasks.prepare.values.token}}
    assert train["args"]["threshold"] == 0.5  # ${var.threshold}
    assert train["tracking"] == env_outputs.tracking_uri
    assert train["user"] == env_outputs.credentials["data_scientist"].username
    assert train["persona"] == "data_scientist" and train["env"] == "dev"
    # The task imported the deployed code (the wheel unpacked in env storage), not the checkout.
    assert train["module_file"].startswith(str(engine.store.root / "code"))
    assert train["job_spec_name"] == f"dev_{user}_train"  # bundles.deployed.task_spec inside a task

    log = Path(record.tasks["train"].log)
    assert log.is_file() and str(log).startswith(str(engine.store.root / "runs"))
    assert "task train in env dev" in log.read_text()
    # credentials file is gone once the run is over
    assert not (engine.store.runs_dir / record.run_id / "env-outputs.json").exists()
    history = list_runs(engine.store)
    assert history[0]["run_id"] == record.run_id and history[0]["status"] == "success"


def test_params_only_and_false_condition(project, env_outputs, user, markers):
    engine = _deploy(project, env_outputs, user, cli_vars={"threshold": "0.95"})
    runner = _runner(engine, project)
    record = runner.run("train_job", params={"rows": "5"})
    status = {k: v.status for k, v in record.tasks.items()}
    assert status["gate"] == "success" and record.tasks["gate"].outcome is False
    assert status["publish"] == "skipped" and status["report_low"] == "success"
    assert _marker(markers, "train_job", "prepare")["args"]["rows"] == 5

    only = runner.run("train_job", only=["prepare"])
    assert {k: v.status for k, v in only.tasks.items()} == {
        "prepare": "success", "train": "excluded", "gate": "excluded", "publish": "excluded", "report_low": "excluded"}

    # max_concurrent_runs (1): a live run of the job blocks a second one
    live = json.loads((engine.store.runs_dir / only.run_id / "run.json").read_text())
    live.update(run_id="29990101-000000-aaaaaa", status="running", pid=os.getpid())
    (engine.store.runs_dir / live["run_id"]).mkdir()
    (engine.store.runs_dir / live["run_id"] / "run.json").write_text(json.dumps(live))
    with pytest.raises(BundleError, match="already has 1 active run"):
        runner.run("train_job")
    with pytest.raises(BundleError, match="has no parameter 'rowz' \\(did you mean 'rows'\\?\\)"):
        runner.run("train_job", params={"rowz": "1"})


def _cli(project: Path, outputs_dir: Path, user: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, CONVEYOR_PROJECT_DIR=str(project), CONVEYOR_OUTPUTS_DIR=str(outputs_dir), CONVEYOR_USER=user)
    return subprocess.run([sys.executable, "-c", "from bundles.cli import app; app()", *args],
                          cwd=project, env=env, capture_output=True, text=True, timeout=600)


def test_failing_task_stops_downstream_and_exits_nonzero(project, env_outputs, user, markers, tmp_path):
    jobs = project / "resources" / "jobs.yml"
    jobs.write_text(jobs.read_text().replace("              name: train\n", "              name: train\n              fail: 1\n"))
    outputs_dir = tmp_path / "outputs"
    outputs_dir.mkdir()
    (outputs_dir / "dev.json").write_text(env_outputs.model_dump_json())

    deployed = _cli(project, outputs_dir, user, "deploy", "-t", "dev")
    assert deployed.returncode == 0, deployed.stderr
    proc = _cli(project, outputs_dir, user, "run", "train_job", "-t", "dev")
    assert proc.returncode == 1
    assert "task train failed (exit code 3)" in proc.stderr
    assert "about to fail: the data is bad" in proc.stderr  # the log tail
    assert "Traceback" not in proc.stderr
    assert "=== attempt 2 of 2 ===" in proc.stderr  # max_retries: 1

    runs = json.loads(_cli(project, outputs_dir, user, "runs", "-t", "dev", "-o", "json").stdout)
    tasks = runs[0]["tasks"]
    assert runs[0]["status"] == "failed"
    assert tasks["train"]["attempts"] == 2
    assert {tasks[t]["status"] for t in ("gate", "publish", "report_low")} == {"skipped"}
    assert tasks["gate"]["reason"] == "upstream train failed"
    assert not (markers / "train_job.publish.json").exists()

    shown = _cli(project, outputs_dir, user, "runs", runs[0]["run_id"][:17], "-t", "dev")
    assert shown.returncode == 0 and "upstream train failed" in shown.stdout
    log = _cli(project, outputs_dir, user, "runs", runs[0]["run_id"], "-t", "dev", "--log", "train")
    assert log.stdout.count("about to fail") == 2  # both attempts

    unknown = _cli(project, outputs_dir, user, "run", "trian_job", "-t", "dev")
    assert unknown.returncode == 1 and "did you mean 'train_job'" in unknown.stderr


def test_condition_module_and_run_job(project, env_outputs, user, markers):
    (project / "resources" / "orchestrator.yml").write_text(ORCHESTRATOR)
    engine = _deploy(project, env_outputs, user)
    runner = _runner(engine, project)

    quiet = runner.run("retrain_check", params={"violations": "1"})
    assert quiet.status == "success"
    assert quiet.tasks["check"].outcome is False and quiet.tasks["retrain"].status == "skipped"
    assert not (markers / "train_job.prepare.json").exists()

    loud = runner.run("retrain_check", params={"violations": "3"})
    assert loud.status == "success" and loud.tasks["retrain"].status == "success"
    child_id = loud.tasks["retrain"].child_run
    child = next(r for r in list_runs(engine.store) if r["run_id"] == child_id)
    assert child["trigger"] == "run_job" and child["parent_run"] == loud.run_id and child["status"] == "success"
    assert _marker(markers, "train_job", "prepare")["args"]["rows"] == 7


def test_task_timeout(project, env_outputs, user, markers):
    jobs = project / "resources" / "jobs.yml"
    jobs.write_text(jobs.read_text().replace(
        "              name: prepare\n", "              name: prepare\n              sleep: 30\n"
    ).replace("    train_job:\n      name: train\n", "    train_job:\n      name: train\n      max_parallel_tasks: 1\n"))
    text = jobs.read_text().replace("        prepare:\n", "        prepare:\n          timeout_seconds: 2\n", 1)
    jobs.write_text(text)
    engine = _deploy(project, env_outputs, user)
    record = _runner(engine, project).run("train_job", only=["prepare"])
    assert record.status == "failed"
    assert record.tasks["prepare"].reason == "timed out after 2s"
    assert record.tasks["prepare"].duration_s < 20


def test_scheduler_starts_due_production_jobs_only(project, env_outputs, user, markers):
    jobs = project / "resources" / "jobs.yml"
    jobs.write_text(jobs.read_text().replace('cron: "*/5 * * * *"', 'cron: "* * * * *"'))
    dev = _deploy(project, env_outputs, user, "dev")
    staging = _deploy(project, env_outputs, user, "staging")
    now = datetime.now(UTC)
    due = scheduler.due_jobs(env_outputs, now - timedelta(seconds=61), now)
    assert [(d.deployment, d.job) for d in due] == [("demo.staging", "train_job")]  # dev is paused

    threads = scheduler.tick(env_outputs, now - timedelta(seconds=61), now, log=lambda m: None)
    for t in threads:
        t.join(300)
    runs = list_runs(staging.store)
    assert len(runs) == 1 and runs[0]["trigger"] == "schedule" and runs[0]["status"] == "success"
    assert list_runs(dev.store) == []


def test_scheduler_process_idles_with_nothing_deployed(env_outputs, tmp_path):
    path = tmp_path / "outputs.json"
    path.write_text(env_outputs.model_dump_json())
    proc = subprocess.run([sys.executable, "-m", "bundles.scheduler", "--env", "dev", "--outputs-file", str(path), "--once"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "scheduler for env dev started" in proc.stdout
    status = json.loads((Path(env_outputs.storage.bundle.removeprefix("file://")) / "scheduler.json").read_text())
    assert status["active_runs"] == 0


def test_job_timeout_and_sigterm_stop_running_tasks(project, env_outputs, user, markers, tmp_path):
    import signal
    import time

    jobs = project / "resources" / "jobs.yml"
    jobs.write_text(jobs.read_text()
                    .replace("              name: prepare\n", "              name: prepare\n              sleep: 60\n")
                    .replace("    train_job:\n      name: train\n", "    train_job:\n      name: train\n      timeout_seconds: 3\n"))
    engine = _deploy(project, env_outputs, user)
    started = time.monotonic()
    record = _runner(engine, project).run("train_job")
    assert time.monotonic() - started < 30
    assert record.status == "failed"
    assert record.tasks["prepare"].reason == "job timed out after 3s"
    assert record.tasks["train"].status == "skipped"

    outputs_dir = tmp_path / "outputs"
    outputs_dir.mkdir()
    (outputs_dir / "dev.json").write_text(env_outputs.model_dump_json())
    env = dict(os.environ, CONVEYOR_PROJECT_DIR=str(project), CONVEYOR_OUTPUTS_DIR=str(outputs_dir), CONVEYOR_USER=user)
    proc = subprocess.Popen([sys.executable, "-c", "from bundles.cli import app; app()", "run", "train_job", "-t", "dev",
                             "--only", "prepare"], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        runs = list_runs(engine.store)
        if runs and runs[0]["run_id"] != record.run_id and runs[0]["tasks"]["prepare"]["status"] == "running":
            break
        time.sleep(0.5)
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    last = list_runs(engine.store)[0]
    assert last["status"] == "interrupted" and last["tasks"]["prepare"]["reason"] == "interrupted"


def test_cli_plan_summary_json_and_errors(project, env_outputs, user, tmp_path):
    outputs_dir = tmp_path / "outputs"
    outputs_dir.mkdir()
    (outputs_dir / "dev.json").write_text(env_outputs.model_dump_json())
    (outputs_dir / "staging.json").write_text(env_outputs.model_dump_json())

    plan = json.loads(_cli(project, outputs_dir, user, "plan", "-t", "dev", "-o", "json").stdout)
    assert plan["summary"] == {"create": 4, "update": 0, "delete": 0, "unchanged": 0}
    assert {"action": "create", "key": "jobs.train_job", "kind": "jobs", "name": f"dev_{user}_train",
            "reason": "", "changed": []} in plan["actions"]
    assert _cli(project, outputs_dir, user, "deploy", "-t", "dev").returncode == 0
    plan = json.loads(_cli(project, outputs_dir, user, "plan", "-t", "dev", "-o", "json").stdout)
    assert plan["summary"]["unchanged"] == 4
    summary = json.loads(_cli(project, outputs_dir, user, "summary", "-t", "dev", "-o", "json").stdout)
    assert summary["last_deployment"]["sequence"] == 1 and summary["last_deployment"]["deployer"] == user
    assert summary["resources"]["jobs"]["train_job"] == {"name": f"dev_{user}_train", "url": None,
                                                         "schedule": "*/5 * * * * (paused)"}
    assert summary["resources"]["experiments"]["demo_experiment"]["url"].startswith(env_outputs.tracking_uri + "/#/experiments/")
    text = _cli(project, outputs_dir, user, "summary", "-t", "dev").stdout
    assert "last deployment #1" in text and env_outputs.tracking_uri in text
    # secrets never reach the output
    for cred in env_outputs.credentials.values():
        assert cred.password not in text and cred.password not in json.dumps(summary)

    # the project fixture is no git checkout: staging (branch main) refuses without --force
    refused = _cli(project, outputs_dir, user, "deploy", "-t", "staging")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1].startswith("error: target 'staging' deploys only from git branch 'main'")
    missing = _cli(project, outputs_dir, user, "deploy", "-t", "prod")
    assert missing.returncode == 1 and "unknown target 'prod'" in missing.stderr


def test_task_that_cannot_start_fails_cleanly(project, env_outputs, user, markers):
    (project / "demo_tasks" / "broken.py").write_text("import not_a_real_module  # noqa\n")
    jobs = project / "resources" / "jobs.yml"
    jobs.write_text(jobs.read_text().replace("module: demo_tasks.step\n            parameters:\n              name: publish",
                                             "module: demo_tasks.broken\n            parameters:\n              name: publish"))
    engine = _deploy(project, env_outputs, user)
    record = _runner(engine, project).run("train_job")
    assert record.status == "failed"
    assert record.tasks["publish"].status == "failed" and record.tasks["publish"].reason == "exit code 1"
    assert "No module named 'not_a_real_module'" in Path(record.tasks["publish"].log).read_text()
    assert record.tasks["report_low"].status == "skipped"
