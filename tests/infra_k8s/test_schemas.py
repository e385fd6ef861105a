"""Every object the platform renders must be valid for a current Kubernetes release.

Strict schemas (no unknown fields), so a misspelt key fails here instead of being
silently dropped by the API server.
"""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from infra.kubernetes.config import KubernetesConfig
from infra.kubernetes.manifests import ClusterTarget, render_cronjob, render_task_job
from tests.infra_k8s.conftest import SCENARIOS
from tests.infra_k8s.harness import objects

K8S_VERSION = kubernetes_validate.utils.latest_version()
K8S_SCENARIOS = [key for key in SCENARIOS if not key.startswith("local")]


def validate(obj: dict) -> None:
    try:
        kubernetes_validate.validate(copy.deepcopy(obj), K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path)
        raise AssertionError(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {exc.message}") from None


def test_a_current_release_is_used():
    major, minor = (int(x) for x in K8S_VERSION.split(".")[:2])
    assert (major, minor) >= (1, 33)


@pytest.mark.parametrize("scenario", K8S_SCENARIOS)
def test_every_rendered_object_is_valid(rendered, scenario):
    objs = objects(rendered[scenario])
    assert len(objs) > 20
    kinds = set()
    for obj in objs:
        validate(obj)
        kinds.add(obj["kind"])
    assert {"Namespace", "Deployment", "Service", "Secret", "NetworkPolicy", "Role", "RoleBinding",
            "ServiceAccount", "HorizontalPodAutoscaler", "PersistentVolumeClaim"} <= kinds


def test_the_validator_rejects_what_the_api_server_would():
    """Guard against a validator that accepts anything (which would make the test above vacuous)."""
    misspelt = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
                "spec": {"selectr": {"a": "b"}, "ports": [{"port": 80}]}}
    with pytest.raises(AssertionError, match="selectr"):
        validate(misspelt)
    wrong_type = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "x"},
                "spec": {"schedule": "* * * * *", "suspend": "yes", "jobTemplate": {}}}
    with pytest.raises(AssertionError, match="suspend"):
        validate(wrong_type)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_rendered_jobs_and_cronjobs_are_valid(env):
    target = ClusterTarget.from_config(env, KubernetesConfig())
    validate(render_task_job(target, job="train", task="train_model", module="ml.training.train",
                             params={"max_depth": 6}, run_id="20261123-abc", timeout_seconds=3600))
    validate(render_cronjob(target, job="nightly_retrain", schedule="0 3 * * *",
                            command=["conveyor", "bundle", "run", "nightly_retrain", "--target", env],
                            timezone="Europe/Amsterdam"))
