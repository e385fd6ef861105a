"""A real `pulumi up` of the kubernetes platform against a real API server (and its controllers).

Needs the pulumi-resource-kubernetes plugin, which takes ~15 minutes to build from Go modules,
so it is opt-in: `make test-k8s` builds it (cached) and runs this module. Without the plugin
the module is skipped and says how to get it. No kubelet: `wait_for_ready: false` lets the
provider apply workloads without waiting for pods that will never run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e.envs import make_project, pulumi_cmd, run
from tests.kube_cluster import control_plane, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def _plugin() -> str | None:
    import os

    if os.environ.get("CONVEYOR_K8S_PLUGIN"):
        return os.environ["CONVEYOR_K8S_PLUGIN"]
    from importlib.metadata import version

    from core.paths import tools_dir

    path = tools_dir() / f"pulumi-kubernetes-v{version('pulumi_kubernetes')}" / "pulumi-resource-kubernetes"
    return str(path) if path.is_file() else None


@pytest.fixture(scope="module")
def k8s_stack(tmp_path_factory):
    plugin = _plugin()
    if plugin is None:
        pytest.skip("needs the pulumi-resource-kubernetes plugin: `make k8s-plugin` builds it (~15 min, once)")
    from importlib.metadata import version

    root = tmp_path_factory.mktemp("k8s-up")
    with control_plane(root / "control-plane") as cp:
        proj = make_project(root, {"staging": {"ports": (5931, 3931), "data_scientist": "read",
                                               "default_permission": "READ"}})
        stack_file = proj / "Pulumi.staging.yaml"
        cfg = yaml.safe_load(stack_file.read_text())
        cfg["config"]["conveyor:platform"] = "kubernetes"
        cfg["config"]["conveyor:kubernetes"] = {"kubeconfig": str(cp.kubeconfig), "wait_for_ready": False}
        stack_file.write_text(yaml.safe_dump(cfg))
        run(proj, pulumi_cmd("plugin", "install", "resource", "kubernetes", f"v{version('pulumi_kubernetes')}",
                             "--file", plugin))
        yield cp, proj


def test_up_creates_the_env_second_up_changes_nothing_destroy_removes_it(k8s_stack):
    cp, proj = k8s_stack
    up = run(proj, [sys.executable, "-m", "conveyor.cli", "env", "up", "staging"])
    assert "staging is up" in up.stdout
    api = cp.api()
    ns = "conveyor-staging"
    assert {d["metadata"]["name"] for d in api.list("apps/v1", "Deployment", ns, {})} == {"minio", "mlflow", "serving"}
    assert [s["metadata"]["name"] for s in api.list("apps/v1", "StatefulSet", ns, {})] == ["postgres"]
    assert {b["metadata"]["name"] for b in api.list("rbac.authorization.k8s.io/v1", "RoleBinding", ns, {})} == {
        "ci-deploy", "data-scientist-view", "ml-engineer-deploy"}
    # the persona rules hold on what `pulumi up` really created
    assert not cp.can(f"system:serviceaccount:{ns}:data-scientist", "create", "batch", "jobs", ns)
    assert cp.can(f"system:serviceaccount:{ns}:ci", "patch", "apps", "deployments", ns)

    out = json.loads(run(proj, pulumi_cmd("stack", "output", "--json", "--show-secrets", "-s", "staging")).stdout)
    assert out["platform"] == "kubernetes" and out["storage_uri"] == "s3://conveyor/staging"
    assert set(out["credentials"]) == {"data_scientist", "ml_engineer", "ci"}
    # the Secret jobs mount carries that persona's real credentials (not placeholders)
    secret = api.get("v1", "Secret", ns, "env-outputs-ci")
    import base64

    in_pod = json.loads(base64.b64decode(secret["data"]["outputs.json"]))
    assert in_pod["credentials"]["ci"] == out["credentials"]["ci"]
    assert in_pod["tracking_uri"] == f"http://mlflow.{ns}.svc.cluster.local:5000"

    again = run(proj, pulumi_cmd("up", "-s", "staging", "--yes", "--skip-preview"))
    assert " unchanged" in again.stdout and "created" not in again.stdout and "updated" not in again.stdout, again.stdout

    run(proj, [sys.executable, "-m", "conveyor.cli", "env", "down", "staging"])
    wait_for(lambda: api.get("v1", "Namespace", "", ns) is None, timeout=120, what="the namespace to be deleted")


def test_a_missing_kubeconfig_stops_up_before_anything_is_created(tmp_path):
    """(No plugin needed: the program refuses before it registers a Kubernetes resource.)"""
    proj = make_project(tmp_path, {"staging": {"ports": (5941, 3941), "data_scientist": "read",
                                               "default_permission": "READ"}})
    stack_file = proj / "Pulumi.staging.yaml"
    cfg = yaml.safe_load(stack_file.read_text())
    cfg["config"]["conveyor:platform"] = "kubernetes"
    cfg["config"]["conveyor:kubernetes"] = {"kubeconfig": str(tmp_path / "no-such-kubeconfig")}
    stack_file.write_text(yaml.safe_dump(cfg))
    proc = run(proj, [sys.executable, "-m", "conveyor.cli", "env", "up", "staging"], check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert f"conveyor:kubernetes.kubeconfig: {tmp_path / 'no-such-kubeconfig'}: no such file" in out, out
    assert "kubernetes:" not in out and "RandomSecret" not in out and "Traceback" not in out  # nothing created
