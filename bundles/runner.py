"""Run a deployed job: its task DAG, each task a subprocess per `core.runtime`'s contract.

Jobs run the *deployed* code: the unpacked wheel in env storage goes first on
`sys.path`, the working directory is the project dir. Every run keeps its record,
per-task logs and task values in the env's storage, so `runs` and a scheduler on
another terminal see the same history.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock

from bundles.envstore import DeploymentStore, now_iso, pid_alive, read_json, write_json
from bundles.errors import BundleError, did_you_mean
from bundles.models import Job, Task
from core.contract import EnvironmentOutputs

REF_RE = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")
DONE_OK = ("success", "excluded")
TERMINAL = ("success", "failed", "skipped", "excluded")

# `python -m <module>` semantics, but with the deployed code ahead of the checkout on sys.path.
LAUNCHER = (
    "import runpy, sys\n"
    "code, mod = sys.argv[1], sys.argv[2]\n"
    "sys.path.insert(0, code)\n"
    "sys.argv = [mod] + sys.argv[3:]\n"
    "runpy.run_module(mod, run_name='__main__', alter_sys=True)\n"
)


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


@dataclass
class TaskState:
    status: str = "pending"  # pending | running | success | failed | skipped | excluded
    attempts: int = 0
    exit_code: int | None = None
    started: str | None = None
    ended: str | None = None
    duration_s: float | None = None
    reason: str = ""
    outcome: bool | None = None
    log: str = ""
    child_run: str | None = None


@dataclass
class RunRecord:
    run_id: str
    job: str
    job_name: str
    deployment: str
    env: str
    target: str
    trigger: str
    persona: str
    git_sha: str
    artifact: str | None
    parameters: dict[str, Any]
    parent_run: str | None = None
    status: str = "running"  # running | success | failed | interrupted
    started: str = field(default_factory=now_iso)
    ended: str | None = None
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    tasks: dict[str, TaskState] = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "tasks"}
        out["tasks"] = {k: v.__dict__ for k, v in self.tasks.items()}
        return out


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
            raise BundleError(f"cannot compare {left!r} {op} {right!r}: not numbers")
    return {"==": lv == rv, "!=": lv != rv, ">": lv > rv, ">=": lv >= rv, "<": lv < rv, "<=": lv <= rv}[op]


def _arg(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


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
                      f"deploy first with `conveyor bundle deploy`")


def check_params(job_key: str, declared: dict, params: dict) -> None:
    """`--params` may only override parameters the job declares."""
    unknown = [p for p in params if p not in declared]
    if unknown:
        raise BundleError(
            f"job {job_key!r} has no parameter {unknown[0]!r}{did_you_mean(unknown[0], declared)}"
            + (f" (parameters: {', '.join(declared)})" if declared else " (it declares no parameters)")
        )


class Reporter:
    """Progress per task: a live table on a terminal, one line per change otherwise."""

    def __init__(self, console=None, title: str = ""):
        from rich.console import Console

        self.console = console or Console()
        self.title = title
        self.live = None
        self.record: RunRecord | None = None
        self._shown: dict[str, str] = {}

    def _table(self):
        from rich.table import Table

        table = Table(title=self.title, expand=False)
        for col in ("task", "status", "attempt", "time", "note"):
            table.add_column(col)
        colors = {"success": "green", "failed": "red", "running": "yellow", "skipped": "dim", "excluded": "dim"}
        for name, ts in (self.record.tasks.items() if self.record else []):
            secs = f"{ts.duration_s:.1f}s" if ts.duration_s is not None else ""
            if ts.status == "running" and ts.started:
                secs = f"{(datetime.now(timezone.utc) - datetime.fromisoformat(ts.started)).total_seconds():.0f}s"
            table.add_row(name, f"[{colors.get(ts.status, '')}]{ts.status}[/]", str(ts.attempts or ""), secs, ts.reason)
        return table

    def start(self, record: RunRecord) -> None:
        self.record = record
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False)
            self.live.start()
        else:
            self.console.print(f"run {record.run_id} of job {record.job} in env {record.env} ({len(record.tasks)} tasks)")

    def task(self, name: str, ts: TaskState) -> None:
        if self.live:
            self.live.update(self._table())
        elif ts.status != "pending" and self._shown.get(name) != ts.status:
            self._shown[name] = ts.status
            note = f" ({ts.reason})" if ts.reason else ""
            took = f" in {ts.duration_s:.1f}s" if ts.duration_s is not None and ts.status != "running" else ""
            self.console.print(f"  {name}: {ts.status}{took}{note}", highlight=False)

    def tick(self) -> None:
        if self.live:
            self.live.update(self._table())

    def stop(self) -> None:
        if self.live:
            self.live.update(self._table())
            self.live.stop()


class JobRunner:
    def __init__(self, outputs: EnvironmentOutputs, store: DeploymentStore, project_dir: Path,
                 reporter: Reporter | None = None, trigger: str = "manual", parent_run: str | None = None,
                 cancel: threading.Event | None = None):
        self.outputs = outputs
        self.store = store
        self.project_dir = Path(project_dir)
        self.reporter = reporter
        self.trigger = trigger
        self.parent_run = parent_run
        self._lock = threading.Lock()
        self._cancel = cancel or threading.Event()
        self._cancel_reason = "cancelled"

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
        doc, job = self._job(job_key)
        job_key = doc["key"]
        run_as = doc["spec"].get("run_as", "ci")
        if run_as not in self.outputs.credentials:
            raise BundleError(f"job {job_key!r} runs as {run_as!r}, which has no credentials in env {self.outputs.env!r}")
        state = self.store.raw_state()
        artifact = state.get("artifact")
        code_dir = self.store.ensure_code(artifact) if artifact else None
        if code_dir is None:
            raise BundleError(f"the code of {self.store.deployment_id} is not deployed; run `conveyor bundle deploy` first")
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
            _sweep_credentials(self.store)
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
        ctx = _RunContext(self, record, job, run_dir, code_dir, outputs_file)
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


class _RunContext:
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
                except Exception as exc:  # noqa: BLE001 - a broken task must not take the run down
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
            "CONVEYOR_ENV_OUTPUTS": str(self.outputs_file),
            "CONVEYOR_ENV": self.runner.outputs.env,
            "CONVEYOR_PERSONA": persona,
            "CONVEYOR_BUNDLE_TARGET": self.record.target,
            "CONVEYOR_JOB": self.record.job,
            "CONVEYOR_RUN_ID": self.record.run_id,
            "CONVEYOR_TASK": name,
            "CONVEYOR_GIT_SHA": self.record.git_sha,
            "CONVEYOR_TASK_VALUES_DIR": str(self.run_dir / "values"),
            "CONVEYOR_PROJECT_DIR": str(self.runner.project_dir),
            "CONVEYOR_DEPLOYMENT": self.record.deployment,
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
        proc = subprocess.Popen(cmd, cwd=self.runner.project_dir, env=self._env(name), stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
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
        child = JobRunner(self.runner.outputs, self.runner.store, self.runner.project_dir,
                          reporter=None, trigger="run_job", parent_run=self.record.run_id,
                          cancel=self.runner._cancel)
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


def _sweep_credentials(store: DeploymentStore) -> None:
    """Delete the credentials file of runs whose runner died without cleaning up (SIGKILL)."""
    for path in store.runs_dir.glob("*/env-outputs.json") if store.runs_dir.is_dir() else []:
        rec = read_json(path.with_name("run.json")) or {}
        mine = rec.get("host") == socket.gethostname()
        if rec.get("status") != "running" or (mine and not pid_alive(rec.get("pid", 0))):
            path.unlink(missing_ok=True)


def list_runs(store: DeploymentStore, job: str | None = None, limit: int = 20) -> list[dict]:
    """Newest first; a 'running' record whose runner died on this host shows as interrupted."""
    runs = []
    base = store.runs_dir
    for path in sorted(base.glob("*/run.json"), reverse=True) if base.is_dir() else []:
        rec = read_json(path)
        if not rec or (job and rec["job"] != job):
            continue
        if rec["status"] == "running" and rec.get("host") == socket.gethostname() and not pid_alive(rec.get("pid", 0)):
            rec["status"] = "interrupted"
        runs.append(rec)
        if len(runs) >= limit:
            break
    return runs


def log_tail(path: str | Path, lines: int = 20) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip().splitlines()[-lines:])


RunFn = Callable[..., RunRecord]
