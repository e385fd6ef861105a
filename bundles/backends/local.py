"""The `local` platform's jobs: runs are processes on this machine, schedules are read
from env storage by the env's scheduler process (`bundles.scheduler`).

So deploy has nothing to do beyond registering the job in storage, and `start` runs the
job's task DAG right here, in the foreground (`bundles.runner.JobRunner`): the deployed job
and code, as the env's scheduler would, whatever the checkout it is started from holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bundles.backends.base import JobBackend, Run, RunResult, TaskFailure

if TYPE_CHECKING:
    from bundles.runner import JobRunner, Reporter, RunRecord


class LocalJobs(JobBackend):
    platform = "local"

    def sync(self, key: str, spec: dict) -> None:
        pass  # the scheduler process reads the registered job on its next tick

    def remove(self, key: str) -> None:
        pass

    def has(self, key: str, spec: dict) -> bool:
        return True

    def runner(self, reporter: Reporter | None = None) -> JobRunner:
        from bundles.envstore import DeploymentStore
        from bundles.runner import JobRunner

        t = self.target
        return JobRunner(t.outputs, DeploymentStore(t.outputs, t.deployment), reporter=reporter)

    def active_runs(self, key: str) -> list[str]:
        return [r["run_id"] for r in self.runner().active_runs(key)]

    def start(self, job: str, params: dict[str, str] | None = None, only: list[str] | None = None,
              reporter: Reporter | None = None) -> Run:
        runner = self.runner(reporter)
        record = runner.run(job, only=only, params=params)
        return FinishedRun(record, str(runner.store.runs_dir / record.run_id / "logs"))


class FinishedRun(Run):
    finished = True

    def __init__(self, record: RunRecord, logs: str):
        self.record, self.logs = record, logs
        self.label = f"run {record.run_id}"

    def wait(self, timeout: float | None = None, on_status: Callable[[str], None] | None = None) -> RunResult:
        from bundles.runner import log_tail

        rec = self.record
        failures = [TaskFailure(name, ts.reason, ts.log, log_tail(ts.log))
                    for name, ts in rec.tasks.items() if ts.status == "failed"]
        return RunResult(ok=rec.status == "success", run_id=rec.run_id, job=rec.job, logs=self.logs,
                         error=f"run {rec.run_id} of job {rec.job} {rec.status}", failures=failures)
