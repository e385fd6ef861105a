"""Shared fixtures. `real_env`: one real environment (`pulumi up` of the local platform)
in a throw-away project, provisioned once per test session and destroyed after it."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.contract import EnvironmentOutputs


@dataclass
class RealEnv:
    name: str
    project: Path          # project dir: repo code symlinked, own Pulumi.<name>.yaml and state
    outputs: EnvironmentOutputs

    def env_vars(self) -> dict[str, str]:
        """Variables that point `conveyor` commands at this project and its state."""
        from tests.e2e.envs import project_env

        return project_env(self.project)


@pytest.fixture(scope="session")
def real_env(tmp_path_factory) -> RealEnv:
    from tests.e2e.envs import make_project, pulumi_cmd, run
    from tests.ports import free_port

    root = tmp_path_factory.mktemp("real-env")
    name = "itest"
    proj = make_project(root, {name: {"ports": (free_port(), free_port()), "data_scientist": "write",
                                      "default_permission": "EDIT"}})
    run(proj, [sys.executable, "-m", "conveyor.cli", "env", "up", name])
    out = run(proj, pulumi_cmd("stack", "output", "--json", "--show-secrets", "-s", name))
    yield RealEnv(name=name, project=proj, outputs=EnvironmentOutputs.model_validate(json.loads(out.stdout)))
    run(proj, [sys.executable, "-m", "conveyor.cli", "env", "down", name], check=False)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """One real MLflow server (tests/ml/harness.py) for every module that needs one: envs on it
    keep apart by env name (models are registered as <name>-<env>), so give yours its own."""
    from tests.ml.harness import start_mlflow

    server = start_mlflow(tmp_path_factory.mktemp("mlflow"))
    yield server
    server.stop()
