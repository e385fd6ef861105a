"""deploy / plan / destroy against a real MLflow server with basic-auth."""

from __future__ import annotations

import json
import multiprocessing
import re
from pathlib import Path

import httpx
import pytest

from bundles.engine import Engine
from bundles.errors import BundleError
from bundles.loader import load_bundle
from core.contract import EnvironmentOutputs
from tests.bundles.racing import kill_at_action, race_two_deploys


@pytest.fixture(autouse=True)
def _admin(mlflow_admin):
    global ADMIN
    ADMIN = mlflow_admin

pytestmark = pytest.mark.slow


def _engine(project: Path, outputs: EnvironmentOutputs, user: str, target: str = "dev", **kw) -> Engine:
    bundle, diags = load_bundle(project, target, user=user, **kw)
    assert bundle is not None, [d.render() for d in diags]
    return Engine(bundle, outputs)


def _admin_permission(outputs: EnvironmentOutputs, username: str, rtype: str, rid: str) -> str:
    resp = httpx.get(
        f"{outputs.tracking_uri}/api/3.0/mlflow/users/permissions/get",
        params={"username": username, "resource_type": rtype, "resource_id": rid}, auth=ADMIN, timeout=60,
    )
    resp.raise_for_status()
    return resp.json()["permission"]


def _get(outputs, path, **params):
    resp = httpx.get(f"{outputs.tracking_uri}{path}", params=params, auth=ADMIN, timeout=60)
    return resp


def test_deploy_creates_everything_then_redeploy_changes_nothing(project, env_outputs, user):
    engine = _engine(project, env_outputs, user)
    plan = engine.plan()
    assert {a.key: a.action for a in plan.actions} == {
        "artifact": "create",
        "experiments.demo_experiment": "create",
        "registered_models.demo_model": "create",
        "jobs.train_job": "create",
    }
    result = engine.deploy()
    state = result.state
    assert state.sequence == 1 and state.last.deployer == user and state.last.persona == "data_scientist"
    assert len(state.last.git_sha) >= 7

    # MLflow really has the (dev-prefixed) experiment and model, with the grants.
    exp = _get(env_outputs, "/api/2.0/mlflow/experiments/get-by-name", experiment_name=f"dev_{user}_demo-experiment").json()["experiment"]
    tags = {t["key"]: t["value"] for t in exp["tags"]}
    assert tags["owner"] == "team-a" and tags["conveyor.deployment"] == f"demo.dev.{user}"
    model = _get(env_outputs, "/api/2.0/mlflow/registered-models/get", name=f"dev_{user}_demo-model").json()["registered_model"]
    assert model["description"] == f"model trained by dev_{user}_train"
    assert _admin_permission(env_outputs, "ml_engineer-user", "registered_model", f"dev_{user}_demo-model") == "EDIT"
    assert _admin_permission(env_outputs, "ml_engineer-user", "experiment", exp["experiment_id"]) == "EDIT"

    # The job is registered with its schedule, paused because dev is development mode.
    job = engine.store.read_object("jobs", "train_job")
    assert job["spec"]["schedule"] == {"cron": "*/5 * * * *", "pause_status": "PAUSED"}
    # The code artifact is a wheel named by content hash, synced into env storage.
    wheel = engine.store.artifact_dir(state.artifact) / state.wheel
    assert wheel.is_file() and state.artifact[:12] in wheel.name
    assert (engine.store.code_dir(state.artifact) / "demo_tasks" / "step.py").is_file()

    state_before = engine.store.state_path.read_bytes()
    again = _engine(project, env_outputs, user)
    plan2 = again.plan()
    assert {a.action for a in plan2.actions} == {"unchanged"}
    again.deploy()
    assert engine.store.state_path.read_bytes() == state_before  # nothing rewritten, same sequence


def test_change_and_removed_resource_are_applied(project, env_outputs, user):
    _engine(project, env_outputs, user).deploy()
    ml = project / "resources" / "ml.yml"
    text = ml.read_text()
    # drop the registered model, change the experiment description, and change code
    text = text[: text.index("  registered_models:")]
    text = text.replace("experiments of the demo bundle", "new description")
    ml.write_text(text)
    jobs = project / "resources" / "jobs.yml"
    jobs.write_text(jobs.read_text().replace("model trained by", "x"))
    (project / "demo_tasks" / "extra.py").write_text("X = 1\n")

    engine = _engine(project, env_outputs, user)
    plan = {a.key: a for a in engine.plan().actions}
    assert plan["registered_models.demo_model"].action == "delete"
    assert plan["experiments.demo_experiment"].action == "update"
    assert plan["experiments.demo_experiment"].changed == ["description"]
    assert plan["artifact"].action == "update"
    assert plan["jobs.train_job"].action == "unchanged"
    result = engine.deploy()
    assert result.state.sequence == 2
    assert "registered_models.demo_model" not in result.state.resources
    resp = _get(env_outputs, "/api/2.0/mlflow/registered-models/get", name=f"dev_{user}_demo-model")
    assert resp.status_code == 404


def test_destroy_removes_what_deploy_created_and_nothing_else(project, env_outputs, user):
    # Something that exists before the deploy, with the same name as a bundle experiment:
    # deploy adopts it, destroy must leave it in place.
    ci = env_outputs.credentials["ml_engineer"]
    pre = httpx.post(f"{env_outputs.tracking_uri}/api/2.0/mlflow/experiments/create",
                     json={"name": f"dev_{user}b_demo-experiment"}, auth=(ci.username, ci.password), timeout=60)
    assert pre.status_code == 200, pre.text
    other = httpx.post(f"{env_outputs.tracking_uri}/api/2.0/mlflow/experiments/create",
                       json={"name": "unrelated-experiment"}, auth=(ci.username, ci.password), timeout=60)
    assert other.status_code == 200
    engine = _engine(project, env_outputs, user)
    engine = Engine(load_bundle(project, "dev", user=user + "b")[0], env_outputs, persona="ml_engineer")
    state = engine.deploy().state
    assert state.resources["experiments.demo_experiment"].created is False
    assert state.resources["registered_models.demo_model"].created is True

    # another deployment (same names through name_prefix) must not take over these objects
    other_bundle, _ = load_bundle(project, "dev", user=user + "c")
    other_bundle.target_cfg.name_prefix = None
    import dataclasses

    clash = Engine(dataclasses.replace(other_bundle, name="demo2", resources=engine.bundle.resources), env_outputs,
                   persona="ml_engineer")
    with pytest.raises(BundleError, match=f"registered model 'dev_{user}b_demo-model' is managed by deployment 'demo.dev.{user}b'"):
        clash.deploy()

    deleted = engine.destroy()
    assert {a.key for a in deleted} == set(state.resources)
    assert not engine.store.root.exists()
    kept = _get(env_outputs, "/api/2.0/mlflow/experiments/get-by-name", experiment_name=f"dev_{user}b_demo-experiment").json()
    assert kept["experiment"]["lifecycle_stage"] == "active"
    unrelated = _get(env_outputs, "/api/2.0/mlflow/experiments/get-by-name", experiment_name="unrelated-experiment").json()
    assert unrelated["experiment"]["lifecycle_stage"] == "active"
    assert _get(env_outputs, "/api/2.0/mlflow/registered-models/get", name=f"dev_{user}b_demo-model").status_code == 404


def test_two_concurrent_deploys_exactly_one_wins(project, env_outputs, user):
    results = race_two_deploys(project, env_outputs, user)
    assert results[1] == "ok", results
    assert results[0].startswith(f"error: deploy lock for demo.dev.{user} is held by {user}"), results
    assert re.search(r"since \d{4}-\d\d-\d\dT", results[0])
    assert "--force-lock" in results[0]
    bundle, _ = load_bundle(project, "dev", user=user)
    state = Engine(bundle, env_outputs).state()
    assert state.sequence == 1  # exactly one deploy applied changes


def test_lock_held_by_live_process_needs_force_lock(project, env_outputs, user):
    engine = _engine(project, env_outputs, user)
    holder = engine.store.lock("ci", "dave", "deploy")
    with holder:
        with pytest.raises(BundleError, match="held by dave"):
            engine.deploy()
        # --force-lock takes it
        result = engine.deploy(force_lock=True)
        assert result.took_over_lock.startswith("dave")
    assert not (engine.store.root / "lock.json").exists()


def test_lock_left_by_a_killed_deploy_is_taken_over(project, env_outputs, user):
    engine = _engine(project, env_outputs, user)
    engine.store.root.mkdir(parents=True)
    dead = multiprocessing.get_context("spawn").Process(target=print)
    dead.start()
    dead.join()
    holder = engine.store.lock("ci", "erin", "deploy").info.model_copy(update={"pid": dead.pid})
    (engine.store.root / "lock.json").write_text(holder.model_dump_json())
    result = engine.deploy()
    assert result.took_over_lock.startswith("erin") and result.state.sequence == 1
    assert sorted(p.name for p in engine.store.root.iterdir() if p.name.startswith(("lock", "takeover"))) == []


def test_two_deploys_taking_over_one_stale_lock_exactly_one_wins(project, env_outputs, user):
    engine = _engine(project, env_outputs, user)
    dead = multiprocessing.get_context("spawn").Process(target=print)
    dead.start()
    dead.join()
    stale = engine.store.lock("ci", "erin", "deploy").info.model_copy(update={"pid": dead.pid})
    assert engine.store.blobs.create("lock.json", stale.model_dump_json())
    results = race_two_deploys(project, env_outputs, user)
    assert results[1] == "ok" and results[0].startswith(f"error: deploy lock for demo.dev.{user} is held by"), results
    assert _engine(project, env_outputs, user).state().sequence == 1


def test_killed_deploy_is_completed_by_the_next_one(project, env_outputs, user):
    engine = _engine(project, env_outputs, user)
    kill_at_action(engine, 3)  # the process is killed between two actions
    with pytest.raises(KeyboardInterrupt):
        engine.deploy()
    # what happened is in the journal; a line cut by the kill is ignored
    with open(engine.store.journal_path, "a") as fh:
        fh.write('{"key": "jobs.train_job", "rec')
    partial = engine.state()
    assert len(partial.resources) == 2 and partial.sequence == 0
    lock = json.loads((engine.store.root / "lock.json").read_text()) if (engine.store.root / "lock.json").exists() else None
    assert lock is None  # released on the way out

    result = _engine(project, env_outputs, user).deploy()
    assert result.state.sequence == 1
    assert len(result.state.resources) == 4
    assert not engine.store.journal_path.exists()  # folded into state.json
    assert {a.action for a in _engine(project, env_outputs, user).plan().actions} == {"unchanged"}


def test_production_target_checks_branch(project, env_outputs, user):
    bundle, diags = load_bundle(project, "staging", user=user)
    assert bundle is not None
    bundle.git = type(bundle.git)(commit="abc", branch="feature-x", dirty=False)
    engine = Engine(bundle, env_outputs)
    assert engine.persona == "ci"
    with pytest.raises(BundleError, match="deploys only from git branch 'main' \\(current: feature-x\\)"):
        engine.deploy()
    result = engine.deploy(force=True)
    job = engine.store.read_object("jobs", "train_job")
    assert job["spec"]["name"] == "train"  # production: no name prefix
    assert job["spec"]["schedule"]["pause_status"] == "UNPAUSED"
    assert result.state.last.persona == "ci"


ENDPOINT = """
resources:
  serving_endpoints:
    demo_endpoint:
      model: ${resources.registered_models.demo_model.name}
      served:
        - {alias: champion, traffic_percentage: 80}
        - {alias: challenger, traffic_percentage: 20}
      shadow: candidate
      rollout: {strategy: ab}
  monitors:
    demo_monitor:
      endpoint: demo_endpoint
      retrain_job: train_job
      thresholds: {psi: 0.2}
"""


def test_endpoints_and_monitors_are_registered_resolved(project, env_outputs, user):
    from bundles.deployed import deployed_specs

    (project / "resources" / "serving.yml").write_text(ENDPOINT)
    engine = _engine(project, env_outputs, user)
    engine.deploy()
    endpoint = deployed_specs(env_outputs, "serving_endpoints")["demo_endpoint"]
    assert endpoint["name"] == f"dev_{user}_demo_endpoint"
    assert endpoint["model"] == f"dev_{user}_demo-model"  # resolved reference
    assert [s["traffic_percentage"] for s in endpoint["served"]] == [80, 20] and endpoint["shadow"] == "candidate"
    monitor = deployed_specs(env_outputs, "monitors", deployment=f"demo.dev.{user}")["demo_monitor"]
    assert monitor["thresholds"] == {"psi": 0.2} and monitor["retrain_job"] == "train_job"
    summary = engine.summary()
    res = summary["resources"]
    assert res["serving_endpoints"]["demo_endpoint"]["url"] == env_outputs.serving_url
    assert res["registered_models"]["demo_model"]["url"].endswith(f"/#/models/dev_{user}_demo-model")
    assert res["registered_models"]["demo_model"]["name"] == f"dev_{user}_demo-model"

    (project / "resources" / "serving.yml").unlink()
    plan = {a.key: a.action for a in _engine(project, env_outputs, user).plan().actions}
    assert plan["serving_endpoints.demo_endpoint"] == "delete" and plan["monitors.demo_monitor"] == "delete"
    _engine(project, env_outputs, user).deploy()
    assert deployed_specs(env_outputs, "serving_endpoints") == {}
