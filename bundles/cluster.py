"""Bundle jobs on a `kubernetes` env: each schedule is a CronJob, each `bundle run` a Job.

On the local platform the env's scheduler process reads the registered jobs; on a cluster
Kubernetes itself fires them. Deploy applies one CronJob per scheduled job (suspended while
the schedule is PAUSED, as in development mode) and deletes the CronJobs of jobs that lost
their schedule or left the bundle. Every pod runs `python -m bundles.incluster <deployment>
<job>`: the same runner as `conveyor bundle run`, reading the deployed job and code from the
env's storage, as the job's `run_as` persona (its ServiceAccount and credentials).
The `kubernetes` job backend (`bundles.backends.kubernetes`) is what calls it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bundles.errors import BundleError
from core import settings
from core.contract import EnvironmentOutputs
from infra.kubernetes.kubeapi import KubeApi, KubeError
from infra.kubernetes.manifests import ClusterTarget, k8s_name, render_cronjob, render_job

DEPLOYMENT_LABEL = "conveyor.io/deployment"
WORK_DIR = "/tmp/conveyor"  # the pod's writable emptyDir: run records and unpacked code


def label_value(text: str) -> str:
    """A label value (≤ 63 chars) that still tells deployments apart (hashed when changed)."""
    return k8s_name(text)


def runner_command(deployment: str, job: str, params: dict[str, str] | None = None) -> list[str]:
    argv = ["python", "-m", "bundles.incluster", deployment, job]
    for key, value in sorted((params or {}).items()):
        argv += ["--param", f"{key}={value}"]
    return argv


def outcome(job: dict) -> str | None:
    """"succeeded" or "failed" once the Job has finished, else None."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "succeeded"
        if cond.get("status") == "True" and cond.get("type") == "Failed":
            return "failed"
    return None


class ClusterJobs:
    """Applies and removes one deployment's CronJobs, starts its Jobs."""

    def __init__(self, target: ClusterTarget, api: KubeApi, deployment: str, bundle_target: str,
                 git_sha: str = "unknown"):
        self.target, self.api = target, api
        self.deployment, self.bundle_target, self.git_sha = deployment, bundle_target, git_sha

    def _extra(self) -> dict[str, str]:
        return {settings.DEPLOYMENT.name: self.deployment, settings.HOME.name: WORK_DIR}

    def cronjob(self, key: str, spec: dict) -> dict | None:
        """The CronJob for a deployed job spec, or None when it has no schedule."""
        sched = spec.get("schedule")
        if not sched:
            return None
        manifest = render_cronjob(
            self.target, job=spec.get("name") or key, schedule=sched["cron"], timezone="Etc/UTC",
            name=k8s_name(self.deployment, key, limit=52),  # unique per deployment: never another's CronJob
            command=runner_command(self.deployment, key), persona=spec.get("run_as") or "ci",
            bundle_target=self.bundle_target, git_sha=self.git_sha, extra_env=self._extra(),
            timeout_seconds=spec.get("timeout_seconds"), paused=sched.get("pause_status") == "PAUSED",
        )
        job_spec = manifest["spec"]["jobTemplate"]
        self._label(key, manifest["metadata"], job_spec["metadata"], job_spec["spec"]["template"]["metadata"])
        return manifest

    def _selector(self, key: str) -> dict[str, str]:
        """Labels of this deployment's objects for job `key` (what deletes and counts select on)."""
        return {DEPLOYMENT_LABEL: label_value(self.deployment), "conveyor.io/job-key": k8s_name(key)}

    def _label(self, key: str, *metas: dict) -> None:
        for meta in metas:
            meta["labels"].update(self._selector(key))

    def sync(self, key: str, spec: dict) -> None:
        """Make the cluster match one deployed job: its CronJob applied, or none."""
        manifest = self.cronjob(key, spec)
        if manifest is not None:
            self.api.apply(manifest)
        self._delete_cronjobs(key, keep=manifest["metadata"]["name"] if manifest else None)

    def remove(self, key: str) -> None:
        self._delete_cronjobs(key, keep=None)

    def _delete_cronjobs(self, key: str, keep: str | None) -> None:
        # by label, not name: a renamed job leaves no CronJob behind
        for item in self.api.list("batch/v1", "CronJob", self.target.namespace, self._selector(key)):
            name = item["metadata"]["name"]
            if name != keep:
                self.api.delete("batch/v1", "CronJob", self.target.namespace, name)

    def has(self, key: str, spec: dict) -> bool:
        """Whether what `sync` would apply is there (a CronJob deleted by hand is re-created)."""
        manifest = self.cronjob(key, spec)
        if manifest is None:
            return True
        found = self.api.get("batch/v1", "CronJob", self.target.namespace, manifest["metadata"]["name"])
        return found is not None and (found["metadata"].get("labels") or {}).get(DEPLOYMENT_LABEL) == \
            label_value(self.deployment)

    def active_runs(self, key: str) -> list[str]:
        """Names of this job's Jobs still running (manual and scheduled alike)."""
        jobs = self.api.list("batch/v1", "Job", self.target.namespace, self._selector(key))
        return [j["metadata"]["name"] for j in jobs if outcome(j) is None]

    def start(self, key: str, spec: dict, run_id: str, params: dict[str, str] | None = None) -> dict:
        """Create the Job of one run (`conveyor bundle run` on this env); returns the manifest."""
        manifest = render_job(
            self.target, job=spec.get("name") or key, command=runner_command(self.deployment, key, params),
            run_id=run_id, persona=spec.get("run_as") or "ci", bundle_target=self.bundle_target,
            git_sha=self.git_sha, extra_env=self._extra(), timeout_seconds=spec.get("timeout_seconds"),
        )
        self._label(key, manifest["metadata"], manifest["spec"]["template"]["metadata"])
        self.api.apply(manifest)
        return manifest

    def wait(self, name: str, timeout: float | None = None, on_status: Callable[[str], None] | None = None) -> str:
        """Poll the Job until it succeeds or fails: "succeeded", "failed" or "timeout"."""
        deadline = time.monotonic() + timeout if timeout else None
        last = ""
        while True:
            job = self.api.get("batch/v1", "Job", self.target.namespace, name)
            if job is None:
                raise BundleError(f"Job {self.target.namespace}/{name} disappeared while waiting for it")
            done = outcome(job)
            if done:
                return done
            now = "running" if (job.get("status") or {}).get("active") else "pending"
            if on_status and now != last:
                on_status(now)
                last = now
            if deadline and time.monotonic() > deadline:
                return "timeout"
            time.sleep(2)


def cluster_jobs_for(outputs: EnvironmentOutputs, stack: str, deployment: str, bundle_target: str,
                     git_sha: str = "unknown", project: Path | None = None) -> ClusterJobs:
    """ClusterJobs of a kubernetes env, from its `Pulumi.<stack>.yaml` (in `project`, else the project dir)."""
    from core.paths import project_dir
    from infra.config import read_stack_file, secure_as_placeholders
    from infra.kubernetes.config import parse_kubernetes_config

    candidates = [p / f"Pulumi.{stack}.yaml" for p in (project, project_dir()) if p is not None]
    stack_file = next((c for c in candidates if c.is_file()), candidates[0])
    if not stack_file.is_file():
        raise BundleError(f"environment {outputs.env!r} runs on kubernetes, but {stack_file} (its cluster "
                          f"settings) is missing")
    try:
        # a bundle deploy never needs the stack's secrets (pods get them from Kubernetes Secrets)
        cfg = parse_kubernetes_config(secure_as_placeholders(read_stack_file(stack_file).get("kubernetes")))
        api = KubeApi(cfg.kubeconfig, cfg.context)
    except (ValueError, KubeError) as exc:
        raise BundleError(f"environment {outputs.env!r}: {exc}") from None
    return ClusterJobs(ClusterTarget.from_config(outputs.env, cfg), api, deployment, bundle_target, git_sha)
