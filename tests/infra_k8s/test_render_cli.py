"""`python -m infra.kubernetes.render <env>`: an env's manifests as YAML, no cluster or plugin needed."""

from __future__ import annotations

import subprocess
import sys

import yaml

from tests.infra_k8s.harness import ROOT

STACK = """\
config:
  conveyor:platform: kubernetes
  conveyor:ports:
    tracking: 5201
    serving: 3201
  conveyor:access:
    default_permission: READ
    personas:
      data_scientist: {role: read}
      ml_engineer: {role: write}
      ci: {role: write}
  conveyor:kubernetes:
    context: kind-conveyor
    storage:
      kind: s3
      bucket: acme-ml
      access_key_id:
        secure: v1:AAAAencrypted
      secret_access_key:
        secure: v1:BBBBencrypted
"""


def _render(tmp_path, env):
    return subprocess.run([sys.executable, "-m", "infra.kubernetes.render", env], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={"CONVEYOR_PROJECT_DIR": str(tmp_path), "PATH": "/usr/bin:/bin",
                                                       "PYTHONPATH": str(ROOT), "CONVEYOR_HOME": str(tmp_path / ".c")})


def test_renders_the_stack_files_env_as_yaml(tmp_path):
    (tmp_path / "Pulumi.staging.yaml").write_text(STACK)
    (tmp_path / "infra").symlink_to(ROOT / "infra")
    proc = _render(tmp_path, "staging")
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Namespace", "conveyor-staging") in kinds and ("Deployment", "serving") in kinds
    assert ("Deployment", "minio") not in kinds  # external S3 from the stack file
    creds = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "s3-credentials")
    assert creds["stringData"]["AWS_SECRET_ACCESS_KEY"] == "placeholder-secret"  # never the encrypted blob


def test_unknown_env_is_one_clear_line(tmp_path):
    proc = _render(tmp_path, "qa")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: no stack file Pulumi.qa.yaml: unknown environment 'qa'"
