"""A run reads its deployment, never the checkout (issue #14): code, files, resource settings.

The fixture bundle is deployed, then its checkout is edited without deploying (the task's code,
a data file of its package, the endpoint's rollout and the monitor's thresholds): a run still
sees what was deployed, from its working directory to the specs `ml.serving.endpoint_settings`
and `ml.monitoring.settings` hand to the tasks. A deployment the runner cannot run as deployed
(never deployed; deployed by an older Conveyor) is refused with the deployment and the fix, by a
manual run and by the scheduler alike. The ML job itself is covered end to end in a real env by
tests/bundles/test_runs_read_the_deployment_e2e.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bundles import scheduler
from bundles.engine import Engine
from bundles.envstore import DeploymentStore
from bundles.errors import BundleError
from bundles.loader import load_bundle
from bundles.runner import JobRunner

pytestmark = pytest.mark.slow

PROBE = '''"""Writes what a task sees: where it runs, a file of its package, the deployed settings."""
import json, os
from pathlib import Path

from ml.monitoring.settings import monitor_settings
from ml.serving.endpoint_settings import endpoint_settings

VERSION = "deployed"

ep = endpoint_settings()
mon = monitor_settings()
Path(os.environ["DEMO_MARKER_DIR"], "probe.json").write_text(json.dumps({
    "version": VERSION, "cwd": os.getcwd(), "project_dir": os.environ.get("CONVEYOR_PROJECT_DIR"),
    "data": Path("demo_tasks/data.txt").read_text().strip(),
    "endpoint": ep.key, "model": ep.model, "p95_ms": ep.sla.p95_ms, "strategy": ep.rollout.strategy,
    "monitor": mon.key, "psi": mon.thresholds.psi, "retrain_job": mon.retrain_job,
}))
'''

RESOURCES = """
resources:
  serving_endpoints:
    demo_endpoint:
      model: ${resources.registered_models.demo_model.name}
      default: true
      served:
        - {alias: champion, traffic_percentage: 100}
      rollout:
        strategy: direct
        sla: {p95_ms: 300, min_qps: 1}
  monitors:
    demo_monitor:
      endpoint: demo_endpoint
      retrain_job: train_job
      thresholds: {psi: 0.2}
  jobs:
    probe_job:
      tasks:
        probe:
          python:
            module: demo_tasks.probe
"""


def _deploy(project: Path, outputs, user: str) -> Engine:
    bundle, diags = load_bundle(project, "dev", user=user)
    assert bundle is not None, [d.render() for d in diags]
    engine = Engine(bundle, outputs)
    engine.deploy(force=True)
    return engine


@pytest.fixture
def probed(project, env_outputs, user, tmp_path, monkeypatch):
    """The fixture bundle plus an endpoint, a monitor and `probe_job`, deployed."""
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("DEMO_MARKER_DIR", str(markers))
    (project / "demo_tasks" / "probe.py").write_text(PROBE)
    (project / "demo_tasks" / "data.txt").write_text("deployed\n")
    (project / "resources" / "probe.yml").write_text(RESOURCES)
    return _deploy(project, env_outputs, user), markers


def test_a_run_sees_the_deployed_code_files_and_settings_not_the_checkout(probed, project, user):
    engine, markers = probed
    # The checkout moves on, nothing is deployed.
    probe = project / "demo_tasks" / "probe.py"
    probe.write_text(probe.read_text().replace('VERSION = "deployed"', 'VERSION = "edited"'))
    (project / "demo_tasks" / "data.txt").write_text("edited\n")
    resources = project / "resources" / "probe.yml"
    resources.write_text(resources.read_text().replace("p95_ms: 300", "p95_ms: 999").replace("psi: 0.2", "psi: 0.9")
                         .replace("strategy: direct", "strategy: everyone"))  # not even a strategy

    record = JobRunner(engine.outputs, engine.store).run("probe_job")
    assert record.status == "success", Path(record.tasks["probe"].log).read_text()
    seen = json.loads((markers / "probe.json").read_text())
    code = Path(seen["cwd"])
    assert code.parent == engine.store.root / "code"  # the unpacked wheel, not the checkout
    assert seen["project_dir"] == seen["cwd"]
    assert seen["version"] == "deployed" and seen["data"] == "deployed"
    assert seen["endpoint"] == "demo_endpoint" and seen["model"] == f"dev_{user}_demo-model"  # as deploy resolved it
    assert (seen["p95_ms"], seen["strategy"]) == (300, "direct")
    assert (seen["monitor"], seen["psi"], seen["retrain_job"]) == ("demo_monitor", 0.2, "train_job")

    resources.write_text(resources.read_text().replace("strategy: everyone", "strategy: direct"))
    engine = _deploy(project, engine.outputs, user)
    assert JobRunner(engine.outputs, engine.store).run("probe_job").status == "success"
    seen = json.loads((markers / "probe.json").read_text())
    assert (seen["version"], seen["data"], seen["p95_ms"], seen["psi"]) == ("edited", "edited", 999, 0.9)


def test_settings_files_are_refused_inside_a_run_and_required_outside(probed, monkeypatch, tmp_path):
    from ml.monitoring.settings import MonitorError, monitor_settings
    from ml.serving.endpoint_settings import endpoint_settings
    from ml.serving.errors import EndpointSettingsError

    engine, _ = probed
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(engine.outputs.model_dump_json())
    monkeypatch.setenv("CONVEYOR_ENV_OUTPUTS", str(outputs_file))
    monkeypatch.delenv("CONVEYOR_DEPLOYMENT", raising=False)
    with pytest.raises(EndpointSettingsError, match="not inside a bundle run: pass --endpoint-file"):
        endpoint_settings()
    monkeypatch.setenv("CONVEYOR_DEPLOYMENT", engine.store.deployment_id)
    with pytest.raises(EndpointSettingsError, match=f"a run of deployment {engine.store.deployment_id} reads the "
                                                    "endpoint it deployed, not a file"):
        endpoint_settings(path=Path("resources/endpoint.yml"))
    with pytest.raises(MonitorError, match="reads the monitor it deployed, not a file"):
        monitor_settings(path=Path("resources/monitoring.yml"))
    with pytest.raises(EndpointSettingsError, match="no serving endpoint 'demo_endpont' in deployment .* "
                                                    "\\(did you mean 'demo_endpoint'\\?\\)"):
        endpoint_settings("demo_endpont")
    with pytest.raises(MonitorError, match="has no monitor of endpoint 'other'.*declare one under resources.monitors"):
        monitor_settings(endpoint="other")


def test_a_deployment_the_runner_cannot_run_is_refused_with_the_fix(probed, env_outputs, user):
    engine, _ = probed
    never = DeploymentStore(env_outputs, "demo.staging")
    with pytest.raises(BundleError, match="deployment demo.staging was never deployed to env 'dev'; deploy it with "
                                          "`conveyor bundle deploy -t staging`"):
        JobRunner(env_outputs, never).run("probe_job")

    # A deployment made by a Conveyor whose artifact did not carry the run's files (format 1).
    state = engine.store.raw_state()
    del state["resources"]["artifact"]["spec"]["format"]
    engine.store.blobs.write_text("state.json", json.dumps(state))
    expected = (f"deployment demo.dev.{user} is older than this runner's code: its code artifact has format 1, .*"
                f"redeploy it with `conveyor bundle deploy -t dev`")
    with pytest.raises(BundleError, match=expected):
        JobRunner(env_outputs, engine.store).run("probe_job")
    # the scheduler says the same, and starts nothing
    job = engine.store.read_object("jobs", "probe_job")
    job["spec"]["schedule"] = {"cron": "* * * * *"}
    job["mode"] = "production"
    engine.store.write_object("jobs", "probe_job", job)
    now = datetime.now(UTC)
    lines: list[str] = []
    for thread in scheduler.tick(env_outputs, now - timedelta(seconds=61), now, log=lines.append):
        thread.join(60)
    assert any("probe_job: not started: deployment demo.dev." in line and "is older than this runner's code" in line
               for line in lines), lines
    assert not (engine.store.runs_dir).exists() or not any(engine.store.runs_dir.glob("*/run.json"))

    state["resources"]["artifact"]["spec"]["format"] = 99
    engine.store.blobs.write_text("state.json", json.dumps(state))
    with pytest.raises(BundleError, match="is newer than this runner's code: its code artifact has format 99"):
        JobRunner(env_outputs, engine.store).run("probe_job")
