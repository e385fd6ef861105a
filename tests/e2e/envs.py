"""Helpers for tests that provision real environments in a throw-away project."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


_NOT_SHARED = {".conveyor", ".venv", ".pytest_cache", "Pulumi.yaml"}


def make_project(root: Path, envs: dict[str, dict]) -> Path:
    """A project dir sharing the repo's code (symlinks), with its own stacks and state dir."""
    proj = root / "project"
    proj.mkdir()
    shutil.copy(REPO / "Pulumi.yaml", proj / "Pulumi.yaml")
    for entry in REPO.iterdir():
        if entry.name in _NOT_SHARED or entry.name.startswith("Pulumi."):
            continue
        (proj / entry.name).symlink_to(entry)
    for env, spec in envs.items():
        personas = {
            "data_scientist": {"role": spec["data_scientist"]},
            "ml_engineer": {"role": "write"},
            "ci": {"role": "write"},
        }
        config = {
            "conveyor:platform": "local",
            "conveyor:ports": {"tracking": spec["ports"][0], "serving": spec["ports"][1]},
            "conveyor:access": {"default_permission": spec["default_permission"], "personas": personas},
        }
        (proj / f"Pulumi.{env}.yaml").write_text(yaml.safe_dump({"config": config}))
    return proj


def not_owner_only(root: Path) -> list[str]:
    """Everything under `root` (itself included) that is not owner-only: each directory must be
    0700 and each regular file 0600 (sockets and symlinks are not checked)."""
    loose = []
    for entry in [root, *root.rglob("*")]:
        info = entry.lstat()
        want = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600 if stat.S_ISREG(info.st_mode) else None
        if want is not None and stat.S_IMODE(info.st_mode) != want:
            loose.append(f"{entry.relative_to(root)} {oct(stat.S_IMODE(info.st_mode))}")
    return loose


def project_env(proj: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(CONVEYOR_PROJECT_DIR=str(proj), CONVEYOR_HOME=str(proj / ".state"))
    for key in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_HOME"):
        env.pop(key, None)
    return env


def pulumi_cmd(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("pulumi")), *args]


def run(proj: Path, cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=proj, env=project_env(proj), capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def relax_latency_gates(project: Path) -> None:
    """Loosen the endpoints' latency gates (the pre-traffic load test and the canary's p95
    guard) in a project copy: on a 2-core machine shared with the rest of the suite they
    measure the load, not the code."""
    for resource_file in (project / "resources").glob("*.yml"):
        doc = yaml.safe_load(resource_file.read_text()) or {}
        endpoints = (doc.get("resources") or {}).get("serving_endpoints") or {}
        changed = False
        for endpoint in endpoints.values():
            rollout = endpoint.get("rollout") or {}
            for gate, relaxed in (("sla", {"p95_ms": 5000, "min_qps": 1}), ("guard", {"max_p95_ms": 5000})):
                if isinstance(rollout.get(gate), dict):
                    rollout[gate].update({k: v for k, v in relaxed.items() if k in rollout[gate]})
                    changed = True
        if changed:
            resource_file.write_text(yaml.safe_dump(doc, sort_keys=False))


def pause_schedules(project: Path) -> None:
    """Pause every scheduled job of a project copy: the env's scheduler must not start a run of
    its own in the middle of a test (staging and prod are production targets)."""
    for path in (project / "resources").glob("*.yml"):
        doc = yaml.safe_load(path.read_text()) or {}
        for job in ((doc.get("resources") or {}).get("jobs") or {}).values():
            if "schedule" in job:
                job["schedule"]["pause_status"] = "PAUSED"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))


CONVEYOR = Path(sys.executable).with_name("conveyor")


def bundle_cli_env(project: Path, outputs_dir: Path, user: str = "e2e") -> dict[str, str]:
    """The environment of `conveyor bundle ...` run in a project copy against a real env's outputs
    (none of the suite's own CONVEYOR_/PULUMI_/MLFLOW_ settings leak in: the env's outputs say
    where MLflow is; `mlflow.set_tracking_uri` in an earlier test sets MLFLOW_TRACKING_URI)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "PULUMI_", "MLFLOW_"))}
    env.update(CONVEYOR_PROJECT_DIR=str(project), CONVEYOR_OUTPUTS_DIR=str(outputs_dir), CONVEYOR_USER=user)
    return env


def bundle_cli(project: Path, outputs_dir: Path, *args: str, user: str = "e2e", timeout: float = 900,
               explain=None) -> subprocess.CompletedProcess:
    """`conveyor bundle <args>` in a project copy, pointed at a real env's outputs; fails the test
    with the output tails (plus `explain(env)`, e.g. failed task logs) unless it exits 0."""
    env = bundle_cli_env(project, outputs_dir, user)
    proc = subprocess.run([str(CONVEYOR), "bundle", *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, (f"conveyor bundle {' '.join(args)}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
                                  + (explain(env) if explain else ""))
    return proc
