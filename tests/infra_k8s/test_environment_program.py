"""The kubernetes program per env: contract outputs, namespace isolation, hardening, secrets."""

from __future__ import annotations

import json

import pytest

from core.contract import EnvironmentOutputs, StoragePaths, storage_layout
from tests.infra_k8s.harness import MOCK_SECRET_PREFIX, find, objects, outputs, pod_specs

ENVS = ["dev", "staging", "prod"]
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}


@pytest.mark.parametrize("env", ENVS)
def test_outputs_have_the_contract_shape_of_the_local_platform(rendered, env):
    out = outputs(rendered[env])
    assert set(out) == set(EnvironmentOutputs.model_fields)
    parsed = EnvironmentOutputs.model_validate(out)
    assert parsed.env == env and parsed.platform == "kubernetes"
    assert set(parsed.storage.model_dump()) == set(StoragePaths.model_fields)
    assert parsed.storage == storage_layout(parsed.storage_uri)
    assert parsed.storage_uri == f"s3://conveyor/{env}"
    assert set(parsed.credentials) == {"data_scientist", "ml_engineer", "ci"}
    # same keys, same value types as the local platform's outputs of the same env config
    local = outputs(rendered["local-dev"])
    assert set(local) == set(out)
    for key in out:
        assert type(out[key]) is type(local[key]), key
    assert set(out["credentials"]["ci"]) == set(local["credentials"]["ci"]) == {"username", "password", "token"}


@pytest.mark.parametrize("env", ENVS)
def test_only_credentials_are_secret_and_urls_use_the_env_ports(rendered, env):
    flags = {k: v["secret"] for k, v in rendered[env]["outputs"].items()}
    assert flags.pop("credentials") is True
    assert not any(flags.values())
    out = outputs(rendered[env])
    ports = {"dev": (5101, 3101), "staging": (5201, 3201), "prod": (5301, 3301)}[env]
    assert out["tracking_uri"] == f"http://127.0.0.1:{ports[0]}"
    assert out["serving_url"] == f"http://127.0.0.1:{ports[1]}"


@pytest.mark.parametrize("env", ENVS)
def test_every_object_lives_in_the_env_namespace_and_nothing_is_cluster_wide(rendered, env):
    objs = objects(rendered[env])
    namespaces = [o for o in objs if o["kind"] == "Namespace"]
    assert [n["metadata"]["name"] for n in namespaces] == [f"conveyor-{env}"]
    assert namespaces[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert not [o for o in objs if o["kind"] in CLUSTER_SCOPED - {"Namespace"}]
    for obj in objs:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == f"conveyor-{env}", f"{obj['kind']}/{obj['metadata']['name']}"
            assert obj["metadata"]["labels"]["conveyor.io/env"] == env


def test_environments_do_not_share_names_that_matter(rendered):
    """Two envs on one cluster: different namespaces, so identical object names never collide."""
    keys = {env: {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects(rendered[env])}
            for env in ENVS}
    assert not keys["dev"] & keys["staging"] and not keys["staging"] & keys["prod"] and not keys["dev"] & keys["prod"]


@pytest.mark.parametrize("env", ENVS)
def test_every_container_is_non_root_hardened_and_sized(rendered, env):
    specs = pod_specs(rendered[env])
    assert {name for name, _ in specs} >= {"Deployment/mlflow", "Deployment/serving", "Deployment/minio",
                                           "StatefulSet/postgres"}
    # the volume types Pod Security "restricted" admits (the namespace enforces it)
    restricted_volumes = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                          "projected", "secret"}
    for name, spec in specs:
        assert spec["automountServiceAccountToken"] is False, name
        assert not {"hostNetwork", "hostPID", "hostIPC"} & set(spec), name
        for volume in spec.get("volumes", []):
            assert set(volume) - {"name"} <= restricted_volumes, f"{name}: volume {volume['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] > 0, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for c in spec.get("initContainers", []) + spec["containers"]:
            where = f"{name}/{c['name']}"
            for bound in ("requests", "limits"):
                assert set(c["resources"][bound]) == {"cpu", "memory"}, where
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], where
            assert sc["runAsNonRoot"] is True, where


@pytest.mark.parametrize("env", ENVS)
def test_serving_has_probes_service_and_autoscaler(rendered, env):
    deployment = find(rendered[env], "Deployment", "serving")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    # the launcher: it serves the code bundle deploy ships (ml/serving/launcher.py)
    assert container["command"] == ["python", "-m", "ml.serving.launcher"]
    env_vars = {e["name"]: e for e in container["env"]}
    assert env_vars["CONVEYOR_SERVING_TOKENS_FILE"]["value"].endswith("tokens.json")
    assert env_vars["MLFLOW_TRACKING_URI"]["value"] == f"http://mlflow.conveyor-{env}.svc.cluster.local:5000"
    assert "value" not in env_vars["MLFLOW_TRACKING_PASSWORD"]  # from a Secret, never inline
    hpa = find(rendered[env], "HorizontalPodAutoscaler", "serving")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "serving"}
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert find(rendered[env], "Service", "serving")["spec"]["ports"][0]["port"] == 3000


@pytest.mark.parametrize("env", ENVS)
def test_mlflow_runs_basic_auth_with_the_local_platforms_roles(rendered, env):
    render = rendered[env]
    deployment = find(render, "Deployment", "mlflow")
    server = deployment["spec"]["template"]["spec"]["containers"][0]
    assert server["args"][:2] == ["--app-name", "basic-auth"]
    assert "--artifacts-destination" in server["args"]
    assert server["args"][server["args"].index("--artifacts-destination") + 1] == f"s3://conveyor/{env}/mlflow-artifacts"
    roles = json.loads(find(render, "ConfigMap", "mlflow-roles")["data"]["roles.json"])
    expected = {"dev": "write", "staging": "read", "prod": "read"}[env]
    assert roles["data_scientist"] == expected and roles["ci"] == "write"
    auth = find(render, "Secret", "mlflow-auth")
    ini = auth["stringData"]["basic_auth.ini"]
    assert "authorization_function = infra.components.mlflow_auth:authenticate" in ini
    assert "database_uri = postgresql://mlflow:" in ini and "@postgres:5432/mlflow_auth" in ini
    users = json.loads(auth["stringData"]["users.json"])
    assert {"data_scientist", "ml_engineer", "ci"} <= set(users)
    assert [u for u, spec in users.items() if spec["admin"]] == ["conveyor-admin"]
    init = deployment["spec"]["template"]["spec"]["initContainers"][0]
    assert init["command"] == ["python", "-m", "infra.kubernetes.bootstrap"]


@pytest.mark.parametrize("env", ENVS)
def test_secret_values_only_appear_in_secrets_and_are_pulumi_secrets(rendered, env):
    render = rendered[env]
    for res in render["resources"]:
        obj = res["inputs"]
        if not res["type"].startswith("kubernetes:") or res["type"] == "pulumi:providers:kubernetes":
            continue
        if obj["kind"] == "Secret":
            assert res["secret_paths"] == ["/stringData"], obj["metadata"]["name"]
        else:
            assert MOCK_SECRET_PREFIX not in json.dumps(obj), f"{obj['kind']}/{obj['metadata']['name']} leaks a secret"


def test_external_storage_database_and_ingress(rendered):
    render = rendered["prod-external"]
    out = outputs(render)
    assert out["storage_uri"] == "s3://acme-ml/conveyor/prod"
    assert out["tracking_uri"] == "https://mlflow.prod.example"
    assert out["serving_url"] == "https://api.prod.example"
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects(render)}
    assert ("StatefulSet", "postgres") not in kinds and ("Deployment", "minio") not in kinds
    assert {("Ingress", "mlflow"), ("Ingress", "serving")} <= kinds
    assert find(render, "Secret", "mlflow-db")["stringData"]["backend-store-uri"] == (
        "postgresql://mlflow:pg-secret-example@pg.internal.example:5432/mlflow?sslmode=require")
    assert find(render, "Secret", "s3-credentials")["stringData"]["AWS_ACCESS_KEY_ID"] == "AKIAEXAMPLE"
    server = find(render, "Deployment", "serving")["spec"]["template"]["spec"]["containers"][0]
    assert server["image"] == "registry.example/conveyor:1.2.3" and server["imagePullPolicy"] == "Always"
    assert find(render, "HorizontalPodAutoscaler", "serving")["spec"]["maxReplicas"] == 6
    provider = next(r["inputs"] for r in render["resources"] if r["type"] == "pulumi:providers:kubernetes")
    assert provider["context"] == "kind-conveyor" and provider["kubeconfig"].endswith("/.kube/config")
    assert not provider["kubeconfig"].startswith("~")


def test_external_secrets_stay_in_secrets(rendered):
    for res in rendered["prod-external"]["resources"]:
        if not res["type"].startswith("kubernetes:") or res["type"] == "pulumi:providers:kubernetes":
            continue
        text = json.dumps(res["inputs"])
        leaked = [s for s in ("s3-secret-example", "pg-secret-example", "fs-secret-example") if s in text]
        if res["inputs"]["kind"] == "Secret":
            assert not leaked or res["secret_paths"] == ["/stringData"]
        else:
            assert not leaked, f"{res['inputs']['kind']}/{res['inputs']['metadata']['name']} leaks {leaked}"


def test_wait_for_ready_false_marks_every_object_skip_await(rendered, tmp_path):
    from tests.infra_k8s.conftest import stack_config
    from tests.infra_k8s.harness import render

    relaxed = render("dev", stack_config("dev", kubernetes={"wait_for_ready": False}), tmp_path)
    objs = objects(relaxed)
    assert len(objs) == len(objects(rendered["dev"]))
    assert all(o["metadata"].get("annotations", {}).get("pulumi.com/skipAwait") == "true" for o in objs)
    assert not any("pulumi.com/skipAwait" in (o["metadata"].get("annotations") or {}) for o in objects(rendered["dev"]))
