"""Run a deployed job in this process: admission, the run's record, then its task DAG.

A run is admitted under a file lock (max_concurrent_runs counts live records), gets the
env's credentials of the job's `run_as` persona only, and keeps its record, per-task logs
and task values in the env's storage (`bundles.runs`). Executing the DAG is
`bundles.execution`; showing progress is `bundles.reporter`.

A run belongs to its deployment and to nothing else: the job spec, the code (the deployed
wheel, unpacked) and, through them, every parameter and resource setting its tasks read.
No checkout takes part, so a scheduled run, a manual `conveyor bundle run` and a Job's pod on
a kubernetes env run the same thing. A deployment this runner cannot run as deployed (never
deployed, or deployed by a Conveyor whose artifact format differs) is refused with the fix.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from bundles import artifact as artifacts
from bundles.envstore import DeploymentStore, deploy_command, now_iso, target_of, write_json
from bundles.errors import BundleError
from bundles.execution import RunExecution
from bundles.models import Job
from bundles.reporter import Reporter
from bundles.runs import RunRecord, TaskState, list_runs, log_tail, new_run_id, sweep_credentials
from core.contract import EnvironmentOutputs
from core.errors import did_you_mean

__all__ = ["JobRunner", "Reporter", "RunRecord", "TaskState", "check_deployed", "check_params", "find_job",
           "list_runs", "log_tail", "new_run_id"]


def find_job(jobs: dict[str, dict], key: str, deployment: str) -> str:
    """The key of deployed job `key` (a resource key or a job's name) among `jobs`."""
    if key in jobs:
        return key
    by_name = {j["spec"].get("name"): k for k, j in jobs.items()}
    if key in by_name:
        return by_name[key]
    hint = did_you_mean(key, list(jobs)) if jobs else ""
    known = f" (deployed: {', '.join(jobs)})" if jobs else ""
    raise BundleError(f"job {key!r} is not deployed in {deployment}{hint}{known}; "
                      f"deploy first with {deploy_command(deployment)}")


def check_deployed(store: DeploymentStore, state: dict) -> str:
    """The content hash of the code deployed as `store`'s deployment (`state`: its raw state),
    once this runner can run it; BundleError naming the deployment and what to do otherwise."""
    dep, target = store.deployment_id, target_of(store.deployment_id)
    artifact = state.get("artifact")
    if not artifact:
        what = "has no code deployed" if state else "has a deploy that did not finish" if store.has_journal() \
            else f"was never deployed to env {store.outputs.env!r}"
        raise BundleError(f"deployment {dep} {what}; deploy it with {deploy_command(dep)}")
    record = (state.get("resources") or {}).get("artifact") or {}
    artifacts.check_format((record.get("spec") or {}).get("format"), dep, target)
    return artifact


def check_params(job_key: str, declared: dict, params: dict) -> None:
    """`--params` may only override parameters the job declares."""
    unknown = [p for p in params if p not in declared]
    if unknown:
        raise BundleError(
            f"job {job_key!r} has no parameter {unknown[0]!r}{did_you_mean(unknown[0], declared)}"
            + (f" (parameters: {', '.join(declared)})" if declared else " (it declares no parameters)")
        )


class JobRunner:
    def __init__(self, outputs: EnvironmentOutputs, store: DeploymentStore, reporter: Reporter | None = None,
                 trigger: str = "manual", parent_run: str | None = None, cancel: threading.Event | None = None):
        self.outputs = outputs
        self.store = store
        self.reporter = reporter
        self.trigger = trigger
        self.parent_run = parent_run
        self._lock = threading.Lock()
        self._cancel = cancel or threading.Event()
        self._cancel_reason = "cancelled"

    def child(self, parent_run: str) -> JobRunner:
        """The runner of a job that a `run_job` task triggers: same env, cancelled with this one."""
        return JobRunner(self.outputs, self.store, reporter=None, trigger="run_job",
                         parent_run=parent_run, cancel=self._cancel)

    def cancel(self, reason: str) -> None:
        self._cancel_reason = reason
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    # --- loading -----------------------------------------------------------------------

    def deployed_jobs(self) -> dict[str, dict]:
        return self.store.objects("jobs")

    def _job(self, key: str) -> tuple[dict, Job]:
        jobs = self.deployed_jobs()
        doc = jobs[find_job(jobs, key, self.store.deployment_id)]
        spec = dict(doc["spec"])
        spec.pop("run_as", None)
        return doc, Job.model_validate(spec)

    def active_runs(self, job: str) -> list[dict]:
        return [r for r in list_runs(self.store, job=job, limit=1000) if r["status"] == "running"]

    # --- run ---------------------------------------------------------------------------

    def run(self, job_key: str, only: list[str] | None = None, params: dict[str, str] | None = None,
            run_id: str | None = None) -> RunRecord:
        """Run a deployed job; `run_id` is given when someone else named the run (a cluster Job)."""
        state = self.store.raw_state()
        artifact = check_deployed(self.store, state)
        doc, job = self._job(job_key)
        job_key = doc["key"]
        run_as = doc["spec"].get("run_as", "ci")
        if run_as not in self.outputs.credentials:
            raise BundleError(f"job {job_key!r} runs as {run_as!r}, which has no credentials in env {self.outputs.env!r}")
        code_dir = self.store.ensure_code(artifact)
        if code_dir is None:
            raise BundleError(f"the code of {self.store.deployment_id} ({artifact[:12]}) is missing from env storage; "
                              f"redeploy it with {deploy_command(self.store.deployment_id)}")
        params = dict(params or {})
        check_params(job_key, job.parameters, params)
        only_set = set(only or [])
        for name in only_set:
            if name not in job.tasks:
                raise BundleError(f"--only: job {job_key!r} has no task {name!r}{did_you_mean(name, job.tasks)}")
        self.store.runs_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.store.runs_dir / ".admission.lock"), timeout=60):  # check + register atomically
            active = self.active_runs(job_key)
            if len(active) >= job.max_concurrent_runs:
                raise BundleError(
                    f"job {job_key!r} already has {len(active)} active run(s) ({active[0]['run_id']}); "
                    f"max_concurrent_runs is {job.max_concurrent_runs}"
                )
            sweep_credentials(self.store)
            git_sha = ((state.get("last") or {}).get("git_sha")) or "unknown"
            record = RunRecord(
                run_id=run_id or new_run_id(), job=job_key, job_name=job.name or job_key,
                deployment=self.store.deployment_id,
                env=self.outputs.env, target=doc.get("target", ""), trigger=self.trigger, persona=run_as,
                git_sha=git_sha, artifact=artifact, parameters={**job.parameters, **params}, parent_run=self.parent_run,
            )
            for name in job.tasks:
                record.tasks[name] = TaskState()
                if only_set and name not in only_set:
                    record.tasks[name].status = "excluded"
            run_dir = self.store.runs_dir / record.run_id
            (run_dir / "logs").mkdir(parents=True)
            (run_dir / "values").mkdir()
            outputs_file = run_dir / "env-outputs.json"
            scoped = self.outputs.model_copy(update={"credentials": {run_as: self.outputs.credentials[run_as]}})
            fd = os.open(outputs_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(scoped.model_dump_json())
            self._save(record)
        ctx = RunExecution(self, record, job, run_dir, code_dir, outputs_file)
        if self.reporter:
            self.reporter.start(record)
        try:
            ctx.execute()
        finally:
            outputs_file.unlink(missing_ok=True)  # credentials never outlive the run
            if record.status == "running":
                record.status = "interrupted"
            record.ended = now_iso()
            self._save(record)
            if self.reporter:
                self.reporter.stop()
        return record

    def _save(self, record: RunRecord) -> None:
        with self._lock:
            write_json(self.store.runs_dir / record.run_id / "run.json", record.to_json())

    def log_path(self, record: RunRecord, task: str) -> Path:
        return self.store.runs_dir / record.run_id / "logs" / f"{task}.log"


RunFn = Callable[..., RunRecord]
