"""Executing one run: its task DAG, each task a subprocess per `core.runtime`'s contract.

Tasks run the *deployed* code and nothing of a checkout: the unpacked wheel goes first on
`sys.path` (`LAUNCHER`) and is the task's working directory and project dir
($CONVEYOR_PROJECT_DIR), so the use cases' params, `dvc.yaml` and every relative path a task
opens are the deployment's; resource settings come from the deployed specs
(`bundles.deployed`). References (`{{job.parameters.x}}`,
`{{tasks.<task>.values.<key>}}`) are resolved when a task starts; a task's retries, its
timeout, the job's timeout and a cancel (Ctrl-C, SIGTERM) are handled here.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bundles import warmstart
from bundles.envstore import now_iso, read_json, write_json
from bundles.errors import BundleError
from bundles.models import Job, Task
from bundles.runs import RunRecord
from core import settings
from core.paths import state_dir

if TYPE_CHECKING:
    from bundles.runner import JobRunner

REF_RE = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")
DONE_OK = ("success", "excluded")

# `python -m <module>` semantics, with the deployed code first on sys.path (ahead of an installed copy).
LAUNCHER = (
    "import runpy, sys\n"
    "code, mod = sys.argv[1], sys.argv[2]\n"
    "sys.path.insert(0, code)\n"
    "sys.argv = [mod] + sys.argv[3:]\n"
    "runpy.run_module(mod, run_name='__main__', alter_sys=True)\n"
)


def _truthy(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    return None


def _compare(left: Any, op: str, right: Any) -> bool:
    try:
        lv, rv = float(left), float(right)
    except (TypeError, ValueError):
        lv, rv = str(left), str(right)
        if op not in ("==", "!="):
            raise BundleError(f"cannot compare {left!r} {op} {right!r}: not numbers") from None
    return {"==": lv == rv, "!=": lv != rv, ">": lv > rv, ">=": lv >= rv, "<": lv < rv, "<=": lv <= rv}[op]


def _arg(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


class RunExecution:
    """The state of one run while it executes (kept out of JobRunner so nested runs are independent)."""

    def __init__(self, runner: JobRunner, record: RunRecord, job: Job, run_dir: Path, code_dir: Path, outputs_file: Path):
        self.runner, self.record, self.job = runner, record, job
        self.run_dir, self.code_dir, self.outputs_file = run_dir, code_dir, outputs_file

    def _update(self, name: str, **changes: Any) -> None:
        ts = self.record.tasks[name]
        for k, v in changes.items():
            setattr(ts, k, v)
        self.runner._save(self.record)
        if self.runner.reporter:
            self.runner.reporter.task(name, ts)

    # dynamic references ---------------------------------------------------------------
    def _value(self, ref: str, task: str) -> Any:
        parts = ref.split(".")
        if parts[:2] == ["job", "parameters"] and len(parts) == 3:
            return self.record.parameters[parts[2]]
        if parts[0] == "tasks" and len(parts) == 4 and parts[2] == "values":
            values = read_json(self.run_dir / "values" / f"{parts[1]}.json", {}) or {}
            if parts[3] not in values:
                raise BundleError(f"task value {parts[1]}.{parts[3]} was not set (did task {parts[1]!r} run and call set_task_value?)")
            return values[parts[3]]
        simple = {"job.run_id": self.record.run_id, "job.name": self.record.job_name, "job.trigger": self.record.trigger,
                  "task.name": task, "bundle.target": self.record.target}
        if ref in simple:
            return simple[ref]
        raise BundleError(f"unknown reference {{{{{ref}}}}}")

    def resolve(self, value: Any, task: str) -> Any:
        if isinstance(value, list):
            return [self.resolve(v, task) for v in value]
        if not isinstance(value, str) or "{{" not in value:
            return value
        whole = REF_RE.fullmatch(value.strip())
        if whole:
            return self._value(whole.group(1), task)
        return REF_RE.sub(lambda m: _arg(self._value(m.group(1), task)), value)

    # scheduling -------------------------------------------------------------------------
    def _blocked(self, name: str) -> str | None:
        """Why `name` can never run now (upstream failed / skipped / condition), or None."""
        for dep in self.job.tasks[name].dependencies():
            up = self.record.tasks[dep.task]
            if up.status in ("failed",):
                return f"upstream {dep.task} failed"
            if up.status == "skipped":
                return f"upstream {dep.task} skipped"
            if up.status == "success" and up.outcome is not None:
                wanted = True if dep.outcome is None else dep.outcome
                if up.outcome != wanted:
                    return f"condition {dep.task} was {str(up.outcome).lower()}"
        return None

    def _ready(self, name: str) -> bool:
        return all(self.record.tasks[d.task].status in DONE_OK for d in self.job.tasks[name].dependencies())

    def execute(self) -> None:
        deadline = time.monotonic() + self.job.timeout_seconds if self.job.timeout_seconds else None
        futures: dict[Future, str] = {}
        with ThreadPoolExecutor(max_workers=self.job.max_parallel_tasks) as pool:
            try:
                self._loop(pool, futures, deadline)
            except KeyboardInterrupt:
                # Stop cleanly: running tasks' process groups are killed by their threads.
                self.runner.cancel("interrupted")
                self._skip_pending("interrupted")
                wait(list(futures))
                self.record.status = "interrupted"
                raise
        failed = [n for n, t in self.record.tasks.items() if t.status == "failed"]
        self.record.status = "failed" if failed else "success"

    def _skip_pending(self, reason: str) -> None:
        for name, ts in self.record.tasks.items():
            if ts.status == "pending":
                self._update(name, status="skipped", reason=reason)

    def _loop(self, pool: ThreadPoolExecutor, futures: dict[Future, str], deadline: float | None) -> None:
        while True:
            progressed = True
            while progressed:
                progressed = False
                for name, ts in self.record.tasks.items():
                    if ts.status != "pending":
                        continue
                    why = self._blocked(name)
                    if why:
                        self._update(name, status="skipped", reason=why)
                        progressed = True
                    elif self._ready(name) and len(futures) < self.job.max_parallel_tasks:
                        self._update(name, status="running", started=now_iso())
                        futures[pool.submit(self._run_task, name)] = name
                        progressed = True
            if not futures:
                return
            done, _ = wait(list(futures), timeout=0.25, return_when=FIRST_COMPLETED)
            for fut in done:
                futures.pop(fut)
                fut.result()
            if deadline and time.monotonic() > deadline and not self.runner.cancelled:
                self.runner.cancel(f"job timed out after {self.job.timeout_seconds}s")
                self._skip_pending("job timed out")
            if self.runner.reporter:
                self.runner.reporter.tick()

    # one task ---------------------------------------------------------------------------
    def _run_task(self, name: str) -> None:
        task = self.job.tasks[name]
        log = self.runner.log_path(self.record, name)
        started = time.monotonic()
        ok, reason, exit_code = False, "", None
        for attempt in range(1, task.max_retries + 2):
            if self.runner.cancelled:
                reason = self.runner._cancel_reason
                break
            self._update(name, attempts=attempt, log=str(log))
            with open(log, "a") as fh:
                if attempt > 1:
                    fh.write(f"\n=== attempt {attempt} of {task.max_retries + 1} ===\n")
                try:
                    ok, reason, exit_code = self._attempt(name, task, fh)
                except BundleError as exc:
                    fh.write(f"error: {exc}\n")
                    ok, reason, exit_code = False, str(exc), None
                except Exception as exc:  # a broken task must not take the run down
                    import traceback

                    traceback.print_exc(file=fh)
                    ok, reason, exit_code = False, f"{exc.__class__.__name__}: {exc}", None
            if ok:
                break
            if attempt <= task.max_retries and task.retry_delay_seconds:
                self.runner._cancel.wait(task.retry_delay_seconds)  # a cancel cuts the wait short
        outcome = None
        if ok and task.condition is not None:
            values = read_json(self.run_dir / "values" / f"{name}.json", {}) or {}
            outcome = _truthy(values.get("outcome"))
            if outcome is None:
                ok, reason = False, "condition task did not set task value `outcome` to true/false"
        self._update(
            name, status="success" if ok else "failed", exit_code=exit_code, ended=now_iso(),
            duration_s=round(time.monotonic() - started, 2), reason=reason if not ok else (
                f"outcome {str(outcome).lower()}" if outcome is not None else ""),
            outcome=outcome,
        )

    def _env(self, name: str) -> dict[str, str]:
        persona = self.record.persona
        cred = self.runner.outputs.credentials[persona]
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_TOKEN"}  # only the run's persona
        env.update({
            settings.ENV_OUTPUTS.name: str(self.outputs_file),
            settings.ENV.name: self.runner.outputs.env,
            settings.PERSONA.name: persona,
            settings.BUNDLE_TARGET.name: self.record.target,
            settings.JOB.name: self.record.job,
            settings.RUN_ID.name: self.record.run_id,
            settings.TASK.name: name,
            settings.GIT_SHA.name: self.record.git_sha,
            settings.TASK_VALUES_DIR.name: str(self.run_dir / "values"),
            settings.PROJECT_DIR.name: str(self.code_dir),  # the deployed code is the task's project
            settings.HOME.name: str(state_dir()),  # local state stays where the runner keeps it, not in the code
            settings.DEPLOYMENT.name: self.record.deployment,
            "MLFLOW_TRACKING_URI": self.runner.outputs.tracking_uri,
            "MLFLOW_TRACKING_USERNAME": cred.username,
            "MLFLOW_TRACKING_PASSWORD": cred.password,
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def _attempt(self, name: str, task: Task, fh) -> tuple[bool, str, int | None]:
        if task.run_job is not None:
            return self._run_child_job(name, task, fh)
        if task.condition is not None and task.condition.expression is not None:
            expr = task.condition.expression
            left, right = self.resolve(expr.left, name), self.resolve(expr.right, name)
            outcome = _compare(left, expr.op, right)
            fh.write(f"condition: {left!r} {expr.op} {right!r} -> {outcome}\n")
            write_json(self.run_dir / "values" / f"{name}.json", {"outcome": outcome})
            return True, "", 0
        entry = task.python or task.condition
        argv: list[str] = []
        for key, value in entry.parameters.items():
            argv += [f"--{key}", _arg(self.resolve(value, name))]
        cmd = [sys.executable, "-c", LAUNCHER, str(self.code_dir), entry.module, *argv]
        fh.write(f"$ python -m {entry.module} {' '.join(argv)}\n")
        fh.flush()
        env = self._env(name)
        # A starter costs ~10 s of CPU to load: worth it only when enough tasks of this job can use it.
        boot = sum(1 for t in self.job.tasks.values() if t.python is not None) >= warmstart.MIN_TASKS
        proc = warmstart.start(cmd, self.code_dir, env, fh, umask=0o077, boot=boot)  # None: start it cold
        if proc is None:
            proc = subprocess.Popen(cmd, cwd=self.code_dir, env=env, stdout=fh,
                                    stderr=subprocess.STDOUT, start_new_session=True, umask=0o077)  # owner-only files
        limit = time.monotonic() + task.timeout_seconds if task.timeout_seconds else None
        while True:
            try:
                code = proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                timed_out = limit is not None and time.monotonic() > limit
                if timed_out or self.runner.cancelled:
                    _kill(proc)
                    why = f"timed out after {task.timeout_seconds}s" if timed_out else self.runner._cancel_reason
                    fh.write(f"\n{why}\n")
                    return False, why, None
        if code != 0:
            return False, f"exit code {code}", code
        return True, "", 0

    def _run_child_job(self, name: str, task: Task, fh) -> tuple[bool, str, int | None]:
        params = {k: _arg(self.resolve(v, name)) for k, v in task.run_job.parameters.items()}
        child = self.runner.child(parent_run=self.record.run_id)
        fh.write(f"triggering job {task.run_job.job} with parameters {params}\n")
        fh.flush()
        record = child.run(task.run_job.job, params=params)
        self._update(name, child_run=record.run_id)
        write_json(self.run_dir / "values" / f"{name}.json", {"run_id": record.run_id, "status": record.status})
        for tname, ts in record.tasks.items():
            fh.write(f"  {tname}: {ts.status} {ts.reason}\n")
        fh.write(f"job {task.run_job.job} run {record.run_id}: {record.status}\n")
        if record.status != "success":
            return False, f"triggered job {task.run_job.job} {record.status} (run {record.run_id})", 1
        return True, "", 0


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
