"""The `kubernetes` platform's jobs: a schedule is a CronJob, a run is a Job in the env's
namespace (`bundles.cluster.ClusterJobs`); the pod runs the same runner as a local run
(`bundles.incluster`): the deployed job spec and code from env storage, no checkout.

The cluster connection is made at first use, from the env's `Pulumi.<stack>.yaml`, so
what never touches jobs (a summary, a plan without jobs) never needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bundles.backends.base import JobBackend, Run, RunResult
from bundles.errors import BundleError

if TYPE_CHECKING:
    from bundles.cluster import ClusterJobs
    from bundles.runner import Reporter


class KubernetesJobs(JobBackend):
    platform = "kubernetes"
    _cluster: ClusterJobs | None = None

    @property
    def cluster(self) -> ClusterJobs:
        if self._cluster is None:
            from bundles.cluster import cluster_jobs_for

            t = self.target
            self._cluster = cluster_jobs_for(t.outputs, t.stack, t.deployment, t.bundle_target, t.git_sha, t.project)
        return self._cluster

    def sync(self, key: str, spec: dict) -> None:
        self.cluster.sync(key, spec)

    def remove(self, key: str) -> None:
        self.cluster.remove(key)

    def has(self, key: str, spec: dict) -> bool:
        return self.cluster.has(key, spec)

    def active_runs(self, key: str) -> list[str]:
        return self.cluster.active_runs(key)

    def start(self, job: str, params: dict[str, str] | None = None, only: list[str] | None = None,
              reporter: Reporter | None = None) -> Run:
        from bundles.envstore import DeploymentStore
        from bundles.runner import check_deployed, check_params, find_job, new_run_id

        if only:
            raise BundleError("--only is not supported on a kubernetes env yet: a cluster run runs the whole job")
        t = self.target
        store = DeploymentStore(t.outputs, t.deployment)
        check_deployed(store, store.raw_state())  # refused here, not in a pod: the pod's runner would refuse it too
        jobs = store.objects("jobs")
        key = find_job(jobs, job, t.deployment)
        spec = jobs[key]["spec"]
        params = params or {}
        check_params(key, spec.get("parameters") or {}, params)
        active = self.active_runs(key)
        limit = spec.get("max_concurrent_runs") or 1
        if len(active) >= limit:
            raise BundleError(f"job {key!r} already has {len(active)} active run(s) ({active[0]}); "
                              f"max_concurrent_runs is {limit}")
        manifest = self.cluster.start(key, spec, new_run_id(), params)
        return ClusterRun(self.cluster, key, manifest["metadata"]["namespace"], manifest["metadata"]["name"])


class ClusterRun(Run):
    def __init__(self, cluster: ClusterJobs, key: str, namespace: str, name: str):
        self.cluster, self.key, self.namespace, self.name = cluster, key, namespace, name
        self.label = f"Job {name}"
        self.started = f"started Job {namespace}/{name} (logs: kubectl -n {namespace} logs -f job/{name})"

    def wait(self, timeout: float | None = None, on_status: Callable[[str], None] | None = None) -> RunResult:
        ns, name = self.namespace, self.name
        result = self.cluster.wait(name, timeout, on_status=on_status)
        return RunResult(ok=result == "succeeded", run_id=name, job=self.key,
                         error=f"Job {ns}/{name} {result}; see kubectl -n {ns} logs job/{name}")
