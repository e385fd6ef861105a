"""`conveyor:kubernetes` config: defaults that work, mistakes reported as one line naming the key."""

from __future__ import annotations

import pytest

from infra.kubernetes.config import KubernetesConfig, parse_kubernetes_config
from tests.infra_k8s.conftest import stack_config
from tests.infra_k8s.harness import run


def test_defaults_give_minio_postgres_and_the_seeds_access():
    cfg = KubernetesConfig()
    assert cfg.storage.kind == "minio" and cfg.postgres.kind == "statefulset"
    assert cfg.namespace("dev") == "conveyor-dev"
    roles = {"data_scientist": "read", "ml_engineer": "write", "ci": "write"}
    prod = {p: a.kubernetes for p, a in cfg.persona_access("prod", roles).items()}
    assert prod == {"data_scientist": "view", "ml_engineer": "view", "ci": "deploy"}
    dev = {p: a.kubernetes for p, a in cfg.persona_access("dev", {**roles, "data_scientist": "write"}).items()}
    assert dev["data_scientist"] == "edit"


def test_custom_personas_fall_back_to_their_mlflow_role_and_overrides_win():
    cfg = parse_kubernetes_config({"access": {"ci": {"kubernetes": "view", "groups": ["ci-bots"]}}})
    access = cfg.persona_access("prod", {"data_scientist": "read", "ml_engineer": "write", "ci": "write",
                                         "analyst": "read", "platform": "write"})
    assert access["analyst"].kubernetes == "view" and access["platform"].kubernetes == "edit"
    assert access["ci"].kubernetes == "view" and access["ci"].groups == ["ci-bots"]


@pytest.mark.parametrize("raw,message", [
    ({"storage": {"kind": "gcs"}}, "conveyor:kubernetes.storage"),
    ({"namespace_prefix": "Conveyor_Team"}, "conveyor:kubernetes.namespace_prefix"),
    ({"serving": {"min_replicas": 5, "max_replicas": 2}}, "max_replicas (2) must be >= min_replicas (5)"),
    ({"sizing": {"jobs": {"requests": {"cpu": "lots", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}},
     "'lots' is not a Kubernetes quantity"),
    ({"storge": {}}, "conveyor:kubernetes.storge: unknown key"),
])
def test_mistakes_name_the_key(raw, message):
    with pytest.raises(ValueError) as info:
        parse_kubernetes_config(raw)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_access_for_an_unknown_persona_is_refused():
    cfg = parse_kubernetes_config({"access": {"intern": {"kubernetes": "edit"}}})
    with pytest.raises(ValueError, match="conveyor:kubernetes.access: unknown persona"):
        cfg.persona_access("dev", {"data_scientist": "write", "ml_engineer": "write", "ci": "write"})


@pytest.mark.parametrize("kubernetes,extra,message", [
    ({"storage": {"kind": "s3", "bucket": "b", "access_key_id": "AKIA"}}, {},
     "conveyor:kubernetes.storage.secret_access_key: required key is missing"),
    ({"serving": {"max_replicas": 0}}, {}, "conveyor:kubernetes.serving.max_replicas"),
    ({}, {"conveyor:storage": {"retain_on_destroy": True}}, "conveyor:storage.retain_on_destroy: in-cluster"),
])
def test_the_program_fails_with_the_message(tmp_path, kubernetes, extra, message):
    proc = run("staging", stack_config("staging", kubernetes=kubernetes, **extra), tmp_path)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_a_stack_that_still_sets_the_deprecated_serving_service_keeps_loading():
    """`serving.service` is ignored (pods run the launcher) but still accepted: unknown keys are refused,
    so dropping it would fail `pulumi preview` on a stack written before it was deprecated."""
    cfg = parse_kubernetes_config({"serving": {"service": "ml.serving.service:ConveyorEndpoint", "max_replicas": 2}})
    assert cfg.serving.max_replicas == 2
    with pytest.raises(ValueError, match=r"conveyor:kubernetes\.serving\.servic: unknown key"):
        parse_kubernetes_config({"serving": {"servic": "x"}})
