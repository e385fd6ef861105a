"""Access and network isolation, asked as questions of the rendered manifests of all three envs."""

from __future__ import annotations

import pytest

from tests.infra_k8s.cluster_model import Cluster, Pod
from tests.infra_k8s.harness import objects
from tests.infra_k8s.rbac_cases import FORBIDDEN_TO_ALL, PERSONA_CASES, READ_PODS, ROLL_OUT, RUN_JOB

ENVS = ["dev", "staging", "prod"]


@pytest.fixture(scope="module")
def cluster(rendered) -> Cluster:
    """All three envs applied to one cluster, as a real team would."""
    return Cluster([o for env in ENVS for o in objects(rendered[env])])


def sa(persona: str, env: str) -> dict:
    return {"kind": "ServiceAccount", "name": persona.replace("_", "-"), "namespace": f"conveyor-{env}"}


# ------------------------------------------------------------------------------------------ RBAC
@pytest.mark.parametrize("env,persona,action,allowed", PERSONA_CASES)
def test_persona_roles(cluster, env, persona, action, allowed):
    verb, group, resource = action
    assert cluster.can(sa(persona, env), verb, group, resource, f"conveyor-{env}") is allowed


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("persona", ["data_scientist", "ml_engineer", "ci"])
def test_nobody_reads_secrets_or_touches_rbac(cluster, env, persona):
    for action in FORBIDDEN_TO_ALL:
        assert not cluster.can(sa(persona, env), *action, f"conveyor-{env}")


@pytest.mark.parametrize("persona", ["data_scientist", "ml_engineer", "ci"])
def test_a_persona_of_one_env_has_nothing_in_another(cluster, persona):
    for home in ENVS:
        for other in ENVS:
            if other != home:
                for action in (READ_PODS, RUN_JOB, ROLL_OUT):
                    assert not cluster.can(sa(persona, home), *action, f"conveyor-{other}")


def test_no_cluster_wide_rbac(cluster):
    assert not cluster.of_kind("ClusterRole") and not cluster.of_kind("ClusterRoleBinding")
    for binding in cluster.of_kind("RoleBinding"):
        ns = binding["metadata"]["namespace"]
        assert binding["roleRef"]["kind"] == "Role"
        assert all(s["namespace"] == ns for s in binding["subjects"] if s["kind"] == "ServiceAccount")


# -------------------------------------------------------------------------------------- network
def pod(env: str, component: str) -> Pod:
    return Pod.of(f"conveyor-{env}", **{"app.kubernetes.io/component": component, "conveyor.io/env": env})


ALLOWED = {  # (from, to, port): the only flows an env needs
    ("mlflow", "postgres", 5432), ("mlflow", "minio", 9000),
    ("serving", "mlflow", 5000), ("serving", "minio", 9000),
    ("job", "mlflow", 5000), ("job", "minio", 9000), ("job", "serving", 3000),
    # the online feature store (its own role and database on the env's server): lookups, refreshes
    ("serving", "postgres", 5432), ("job", "postgres", 5432),
}
COMPONENTS = ["mlflow", "postgres", "minio", "serving", "job", "stranger"]
PORTS = {"mlflow": 5000, "postgres": 5432, "minio": 9000, "serving": 3000, "job": 8080, "stranger": 8080}


@pytest.mark.parametrize("env", ENVS)
def test_only_the_needed_flows_are_open_inside_an_env(cluster, env):
    for src in COMPONENTS:
        for dst in COMPONENTS:
            if src == dst:
                continue
            port = PORTS[dst]
            expected = (src, dst, port) in ALLOWED
            assert cluster.flow(pod(env, src), pod(env, dst), port) is expected, f"{env}: {src} → {dst}:{port}"


@pytest.mark.parametrize("src_env,dst_env", [("dev", "prod"), ("prod", "dev"), ("staging", "prod"), ("dev", "staging")])
def test_no_flow_crosses_environments(cluster, src_env, dst_env):
    for src in COMPONENTS:
        for dst in ["mlflow", "postgres", "minio", "serving"]:
            assert not cluster.flow(pod(src_env, src), pod(dst_env, dst), PORTS[dst]), f"{src_env}/{src} → {dst_env}/{dst}"


@pytest.mark.parametrize("env", ENVS)
def test_dns_is_open_and_the_internet_is_not(cluster, env):
    dns = Pod.of("kube-system", **{"k8s-app": "kube-dns"})
    for component in COMPONENTS:
        assert cluster.egress_allowed(pod(env, component), dns, 53, "UDP")
        assert not cluster.egress_allowed(pod(env, component), "93.184.216.34", 443)
    default_deny = next(p for p in cluster.of_kind("NetworkPolicy")
                        if p["metadata"]["name"] == "default-deny" and p["metadata"]["namespace"] == f"conveyor-{env}")
    assert default_deny["spec"]["podSelector"] == {} and set(default_deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_external_services_open_exactly_their_cidrs(rendered):
    cluster = Cluster(objects(rendered["prod-external"]))
    mlflow, serving = pod("prod", "mlflow"), pod("prod", "serving")
    assert cluster.egress_allowed(mlflow, "10.20.1.5", 5432)       # external PostgreSQL
    assert cluster.egress_allowed(serving, "10.20.1.5", 5432)     # ... where the online feature store is too
    assert cluster.egress_allowed(serving, "52.218.1.1", 443)      # the S3 endpoint range
    assert not cluster.egress_allowed(serving, "8.8.8.8", 443)
    controller = Pod.of("ingress-nginx", **{"app.kubernetes.io/name": "ingress-nginx"})
    assert cluster.ingress_allowed(controller, mlflow, 5000) and cluster.ingress_allowed(controller, serving, 3000)
    assert not cluster.ingress_allowed(Pod.of("other-team", app="x"), serving, 3000)
