"""Bundle tasks rendered as Jobs/CronJobs: the pod sees the task runtime contract of core/runtime.py."""

from __future__ import annotations

import pytest

from core.contract import EnvironmentOutputs
from infra.kubernetes.config import KubernetesConfig, parse_kubernetes_config
from infra.kubernetes.jobs import deploy_manifest
from infra.kubernetes.manifests import ClusterTarget, k8s_name, render_cronjob, render_task_job
from tests.infra_k8s.cluster_model import Cluster, Pod
from tests.infra_k8s.harness import objects

RUNTIME_VARS = {"CONVEYOR_ENV_OUTPUTS", "CONVEYOR_ENV", "CONVEYOR_PERSONA", "CONVEYOR_BUNDLE_TARGET", "CONVEYOR_JOB",
                "CONVEYOR_RUN_ID", "CONVEYOR_TASK", "CONVEYOR_GIT_SHA", "CONVEYOR_TASK_VALUES_DIR",
                "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}


@pytest.fixture
def target() -> ClusterTarget:
    return ClusterTarget.from_config("staging", KubernetesConfig())


def container_env(pod_spec: dict) -> dict[str, dict]:
    return {e["name"]: e for e in pod_spec["containers"][0]["env"]}


def test_a_task_job_runs_the_module_with_its_params_as_the_persona(target):
    job = render_task_job(target, job="Fraud Training", task="train", module="ml.training.train",
                          params={"max-depth": 6, "target": "staging"}, run_id="run-42", persona="ml_engineer",
                          git_sha="abc123")
    assert job["metadata"]["namespace"] == "conveyor-staging"
    spec = job["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "ml-engineer" and spec["automountServiceAccountToken"] is False
    assert spec["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 0
    command = spec["containers"][0]["command"]
    assert command[-7:] == ["python", "-m", "ml.training.train", "--max-depth", "6", "--target", "staging"]
    env = container_env(spec)
    assert RUNTIME_VARS <= set(env)
    assert env["CONVEYOR_RUN_ID"]["value"] == "run-42" and env["CONVEYOR_TASK"]["value"] == "train"
    assert env["CONVEYOR_PERSONA"]["value"] == "ml_engineer" and env["CONVEYOR_GIT_SHA"]["value"] == "abc123"
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow.conveyor-staging.svc.cluster.local:5000"
    assert env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "persona-ml-engineer", "key": "password"}
    # Kubernetes expands $(VAR) only for variables defined earlier in the list
    names = [e["name"] for e in spec["containers"][0]["env"]]
    assert names.index("CONVEYOR_RUN_ID") < names.index("CONVEYOR_TASK_VALUES_DIR")
    assert "$(CONVEYOR_RUN_ID)" in env["CONVEYOR_TASK_VALUES_DIR"]["value"]
    assert env["CONVEYOR_OUTPUTS_DIR"]["value"] + "/outputs.json" == env["CONVEYOR_ENV_OUTPUTS"]["value"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["env-outputs"]["secret"]["secretName"] == "env-outputs-ml-engineer"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "job"


def test_a_cronjob_takes_its_run_id_from_the_job_kubernetes_creates(target):
    cron = render_cronjob(target, job="nightly_retrain", schedule="0 3 * * *", timezone="UTC",
                          command=["conveyor", "bundle", "run", "nightly_retrain"])
    assert cron["spec"]["concurrencyPolicy"] == "Forbid" and cron["spec"]["timeZone"] == "UTC"
    spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    run_id = container_env(spec)["CONVEYOR_RUN_ID"]
    assert run_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['batch.kubernetes.io/job-name']"
    assert len(cron["metadata"]["name"]) <= 52


def test_names_are_dns_labels_and_stay_unique():
    long = k8s_name("a" * 80, "task", limit=52)
    assert len(long) <= 52 and long[-8:].isalnum()
    assert k8s_name("Fraud_Training", "Run 1") != k8s_name("fraud-training", "run-1")
    assert k8s_name("train", "ok") == "train-ok"


def test_job_pods_reach_what_tasks_need_and_nothing_else(rendered, target):
    """The rendered job pod's labels are the ones the env's NetworkPolicies admit."""
    cluster = Cluster(objects(rendered["staging"]))
    job = render_task_job(target, job="j", task="t", module="m", run_id="r")
    labels = job["spec"]["template"]["metadata"]["labels"]
    job_pod = Pod.of("conveyor-staging", **labels)
    svc = lambda c: Pod.of("conveyor-staging", **{"app.kubernetes.io/component": c})  # noqa: E731
    assert cluster.flow(job_pod, svc("mlflow"), 5000)
    assert cluster.flow(job_pod, svc("minio"), 9000)
    assert cluster.flow(job_pod, svc("serving"), 3000)
    assert cluster.flow(job_pod, svc("postgres"), 5432)  # the online feature store (the refresh job writes it)


def test_job_pods_use_secrets_and_accounts_the_env_creates(rendered, target):
    objs = objects(rendered["staging"])
    outputs = next(o for o in objs if o["kind"] == "Secret" and o["metadata"]["name"] == "env-outputs-ci")
    in_pod = EnvironmentOutputs.model_validate_json(outputs["stringData"]["outputs.json"])
    assert outputs["stringData"]["staging.json"] == outputs["stringData"]["outputs.json"]
    assert set(in_pod.credentials) == {"ci"}  # limited to the persona running the job
    assert in_pod.tracking_uri == target.tracking_uri and in_pod.serving_url.startswith("http://serving.conveyor-staging")
    secrets = {o["metadata"]["name"] for o in objs if o["kind"] == "Secret"}
    accounts = {o["metadata"]["name"] for o in objs if o["kind"] == "ServiceAccount"}
    claims = {o["metadata"]["name"] for o in objs if o["kind"] == "PersistentVolumeClaim"}
    for persona in ["data_scientist", "ml_engineer", "ci"]:
        spec = render_task_job(target, job="j", task="t", module="m", run_id="r", persona=persona)["spec"]["template"]["spec"]
        assert spec["serviceAccountName"] in accounts
        refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in spec["containers"][0]["env"] if "valueFrom" in e
                and "secretKeyRef" in e["valueFrom"]}
        refs |= {s["secretRef"]["name"] for s in spec["containers"][0]["envFrom"]}
        refs |= {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        assert refs <= secrets, refs - secrets
        assert {v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v} <= claims


def test_external_storage_settings_reach_job_pods():
    cfg = parse_kubernetes_config({"storage": {"kind": "s3", "bucket": "b", "endpoint_url": "https://s3.example",
                                               "region": "eu-west-1",
                                               "access_key_id": "AKIA", "secret_access_key": "s"}})
    env = container_env(render_task_job(ClusterTarget.from_config("prod", cfg), job="j", task="t", module="m",
                                        run_id="r")["spec"]["template"]["spec"])
    assert env["AWS_ENDPOINT_URL"]["value"] == "https://s3.example"
    assert env["AWS_DEFAULT_REGION"]["value"] == "eu-west-1"


def test_deploy_manifest_refuses_other_kinds():
    with pytest.raises(ValueError, match="not 'Deployment'"):
        deploy_manifest("x", {"kind": "Deployment", "metadata": {}, "spec": {}})
