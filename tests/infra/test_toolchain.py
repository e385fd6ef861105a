"""Stack bootstrap with the real pulumi CLI: local state can be deleted and recreated."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor import toolchain

CONFIG = "config:\n  conveyor:platform: local\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "Pulumi.yaml").write_text("name: toolchain-probe\nruntime: python\n")
    (root / "Pulumi.dev.yaml").write_text(CONFIG)
    monkeypatch.setenv("CONVEYOR_PROJECT_DIR", str(root))
    monkeypatch.setenv("CONVEYOR_HOME", str(root / ".conveyor"))
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    monkeypatch.delenv("PULUMI_HOME", raising=False)
    return root


def _salt(root: Path) -> str | None:
    lines = [x for x in (root / "Pulumi.dev.yaml").read_text().splitlines() if x.startswith("encryptionsalt:")]
    return lines[0] if lines else None


def test_stack_comes_back_after_local_state_is_deleted(project: Path) -> None:
    toolchain.ensure_stack("dev")
    first = _salt(project)
    assert first, "stack init writes the passphrase salt into the stack's config"
    shutil.rmtree(project / ".conveyor")  # what `make demo-clean` does: state and passphrase are gone

    toolchain.ensure_stack("dev")

    assert _salt(project) not in (None, first), "a new passphrase gets a new salt"
    assert "conveyor:platform: local" in (project / "Pulumi.dev.yaml").read_text(), "config is kept"


def test_encrypted_config_is_never_dropped(project: Path) -> None:
    text = CONFIG + "  conveyor:token:\n    secure: v1:AAAA\nencryptionsalt: v1:c2FsdA==:v1:AAAA:BBBB\n"
    (project / "Pulumi.dev.yaml").write_text(text)

    with pytest.raises(toolchain.ToolchainError) as exc:
        toolchain.ensure_stack("dev")

    assert "another passphrase" in str(exc.value) and "PULUMI_CONFIG_PASSPHRASE" in str(exc.value)
    assert (project / "Pulumi.dev.yaml").read_text() == text, "secrets and their salt are left alone"


def test_down_of_a_never_provisioned_env_is_a_clean_no_op(project: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "conveyor.cli", "env", "down", "dev"], cwd=project,
                          capture_output=True, text=True, timeout=120)

    assert proc.returncode == 0, proc.stderr
    assert "dev is down (it was never provisioned here" in proc.stdout
    assert toolchain.stack_exists("dev") is False, "down does not create the stack it was asked to remove"
