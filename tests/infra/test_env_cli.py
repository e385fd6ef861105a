"""`conveyor env …`: a user error is one `error:` line and an exit code, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.env_cli import EnvCommandError
from core.errors import ConveyorError
from infra.config import ConfigError
from infra.kubernetes.kubeapi import KubeError


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: cli-probe\nruntime: python\n")
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  conveyor:platform: local\n")
    return tmp_path


@pytest.mark.parametrize("command", [["up", "qa"], ["outputs", "qa"], ["down", "qa"], ["refresh", "qa"]])
def test_an_unknown_env_is_one_line_and_exit_2(project, command):
    env = {"PATH": "/usr/bin:/bin", "CONVEYOR_PROJECT_DIR": str(project), "CONVEYOR_HOME": str(project / ".conveyor")}
    # the `conveyor env` group alone (`conveyor.cli` mounts it as is)
    entry = "from conveyor.env_cli import app; app(prog_name='conveyor env')"
    proc = subprocess.run([sys.executable, "-c", entry, *command], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == "error: unknown environment 'qa': no Pulumi.qa.yaml (known: dev)\n"


def test_infra_errors_share_the_one_root():
    for cls in (ConfigError, KubeError, EnvCommandError):
        assert issubclass(cls, ConveyorError)
    assert issubclass(ConfigError, ValueError), "callers catching ValueError keep working"
