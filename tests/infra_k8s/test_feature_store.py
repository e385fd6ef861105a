"""The kubernetes online feature store, from the rendered program: serving and job pods name the
same PostgreSQL database by a URL without a password and read PGPASSWORD from the env's Secret;
the in-cluster server creates the store's own role and database; `online: sqlite` keeps files."""

from __future__ import annotations

import pytest

from infra.kubernetes import feature_store
from infra.kubernetes.config import KubernetesConfig, parse_kubernetes_config
from infra.kubernetes.manifests import ClusterTarget, render_task_job
from tests.infra_k8s.conftest import EXTERNAL
from tests.infra_k8s.harness import find, objects

IN_CLUSTER_URL = "postgresql+psycopg://features@postgres:5432/feature_store"
EXTERNAL_URL = "postgresql+psycopg://features@pg.internal.example:5432/feature_store?sslmode=require"
PGPASSWORD = {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": "feature-store", "key": "PGPASSWORD"}}}


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


@pytest.mark.parametrize("scenario, url", [("staging", IN_CLUSTER_URL), ("prod-external", EXTERNAL_URL)])
def test_serving_and_job_pods_share_the_store_with_the_password_from_a_secret(rendered, scenario, url):
    render = rendered[scenario]
    serving = _env(find(render, "Deployment", "serving")["spec"]["template"]["spec"]["containers"][0])
    assert serving["CONVEYOR_ONLINE_STORE_URL"]["value"] == url and serving["PGPASSWORD"] == PGPASSWORD
    secret = find(render, "Secret", "feature-store")["stringData"]
    assert set(secret) == {"PGPASSWORD"} and secret["PGPASSWORD"] not in url
    kube = parse_kubernetes_config(EXTERNAL) if scenario == "prod-external" else KubernetesConfig()
    job = _env(render_task_job(ClusterTarget.from_config("staging", kube), job="feature_refresh_job", task="refresh",
                               module="ml.features.refresh", run_id="r")["spec"]["template"]["spec"]["containers"][0])
    assert job["CONVEYOR_ONLINE_STORE_URL"]["value"] == url and job["PGPASSWORD"] == PGPASSWORD
    for obj in objects(render):  # the role's password is in no manifest but its Secret's
        if obj["kind"] != "Secret":
            assert secret["PGPASSWORD"] not in str(obj), f"{obj['kind']}/{obj['metadata']['name']}"


def test_the_in_cluster_server_creates_the_role_and_database_once(rendered):
    render = rendered["staging"]
    script = find(render, "ConfigMap", "postgres-init")["data"]["20-feature-store.sh"]
    assert "CREATE ROLE features LOGIN PASSWORD :'pw'" in script and "CREATE DATABASE feature_store OWNER features" in script
    assert 'pw="$FEATURES_PASSWORD"' in script  # from the container's env, not the script
    pg_secret = find(render, "Secret", "postgres")["stringData"]
    assert pg_secret["FEATURES_PASSWORD"] == find(render, "Secret", "feature-store")["stringData"]["PGPASSWORD"]
    assert pg_secret["FEATURES_PASSWORD"] != pg_secret["POSTGRES_PASSWORD"]  # its own role, not MLflow's


def test_sqlite_keeps_the_store_on_files_and_no_pod_gets_a_url():
    cfg = parse_kubernetes_config({"feature_store": {"online": "sqlite"}})
    assert feature_store.online_store_url(cfg) is None and feature_store.pod_env(cfg) == []
    job = render_task_job(ClusterTarget.from_config("dev", cfg), job="j", task="t", module="m", run_id="r")
    assert "CONVEYOR_ONLINE_STORE_URL" not in _env(job["spec"]["template"]["spec"]["containers"][0])
    with pytest.raises(ValueError, match=r"conveyor:kubernetes.feature_store.online: Input should be 'postgresql' or 'sqlite'"):
        parse_kubernetes_config({"feature_store": {"online": "redis"}})


def test_an_external_server_without_the_store_password_is_refused_before_anything_is_created():
    """`preflight` (before Pulumi creates anything) raises this message; `online: sqlite` needs none."""
    import copy

    kube = copy.deepcopy(EXTERNAL)
    del kube["feature_store"]
    problem = feature_store.config_problem(parse_kubernetes_config(kube))
    assert problem.startswith("conveyor:kubernetes.feature_store.password: required with postgres.kind external")
    assert feature_store.config_problem(parse_kubernetes_config({**kube, "feature_store": {"online": "sqlite"}})) is None
