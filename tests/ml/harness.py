"""A real MLflow server and a fake-but-real environment for ML task tests and benchmarks.

`EnvironmentOutputs` point at tmp dirs and a loopback `mlflow server` (sqlite), so tasks
run exactly as under `conveyor bundle run`: subprocesses with the runtime env vars.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from core.contract import Credential, EnvironmentOutputs, storage_layout
from tests.ports import free_port

PROJECT = Path(__file__).resolve().parents[2]


@dataclass
class MlflowServer:
    uri: str
    proc: subprocess.Popen
    log: Path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_mlflow(root: Path) -> MlflowServer:
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = root / "mlflow.log"
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen(
        [str(mlflow_bin), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", (root / "artifacts").as_uri(), "--serve-artifacts",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{uri}/health", timeout=1).status_code == 200:
                return MlflowServer(uri, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"mlflow server did not come up: {log.read_text()[-2000:]}")


@dataclass
class MlEnv:
    """One environment: outputs file + storage under `root`, tracking on `tracking_uri`."""

    name: str
    root: Path
    tracking_uri: str
    storage_uri: str | None = None  # default: a directory under root (the local platform's shape)
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. AWS_* for s3:// storage
    project: Path = PROJECT  # where tasks run (a copy of the project runs its own code and use cases)
    outputs_file: Path = field(init=False)
    values_root: Path = field(init=False)

    def __post_init__(self) -> None:
        uri = self.storage_uri or (self.root / "storage").as_uri()
        outputs = EnvironmentOutputs(
            env=self.name, platform="local" if uri.startswith("file:") else "kubernetes",
            tracking_uri=self.tracking_uri, serving_url="http://127.0.0.1:1",
            storage_uri=uri, storage=storage_layout(uri),
            credentials={p: Credential(username=p, password="x", token="t") for p in ("data_scientist", "ml_engineer", "ci")},
        )
        self.root.mkdir(parents=True, exist_ok=True)
        self.outputs_file = self.root / "outputs.json"
        self.outputs_file.write_text(outputs.model_dump_json(indent=2))
        self.values_root = self.root / "task-values"
        self.outputs = outputs

    def task_env(self, run_id: str, task: str, job: str = "model_training_job") -> dict[str, str]:
        values = self.values_root / run_id
        values.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CONVEYOR_"))}
        env.update({
            "CONVEYOR_ENV_OUTPUTS": str(self.outputs_file), "CONVEYOR_ENV": self.name, "CONVEYOR_PERSONA": "ci",
            "CONVEYOR_BUNDLE_TARGET": self.name, "CONVEYOR_JOB": job, "CONVEYOR_RUN_ID": run_id,
            "CONVEYOR_TASK": task, "CONVEYOR_GIT_SHA": "0123456789abcdef0123456789abcdef01234567",
            "CONVEYOR_TASK_VALUES_DIR": str(values), "CONVEYOR_PROJECT_DIR": str(PROJECT),
            "MLFLOW_TRACKING_URI": self.tracking_uri, "PYTHONPATH": str(PROJECT),
            "BENTOML_DO_NOT_TRACK": "True",
            **self.extra_env,
        })
        return env

    def run_task(self, run_id: str, task: str, module: str, *args: str, job: str = "model_training_job",
                 timeout: int = 600) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", module, *args], cwd=self.project, env=self.task_env(run_id, task, job),
                              capture_output=True, text=True, timeout=timeout)

    def task_values(self, run_id: str, task: str) -> dict:
        import json

        path = self.values_root / run_id / f"{task}.json"
        return json.loads(path.read_text()) if path.exists() else {}


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]
