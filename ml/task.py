"""Shared plumbing of ML job tasks: arguments, runtime context, MLflow run, errors.

Each job task (`python -m ml.<step>`) is one function of (context, params, args);
this module turns user errors into one line on stderr and exit code 1 instead of a
traceback, and keeps all tasks of one job run in one MLflow run so a reader finds
data version, data docs, model, validation and deployment decision in one place.
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

from core import runtime  # noqa: E402
from core.paths import project_dir  # noqa: E402
from ml.config import ConfigError, Params, load_params

DEFAULT_EXPERIMENT = "fraud-detection"


class TaskError(RuntimeError):
    """A task cannot go on; the message is what the user needs to know."""


class CheckFailed(RuntimeError):
    """A quality gate said no (data or model validation); the task exits non-zero."""


def parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=f"python -m {prog}", description=(doc or "").strip().splitlines()[0] if doc else None)
    ap.add_argument("--params", default=None, help="params file (default: params.yaml in the project)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a param, e.g. train.max_iter=50")
    ap.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment name")
    ap.add_argument("--model-name", default=None, help="registered model name (default fraud-detector-<env>)")
    return ap


def params_from(args: argparse.Namespace) -> Params:
    path = Path(args.params) if args.params else project_dir() / "params.yaml"
    return load_params(path, args.set)


def model_name(args: argparse.Namespace, ctx: runtime.TaskContext) -> str:
    return args.model_name or f"fraud-detector-{ctx.env}"


def upstream(task: str, key: str, given: Any = None) -> Any:
    """An explicit argument wins; else the value an upstream task of this run published."""
    if given not in (None, ""):
        return given
    if not os.environ.get("CONVEYOR_TASK_VALUES_DIR"):
        return None
    return runtime.get_task_value(task, key)


def publish(key: str, value: Any) -> None:
    """Set a task value when running under the bundle runner (no-op otherwise)."""
    if os.environ.get("CONVEYOR_TASK_VALUES_DIR"):
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
    """Run a task body; user-facing failures become one clear line and exit 1."""
    try:
        return body() or 0
    except CheckFailed as exc:
        print(f"{name}: FAILED: {exc}", file=sys.stderr)
        _fail_active_run()
        return 1
    except Exception as exc:  # noqa: BLE001
        if not _user_facing(exc):
            _fail_active_run()
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"{name}: error: {msg}", file=sys.stderr)
        _fail_active_run()
        return 1


def _user_facing(exc: Exception) -> bool:
    """Errors a user can act on (bad input, missing upstream, MLflow said no) vs bugs (traceback)."""
    try:
        from mlflow.exceptions import MlflowException
    except ImportError:  # pragma: no cover
        MlflowException = ()  # noqa: N806
    return isinstance(exc, (TaskError, ConfigError, RuntimeError, KeyError, FileNotFoundError, ValueError, MlflowException))


def _fail_active_run() -> None:
    try:
        import mlflow

        if mlflow.active_run():
            mlflow.end_run(status="FAILED")
    except Exception:  # noqa: BLE001 - reporting the original error matters more
        pass
