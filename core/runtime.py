"""What a job task sees at run time: its environment, identity and task values.

The bundle runner starts every task as a subprocess with these variables set, so
ML code never reads Pulumi or bundle config itself:

- CONVEYOR_ENV_OUTPUTS   path to a JSON file of `EnvironmentOutputs` (credentials
                         limited to the principal running the job)
- CONVEYOR_ENV, CONVEYOR_PERSONA, CONVEYOR_BUNDLE_TARGET, CONVEYOR_JOB,
  CONVEYOR_RUN_ID, CONVEYOR_TASK, CONVEYOR_GIT_SHA
- CONVEYOR_TASK_VALUES_DIR  one `<task>.json` per task of this run
- MLFLOW_TRACKING_URI / _USERNAME / _PASSWORD for the env's tracking server
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.storage import is_local
from core.contract import EnvironmentOutputs, local_path


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
    mount = os.environ.get("CONVEYOR_STATE_DIR")
    if not mount:
        raise RuntimeError(f"env {outputs.env!r} runs on {outputs.platform}: storage.{name} is {uri} (object "
                           f"storage), reached through the env's state volume in its job pods "
                           f"(CONVEYOR_STATE_DIR is not set here)")
    relative = uri.removeprefix(outputs.storage.root).strip("/")
    return Path(mount) / relative if relative else Path(mount)


def context() -> TaskContext:
    """The current task's context; raises a clear error outside a bundle run."""
    path = os.environ.get("CONVEYOR_ENV_OUTPUTS")
    if not path:
        raise RuntimeError("not inside a Conveyor task: CONVEYOR_ENV_OUTPUTS is not set (use `conveyor bundle run`)")
    outputs = EnvironmentOutputs.model_validate_json(Path(path).read_text())
    return TaskContext(
        env=outputs.env,
        outputs=outputs,
        persona=os.environ.get("CONVEYOR_PERSONA", "ci"),
        target=os.environ.get("CONVEYOR_BUNDLE_TARGET", outputs.env),
        job=os.environ.get("CONVEYOR_JOB", ""),
        run_id=os.environ.get("CONVEYOR_RUN_ID", ""),
        task=os.environ.get("CONVEYOR_TASK", ""),
        git_sha=os.environ.get("CONVEYOR_GIT_SHA", "unknown"),
    )


def _values_dir() -> Path:
    path = os.environ.get("CONVEYOR_TASK_VALUES_DIR")
    if not path:
        raise RuntimeError("task values need CONVEYOR_TASK_VALUES_DIR (set by `conveyor bundle run`)")
    return Path(path)


def set_task_value(key: str, value: Any) -> None:
    """Publish a JSON value for downstream tasks of the same run."""
    task = os.environ.get("CONVEYOR_TASK") or "task"
    path = _values_dir() / f"{task}.json"
    values = json.loads(path.read_text()) if path.exists() else {}
    values[key] = value
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(values, indent=2, default=str))
    tmp.replace(path)


def get_task_value(task: str, key: str, default: Any = None) -> Any:
    """A value published by an upstream task of the same run, or `default`."""
    path = _values_dir() / f"{task}.json"
    if not path.exists():
        return default
    return json.loads(path.read_text()).get(key, default)
