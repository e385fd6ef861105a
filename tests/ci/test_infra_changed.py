"""scripts/infra_changed.py: the deploy workflows' "run `pulumi up` only when infra changed".

Real git repositories and, for the record/read round trip, the real pulumi CLI with a
file backend in a temp dir.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "infra_changed.py"
VENV_BIN = Path(sys.executable).parent

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


def commit(repo: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "change")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "project"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, repo / "scripts" / "infra_changed.py")
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {"infra/local/tracking.py": "v1", "ml/train.py": "v1", "Pulumi.yaml": "name: t\nruntime: python\n"})
    return repo


def run(repo: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], str]:
    out = repo.parent / "github_output"
    out.write_text("")
    proc = subprocess.run(
        [sys.executable, "scripts/infra_changed.py", *args],
        cwd=repo, capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {}), "GITHUB_OUTPUT": str(out)},
    )
    return proc, out.read_text()


def test_only_infra_and_the_stacks_own_config_count(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    commit(repo, {"ml/train.py": "v2", "Pulumi.dev.yaml": "config: {}\n", "docs/x.md": "x"})
    proc, out = run(repo, "staging", "--base", base)
    assert proc.returncode == 0, proc.stderr
    assert out == "changed=false\n"
    assert "infra unchanged for staging" in proc.stdout

    proc, out = run(repo, "dev", "--base", base)  # dev's own config did change
    assert out == "changed=true\n" and "Pulumi.dev.yaml" in proc.stdout

    commit(repo, {"infra/local/tracking.py": "v2"})
    proc, out = run(repo, "staging", "--base", base)
    assert out == "changed=true\n"
    assert "infra/local/tracking.py" in proc.stdout


def test_uncertainty_and_force_mean_changed(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    proc, out = run(repo, "prod", "--base", "0" * 40)
    assert out == "changed=true\n" and "not in this clone's history" in proc.stdout
    proc, out = run(repo, "prod", "--base", head, "--force", "true")
    assert out == "changed=true\n" and "forced" in proc.stdout
    proc, out = run(repo, "prod", "--base", head, "--force", "false")
    assert out == "changed=false\n"


def test_record_then_read_back_through_pulumi_stack_tags(repo: Path, tmp_path: Path) -> None:
    if not (VENV_BIN / "pulumi").exists():
        pytest.skip("no pulumi in the venv: run `make setup`")
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "CONVEYOR_HOME": str(tmp_path / "home"),
        "CONVEYOR_PROJECT_DIR": str(repo),
    }
    subprocess.run(
        [str(VENV_BIN / "pulumi"), "stack", "init", "staging", "--non-interactive"],
        cwd=repo, env={**os.environ, **env}, check=True, capture_output=True,
    )

    proc, out = run(repo, "staging", env=env)
    assert out == "changed=true\n", proc.stdout + proc.stderr
    assert "no record of infra applied" in proc.stdout

    proc, _ = run(repo, "staging", "--record", env=env)
    assert proc.returncode == 0, proc.stderr
    proc, out = run(repo, "staging", env=env)
    assert out == "changed=false\n", proc.stdout + proc.stderr

    commit(repo, {"Pulumi.staging.yaml": "config:\n  conveyor:platform: local\n"})
    proc, out = run(repo, "staging", env=env)
    assert out == "changed=true\n" and "Pulumi.staging.yaml" in proc.stdout

    # Another stack's record is its own: prod has none yet.
    proc, _ = run(repo, "prod", "--record", env=env)
    assert proc.returncode == 1 and "could not record" in proc.stderr
