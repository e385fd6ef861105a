"""End to end: the workflows' jobs, run step by step on this machine against real environments.

Each test checks out the working tree as a CI runner would (a fresh one-commit repo,
state in a temp dir), runs one job with tests/ci/local_runner.py — every `run:` step
exactly as written in the YAML — and tears the environment down afterwards.
Only the marketplace actions and `make setup` (already done: this is its venv) are
skipped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_runner import JobRun, project_copy, run_job

from tests.e2e.envs import relax_latency_gates
from tests.ports import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SETUP = "./.github/actions/setup-conveyor"
VENV_BIN = Path(sys.executable).parent

def port_busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def adapt_to_this_machine(ws: Path) -> None:
    """Two edits to the checkout, both about this machine rather than the workflows:

    - staging gets free ports, so the test runs beside any staging a developer already
      has up here;
    - the endpoints' latency gates (the pre-traffic load test and the canary's p95 guard)
      are relaxed: on a 2-core machine shared with the rest of the suite they measure the
      load, not the code.
    Everything else is as committed.
    """
    path = ws / "Pulumi.staging.yaml"
    doc = yaml.safe_load(path.read_text())
    ports = (free_port(), free_port())
    while ports[1] == ports[0]:
        ports = (ports[0], free_port())
    doc["config"]["conveyor:ports"] = {"tracking": ports[0], "serving": ports[1]}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))

    relax_latency_gates(ws)


def ci_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PULUMI_", "CONVEYOR_", "RUNNER_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
    env.update(HOME=str(home), CI="true", GITHUB_ACTIONS="true", GITHUB_REPOSITORY="acme/fraud-model", **extra)
    return env


def outcomes(job: JobRun) -> dict[str, str]:
    return {s.name: s.outcome for s in job.steps}


def tear_down(workspace: Path, env: dict[str, str], tmp_path: Path) -> None:
    """`conveyor env down staging`, then stop any supervisor this test's env left behind."""
    subprocess.run([str(VENV_BIN / "conveyor"), "env", "down", "staging"], cwd=workspace, env=env,
                   capture_output=True, timeout=600)
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "supervisord" in cmdline and str(tmp_path) in cmdline:
            os.kill(int(proc.name), signal.SIGTERM)


def git(ws: Path, env: dict[str, str], *args: str) -> None:
    ident = {"GIT_AUTHOR_NAME": "ci", "GIT_AUTHOR_EMAIL": "ci@example.invalid",
             "GIT_COMMITTER_NAME": "ci", "GIT_COMMITTER_EMAIL": "ci@example.invalid"}
    subprocess.run(["git", *args], cwd=ws, check=True, capture_output=True, env={**env, **ident})


def test_staging_through_ci_merge_deploys_then_a_pull_request_integration_run(tmp_path: Path) -> None:
    """One staging environment, three CI jobs (provisioning once keeps the suite short):

    1. merge to main → deploy-staging: no record of infra yet, so `pulumi up`, then bundle deploy;
    2. a docs-only merge → deploy-staging again: infra unchanged, `pulumi up` skipped, deploy again;
    3. a pull request → pr.yml's integration job from a detached merge commit: `env up` (already
       up), deploy with --force, train on a data subset, and `env down` at the end.
    """
    ws = project_copy(ROOT, tmp_path / "checkout", branch="main", prepare=adapt_to_this_machine)
    ports = yaml.safe_load((ws / "Pulumi.staging.yaml").read_text())["config"]["conveyor:ports"]
    state = tmp_path / "runner-home" / "conveyor-state"
    passphrase = "ci-test-passphrase"
    env = ci_env(tmp_path / "runner-home", GITHUB_REF_NAME="main")
    deploy = dict(github={"ref": "refs/heads/main"}, secrets={"PULUMI_CONFIG_PASSPHRASE": passphrase},
                  vars={"CONVEYOR_HOME": str(state)})
    workflow = ws / ".github" / "workflows" / "deploy-staging.yml"
    deploy_step = "conveyor bundle deploy -t ${{ inputs.target }}"
    try:
        first = run_job(workflow, "deploy", ws, env, skip_actions=(SETUP,), **deploy)
        assert first.ok, first.log()
        steps = outcomes(first)
        assert "no record of infra applied to 'staging'" in first.log()
        assert steps["pulumi up (infra changed)"] == "success"
        assert steps[deploy_step] == "success"
        assert (state / "pulumi").is_dir()  # state outside the checkout, where CONVEYOR_HOME said

        # The next run gets a fresh checkout (actions/checkout drops local changes, such
        # as the encryptionsalt `pulumi stack init` wrote), then a docs-only merge.
        git(ws, env, "checkout", "-q", "--", ".")
        (ws / "README.md").write_text((ws / "README.md").read_text() + "\nmore docs\n")
        git(ws, env, "commit", "-qam", "docs")
        second = run_job(workflow, "deploy", ws, env, skip_actions=(SETUP,), **deploy)
        assert second.ok, second.log()
        steps = outcomes(second)
        assert "infra unchanged for staging" in second.log()
        assert steps["pulumi up (infra changed)"] == "skipped"
        assert steps[deploy_step] == "success"

        git(ws, env, "checkout", "-q", "--", ".")
        git(ws, env, "checkout", "-q", "--detach")
        pr_env = {**env, "GITHUB_REF_NAME": "42/merge", "GITHUB_EVENT_NAME": "pull_request",
                  "CONVEYOR_HOME": str(state), "PULUMI_CONFIG_PASSPHRASE": passphrase}
        pr = run_job(ws / ".github" / "workflows" / "pr.yml", "integration-staging", ws, pr_env,
                     skip_actions=(SETUP,), github={"ref": "refs/pull/42/merge", "event_name": "pull_request"})
        assert pr.ok, pr.log()
        steps = outcomes(pr)
        assert steps["conveyor bundle run model_training_job -t staging (data subset)"] == "success"
        assert steps["Run history (on failure)"] == "skipped"
        assert steps["conveyor env down staging"] == "success"
        assert not any(port_busy(p) for p in ports.values()), "staging still running after the job"
    finally:
        tear_down(ws, {**env, "CONVEYOR_HOME": str(state), "PULUMI_CONFIG_PASSPHRASE": passphrase}, tmp_path)
