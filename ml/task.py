"""Shared plumbing of ML job tasks: arguments, runtime context, MLflow run, errors.

Each job task (`python -m ml.<step>`) is one function of (context, params, args) run by
`run_task`, which applies the one CLI contract (`core.cli.guarded`): a user error is one
line on stderr and exit code 1, a bug keeps its traceback. All tasks of one job run log
into one MLflow run, so a reader finds data version, data docs, model, validation and
deployment decision in one place.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# OpenMP (HistGradientBoosting) spin-waits when cores are oversubscribed, which on a
# shared machine (tracking + serving + jobs) made a 1 s fit take minutes. Leave a core
# free unless the operator says otherwise.
os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 2) // 2)))
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep task logs readable

from core import runtime, settings
from core.cli import guarded
from core.errors import ConveyorError
from ml.config import Params
from ml.errors import CheckFailed, TaskError, tracking_refusal
from ml.usecase import UseCase, load_use_case

__all__ = ["CheckFailed", "Params", "TaskError", "experiment", "parser", "publish", "run_task",
           "start_job_run", "upstream", "use_case_from"]


def parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=f"python -m {prog}", description=(doc or "").strip().splitlines()[0] if doc else None)
    ap.add_argument("--use-case", default=None,
                    help=f"the use case under usecases/ (default: ${settings.USE_CASE.name}, else the project's only one)")
    ap.add_argument("--params", default=None,
                    help="params file (default: the use case's params.yaml in the code that runs: in a job run, the deployed one)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a param, e.g. train.max_iter=50")
    ap.add_argument("--experiment", default=None, help="MLflow experiment name (default: the use case's)")
    ap.add_argument("--model-name", default=None, help="registered model name (default <use case's registered name>-<env>)")
    return ap


def use_case_from(args: argparse.Namespace) -> UseCase:
    """The use case a task works on (`--use-case`), loaded once per run of the task."""
    if getattr(args, "_use_case", None) is None:
        args._use_case = load_use_case(args.use_case or None)
    return args._use_case


def params_from(args: argparse.Namespace) -> Params:
    """The use case's params (`--params` instead of its params.yaml) with the `--set` overrides.

    The use case is found in the `usecases` package this task imports (`ml.usecase.load.folder`):
    in a job run, the deployed code, so its params.yaml is the deployed one, never a checkout's."""
    return use_case_from(args).load_params(args.set, Path(args.params) if args.params else None)


def experiment(args: argparse.Namespace) -> str:
    return args.experiment or use_case_from(args).experiment


def model_name(args: argparse.Namespace, ctx: runtime.TaskContext) -> str:
    return args.model_name or f"{use_case_from(args).registered_name}-{ctx.env}"


def upstream(task: str, key: str, given: Any = None) -> Any:
    """An explicit argument wins; else the value an upstream task of this run published."""
    if given not in (None, ""):
        return given
    if not settings.TASK_VALUES_DIR.is_set():
        return None
    return runtime.get_task_value(task, key)


def publish(key: str, value: Any) -> None:
    """Set a task value when running under the bundle runner (no-op otherwise)."""
    if settings.TASK_VALUES_DIR.is_set():
        runtime.set_task_value(key, value)


def run_tags(ctx: runtime.TaskContext) -> dict[str, str]:
    return {
        "git_sha": ctx.git_sha,
        "bundle_target": ctx.target,
        "job_run_id": ctx.run_id or "manual",
        "job": ctx.job or "manual",
        "env": ctx.env,
        "persona": ctx.persona,
    }


def start_job_run(ctx: runtime.TaskContext, experiment: str, run_id: str | None):
    """Resume this job run's MLflow run, or open one (first task, or a task run alone)."""
    import mlflow

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        raise TaskError("MLFLOW_TRACKING_URI is not set (tasks get it from `conveyor bundle run`)")
    if run_id:
        return mlflow.start_run(run_id=run_id)
    mlflow.set_experiment(experiment)
    name = f"{ctx.job or 'manual'}-{ctx.run_id or 'run'}"
    run = mlflow.start_run(run_name=name, tags=run_tags(ctx))
    publish("mlflow_run_id", run.info.run_id)
    return run


def run_task(name: str, body: Callable[[], int | None]) -> int:
    """Run a task body; return its exit code.

    - `CheckFailed` (a quality gate said no): `<task>: FAILED: <message>`, exit 1;
    - any other `ConveyorError`, and an MLflow error from the tracking server (permission
      denied, not found, unreachable; see `ml.errors.tracking_refusal`):
      `<task>: error: <message>`, exit 1;
    - Ctrl-C: `<task>: error: interrupted`, exit 130;
    - anything else is a bug and propagates with its traceback.

    On every failure the job run's MLflow run is marked FAILED first, so the tracking UI
    never shows a dead task as still running.
    """

    @guarded(prefix=f"{name}: ", on_error=_fail_active_run)
    def checked() -> int:
        try:
            return body() or 0
        except CheckFailed as exc:  # a verdict, not a malfunction: worded as one
            _fail_active_run()
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
            return 1
        except ConveyorError:
            raise
        except (Exception, KeyboardInterrupt) as exc:
            refused = tracking_refusal(exc)
            if refused is not None:
                raise refused from exc
            _fail_active_run()
            raise

    try:
        return checked()
    except SystemExit as exc:  # how `guarded` hands back a user error's exit code
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        raise


def _fail_active_run() -> None:
    try:
        import mlflow

        if mlflow.active_run():
            mlflow.end_run(status="FAILED")
    except Exception:
        pass
