"""The three envs' manifests applied to a real Kubernetes API server (etcd + kube-apiserver +
kube-controller-manager on loopback, no kubelet).

What the mocks cannot show: the API server accepts every object (schema, defaulting,
admission), its own RBAC answers the persona questions, and the controllers turn every
Deployment/StatefulSet into pods that Pod Security admission lets into a `restricted`
namespace.
"""

from __future__ import annotations

import pytest

from tests.infra_k8s.harness import objects
from tests.infra_k8s.rbac_cases import FORBIDDEN_TO_ALL, PERSONA_CASES
from tests.kube_cluster import control_plane, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ENVS = ["dev", "staging", "prod"]


@pytest.fixture(scope="module")
def cluster(rendered, tmp_path_factory):
    with control_plane(tmp_path_factory.mktemp("control-plane")) as cp:
        api = cp.api()
        applied: dict[str, list[dict]] = {}
        for env in ENVS:
            objs = objects(rendered[env])
            # namespaces first, as Pulumi orders them by dependency
            objs.sort(key=lambda o: o["kind"] != "Namespace")
            applied[env] = [api.apply(o) for o in objs]
        yield cp, applied


def test_the_api_server_accepts_every_object_and_a_reapply_changes_nothing(cluster, rendered):
    cp, applied = cluster
    api = cp.api()
    for env in ENVS:
        kinds = {o["kind"] for o in applied[env]}
        assert {"Namespace", "Deployment", "StatefulSet", "Service", "HorizontalPodAutoscaler", "NetworkPolicy",
                "Role", "RoleBinding", "ServiceAccount", "Secret", "PersistentVolumeClaim"} <= kinds
        assert len(applied[env]) == len(objects(rendered[env]))
    # server-side apply of the same manifests changes nothing (no fight with defaulted fields);
    # controllers update status meanwhile, so compare what an apply owns: spec/data and generation
    for obj in objects(rendered["prod"]):
        meta = obj["metadata"]
        current = api.get(obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])
        after = api.apply(obj)
        what = f"{obj['kind']}/{meta['name']}"
        assert after["metadata"].get("generation") == current["metadata"].get("generation"), what
        for part in ("spec", "data", "rules", "subjects"):
            assert after.get(part) == current.get(part), f"{what}: {part}"


@pytest.mark.parametrize("env,persona,action,allowed", PERSONA_CASES)
def test_persona_roles_as_the_api_server_decides(cluster, env, persona, action, allowed):
    cp, _ = cluster
    verb, group, resource = action
    user = f"system:serviceaccount:conveyor-{env}:{persona.replace('_', '-')}"
    assert cp.can(user, verb, group, resource, f"conveyor-{env}") is allowed


@pytest.mark.parametrize("persona", ["data_scientist", "ml_engineer", "ci"])
def test_no_persona_reaches_secrets_rbac_or_another_env(cluster, persona):
    cp, _ = cluster
    for home in ENVS:
        user = f"system:serviceaccount:conveyor-{home}:{persona.replace('_', '-')}"
        for action in FORBIDDEN_TO_ALL:
            assert not cp.can(user, *action, f"conveyor-{home}")
        for other in ENVS:
            if other != home:
                assert not cp.can(user, "list", "", "pods", f"conveyor-{other}")
                assert not cp.can(user, "create", "batch", "jobs", f"conveyor-{other}")


@pytest.mark.parametrize("env", ENVS)
def test_every_workload_gets_pods_past_restricted_pod_security(cluster, env):
    cp, applied = cluster
    api = cp.api()
    ns = f"conveyor-{env}"
    namespace = api.get("v1", "Namespace", "", ns)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for workload in (o for o in applied[env] if o["kind"] in ("Deployment", "StatefulSet")):
        name, labels = workload["metadata"]["name"], workload["spec"]["selector"]["matchLabels"]

        def pods(labels=labels):
            return api.list("v1", "Pod", ns, labels)

        def rejected(name=name):
            events = api.list("v1", "Event", ns, {})
            return [e["message"] for e in events if e.get("reason") == "FailedCreate" and name in e["message"]]

        found = wait_for(lambda: pods() or rejected(), timeout=90, what=f"pods of {workload['kind']}/{name}")
        assert not rejected(), f"{workload['kind']}/{name}: {rejected()[:1]}"
        pod = found[0]
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert all(c["resources"].get("limits") for c in pod["spec"]["containers"])
