"""Bundle jobs on a cluster as plain manifests: a task (or a whole job run) as a Job, a schedule as a CronJob.

Called by the bundle engine, outside Pulumi: everything comes from the env name and its
`conveyor:kubernetes` stack config, so `conveyor bundle deploy/run` can produce manifests
(`kubectl apply -f -`, or the Kubernetes API) without reading Pulumi state. Nothing this
module imports needs Pulumi (a test holds it to that). The pod sees exactly the task
runtime contract of `core/runtime.py`:

- CONVEYOR_ENV_OUTPUTS → the env's outputs with only this persona's credentials, with the
  in-cluster tracking/serving URLs (Secret `env-outputs-<persona>`, written by Pulumi);
  the same file as `<env>.json` in CONVEYOR_OUTPUTS_DIR for a `conveyor bundle run` in the pod
- CONVEYOR_ENV/PERSONA/BUNDLE_TARGET/JOB/RUN_ID/TASK/GIT_SHA, CONVEYOR_TASK_VALUES_DIR
- MLFLOW_TRACKING_URI/USERNAME/PASSWORD of the persona
- object storage credentials, and the serving state volume (endpoint config) mounted

Pods run as the persona's ServiceAccount (no API token mounted) and carry the `job`
component label, which is what the NetworkPolicies let reach MLflow, storage and serving.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from pydantic import BaseModel, Field

from infra.kubernetes import feature_store, pods
from infra.kubernetes.config import KubernetesConfig, Resources
from infra.kubernetes.names import (
    CREDENTIALS_SECRET,
    MINIO_PORT,
    MLFLOW_PORT,
    STATE_DIR,
    outputs_secret,
    persona_secret,
    service_account_name,
)
from infra.kubernetes.pods import state_env, state_volume

OUTPUTS_DIR = "/etc/conveyor/env"
_INVALID = re.compile(r"[^a-z0-9-]+")


def k8s_name(*parts: str, limit: int = 63) -> str:
    """A DNS-1123 name from free-form parts; long names keep a hash so they stay unique."""
    raw = "-".join(p for p in parts if p)
    name = _INVALID.sub("-", raw.lower()).strip("-") or "task"
    if len(name) <= limit and name == raw:
        return name
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


class ClusterTarget(BaseModel):
    """Where and how job pods of one env run (derived from stack config, no Pulumi state)."""

    env: str
    namespace: str
    image: str
    pull_policy: str = "IfNotPresent"
    resources: Resources
    tracking_uri: str
    storage_env: dict[str, str] = Field(default_factory=dict)
    feature_store_env: list[dict] = Field(default_factory=list, description="the online feature store's URL and PGPASSWORD ref")

    @classmethod
    def from_config(cls, env: str, cfg: KubernetesConfig) -> ClusterTarget:
        namespace = cfg.namespace(env)
        storage_env: dict[str, str] = {}
        endpoint = f"http://minio:{MINIO_PORT}" if cfg.storage.kind == "minio" else cfg.storage.endpoint_url
        if endpoint:
            storage_env = {"AWS_ENDPOINT_URL": endpoint, "MLFLOW_S3_ENDPOINT_URL": endpoint}
        if cfg.storage.kind == "s3" and cfg.storage.region:
            storage_env["AWS_DEFAULT_REGION"] = cfg.storage.region
        return cls(
            env=env,
            namespace=namespace,
            image=cfg.images.platform.ref,
            pull_policy=cfg.images.platform.pull_policy,
            resources=cfg.sizing.jobs,
            tracking_uri=f"http://mlflow.{namespace}.svc.cluster.local:{MLFLOW_PORT}",
            storage_env=storage_env,
            feature_store_env=feature_store.pod_env(cfg),
        )


def task_command(module: str, params: dict[str, Any] | None = None) -> list[str]:
    """`python -m <module> --<param> <value> ...`, the runtime contract's task invocation."""
    argv = ["python", "-m", module]
    for key, value in (params or {}).items():
        argv += [f"--{key}", str(value)]
    return argv


def pod_spec(
    target: ClusterTarget,
    command: list[str],
    *,
    persona: str,
    job: str,
    bundle_target: str,
    run_id: str | None,
    task: str = "",
    git_sha: str = "unknown",
    extra_env: dict[str, str] | None = None,
    resources: Resources | None = None,
) -> dict:
    """The pod every bundle job runs in; `run_id=None` takes the Job's name (CronJob runs)."""
    sa = service_account_name(persona)
    secret = persona_secret(persona)
    run_env = (
        pods.plain_env(CONVEYOR_RUN_ID=run_id)
        if run_id
        else [{"name": "CONVEYOR_RUN_ID",
               "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}}}]
    )
    env = [
        *pods.plain_env(
            CONVEYOR_ENV=target.env,
            CONVEYOR_ENV_OUTPUTS=f"{OUTPUTS_DIR}/outputs.json",
            CONVEYOR_OUTPUTS_DIR=OUTPUTS_DIR,  # `conveyor bundle run` inside the pod reads <env>.json here
            CONVEYOR_PERSONA=persona,
            CONVEYOR_BUNDLE_TARGET=bundle_target,
            CONVEYOR_JOB=job,
            CONVEYOR_TASK=task,
            CONVEYOR_GIT_SHA=git_sha,
            MLFLOW_TRACKING_URI=target.tracking_uri,
            HOME="/tmp",
        ),
        *run_env,
        # defined after CONVEYOR_RUN_ID so Kubernetes expands $(CONVEYOR_RUN_ID)
        *pods.plain_env(CONVEYOR_TASK_VALUES_DIR=f"{STATE_DIR}/runs/$(CONVEYOR_RUN_ID)/task-values"),
        pods.secret_env("MLFLOW_TRACKING_USERNAME", secret, "username"),
        pods.secret_env("MLFLOW_TRACKING_PASSWORD", secret, "password"),
        *state_env(),
        *pods.plain_env(**target.storage_env),
        *target.feature_store_env,  # the refresh job writes the online store the endpoint reads
        *pods.plain_env(**(extra_env or {})),
    ]
    tmp_vol, tmp_mount = pods.tmp_volume()
    state_vol, state_mount = state_volume()
    runner = pods.container(
        "task",
        target.image,
        resources or target.resources,
        pull_policy=target.pull_policy,
        # task values are shared by the tasks of a run: make the run's directory first
        command=["sh", "-c", 'mkdir -p "$CONVEYOR_TASK_VALUES_DIR" && exec "$@"', "--", *command],
        env=env,
        envFrom=[{"secretRef": {"name": CREDENTIALS_SECRET}}],
        volumeMounts=[{"name": "env-outputs", "mountPath": OUTPUTS_DIR, "readOnly": True}, state_mount, tmp_mount],
    )
    return {
        "serviceAccountName": sa,
        "automountServiceAccountToken": False,
        "restartPolicy": "Never",
        "securityContext": pods.pod_security(),
        "containers": [runner],
        "volumes": [
            {"name": "env-outputs", "secret": {"secretName": outputs_secret(persona)}},
            state_vol,
            tmp_vol,
        ],
    }


def _labels(target: ClusterTarget, job: str, persona: str, task: str = "") -> dict[str, str]:
    extra = {"conveyor.io/job": k8s_name(job), "conveyor.io/persona": service_account_name(persona)}
    if task:
        extra["conveyor.io/task"] = k8s_name(task)
    return pods.labels(target.env, "job", **extra)


def render_job(
    target: ClusterTarget,
    *,
    job: str,
    command: list[str],
    run_id: str,
    persona: str = "ci",
    task: str = "",
    bundle_target: str | None = None,
    git_sha: str = "unknown",
    extra_env: dict[str, str] | None = None,
    resources: Resources | None = None,
    timeout_seconds: int | None = None,
    ttl_seconds: int = 86400,
) -> dict:
    """A batch/v1 Job for one run of a bundle job (or one task of it, when `task` is set)."""
    labels = {**_labels(target, job, persona, task), "conveyor.io/run-id": k8s_name(run_id)}
    spec: dict = {
        "backoffLimit": 0,  # retries are the bundle's decision, not Kubernetes'
        "ttlSecondsAfterFinished": ttl_seconds,
        "template": {
            "metadata": {"labels": labels},
            "spec": pod_spec(target, command, persona=persona, job=job, task=task, run_id=run_id,
                             bundle_target=bundle_target or target.env, git_sha=git_sha,
                             extra_env=extra_env, resources=resources),
        },
    }
    if timeout_seconds:
        spec["activeDeadlineSeconds"] = timeout_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": k8s_name(job, task, run_id), "namespace": target.namespace, "labels": labels},
        "spec": spec,
    }


def render_task_job(target: ClusterTarget, *, job: str, task: str, module: str, params: dict[str, Any] | None = None,
                    run_id: str, **kwargs: Any) -> dict:
    """One task of a run as a Job: `python -m <module> --<param> <value>`."""
    return render_job(target, job=job, task=task, command=task_command(module, params), run_id=run_id, **kwargs)


def render_cronjob(
    target: ClusterTarget,
    *,
    job: str,
    schedule: str,
    command: list[str],
    persona: str = "ci",
    timezone: str | None = None,
    bundle_target: str | None = None,
    git_sha: str = "unknown",
    extra_env: dict[str, str] | None = None,
    resources: Resources | None = None,
    timeout_seconds: int | None = None,
    paused: bool = False,
    name: str | None = None,
) -> dict:
    """A batch/v1 CronJob running `command` (typically the bundle runner for the whole job) on `schedule`.

    `name` defaults to the job's; a CronJob name is at most 52 characters (its Jobs add 11)."""
    labels = _labels(target, job, persona)
    job_spec: dict = {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": 86400,
        "template": {
            "metadata": {"labels": labels},
            "spec": pod_spec(target, command, persona=persona, job=job, run_id=None,
                             bundle_target=bundle_target or target.env, git_sha=git_sha,
                             extra_env=extra_env, resources=resources),
        },
    }
    if timeout_seconds:
        job_spec["activeDeadlineSeconds"] = timeout_seconds
    spec: dict = {
        "schedule": schedule,
        "concurrencyPolicy": "Forbid",  # a slow run never overlaps the next one
        "suspend": paused,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 3,
        "jobTemplate": {"metadata": {"labels": labels}, "spec": job_spec},
    }
    if timezone:
        spec["timeZone"] = timezone
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name or k8s_name(job, limit=52), "namespace": target.namespace, "labels": labels},
        "spec": spec,
    }
