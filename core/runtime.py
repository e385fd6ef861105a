"""What a job task sees at run time: its environment, identity and task values.

The bundle runner starts every task as a subprocess with these variables set, so
ML code never reads Pulumi or bundle config itself:

- CONVEYOR_ENV_OUTPUTS   path to a JSON file of `EnvironmentOutputs` (credentials
                         limited to the principal running the job)
- CONVEYOR_ENV, CONVEYOR_PERSONA, CONVEYOR_BUNDLE_TARGET, CONVEYOR_JOB,
  CONVEYOR_RUN_ID, CONVEYOR_TASK, CONVEYOR_GIT_SHA
- CONVEYOR_TASK_VALUES_DIR  one `<task>.json` per task of this run
- MLFLOW_TRACKING_URI / _USERNAME / _PASSWORD for the env's tracking server

(each `CONVEYOR_*` is declared in `core.settings`). Missing pieces raise
`RuntimeContextError`, a user error: one line, not a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core import settings
from core.contract import EnvironmentOutputs, local_path
from core.errors import ConveyorError
from core.files import atomic_write
from core.storage import is_local


class RuntimeContextError(ConveyorError, RuntimeError):
    """The process is not (fully) inside a Conveyor task; the message says what is missing."""


@dataclass(frozen=True)
class TaskContext:
    env: str
    outputs: EnvironmentOutputs
    persona: str
    target: str
    job: str
    run_id: str
    task: str
    git_sha: str

    def storage_path(self, name: str) -> Path:
        """A named storage location (see `StoragePaths`) as a local path."""
        return local_storage_path(self.outputs, name)


def local_storage_path(outputs: EnvironmentOutputs, name: str) -> Path:
    """A named storage location of an env as a local path.

    On object storage (s3://, the kubernetes platform) the env's shared files (endpoint
    config, tables, model report) live on its state volume, mounted at $CONVEYOR_STATE_DIR
    in every job pod, with the same layout under it; elsewhere that is a RuntimeError."""
    uri = getattr(outputs.storage, name)
    if is_local(uri):
        return local_path(uri)
    mount = settings.STATE_DIR.get()
    if mount is None:
        raise RuntimeContextError(f"env {outputs.env!r} runs on {outputs.platform}: storage.{name} is {uri} (object "
                           f"storage), reached through the env's state volume in its job pods "
                           f"(CONVEYOR_STATE_DIR is not set here)")
    relative = uri.removeprefix(outputs.storage.root).strip("/")
    return Path(mount) / relative if relative else Path(mount)


def context() -> TaskContext:
    """The current task's context; RuntimeContextError outside a bundle run."""
    path = settings.ENV_OUTPUTS.get()
    if path is None:
        raise RuntimeContextError(f"not inside a Conveyor task: {settings.ENV_OUTPUTS.name} is not set "
                                  "(use `conveyor bundle run`)")
    try:
        outputs = EnvironmentOutputs.model_validate_json(path.read_text())
    except (OSError, ValidationError) as exc:
        raise RuntimeContextError(f"{settings.ENV_OUTPUTS.name}={path}: cannot read environment outputs: {exc}") from exc
    return TaskContext(
        env=outputs.env,
        outputs=outputs,
        persona=settings.PERSONA.get(),
        target=settings.BUNDLE_TARGET.get() or outputs.env,
        job=settings.JOB.get(),
        run_id=settings.RUN_ID.get(),
        task=settings.TASK.get(),
        git_sha=settings.GIT_SHA.get(),
    )


def _values_dir() -> Path:
    path = settings.TASK_VALUES_DIR.get()
    if path is None:
        raise RuntimeContextError(f"task values need {settings.TASK_VALUES_DIR.name} (set by `conveyor bundle run`)")
    return path


def set_task_value(key: str, value: Any) -> None:
    """Publish a JSON value for downstream tasks of the same run."""
    task = settings.TASK.get() or "task"
    path = _values_dir() / f"{task}.json"
    values = json.loads(path.read_text()) if path.exists() else {}
    values[key] = value
    atomic_write(path, json.dumps(values, indent=2, default=str))


def get_task_value(task: str, key: str, default: Any = None) -> Any:
    """A value published by an upstream task of the same run, or `default`."""
    path = _values_dir() / f"{task}.json"
    if not path.exists():
        return default
    return json.loads(path.read_text()).get(key, default)
