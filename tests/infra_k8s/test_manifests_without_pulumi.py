"""The bundle engine renders and applies cluster jobs without Pulumi in the process.

`bundles.cluster` runs inside job pods and on every `conveyor bundle` call; Pulumi (and its
Kubernetes SDK) belong to `pulumi up` only. Each check runs in a fresh interpreter, since
this test process has Pulumi loaded already.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


@pytest.mark.parametrize("statement", [
    "import bundles.cluster",
    "import infra.kubernetes.manifests",
    "import infra.kubernetes.kubeapi",
    "from infra.kubernetes import ClusterTarget, parse_kubernetes_config, render_task_job",
])
def test_imports_no_pulumi(statement):
    modules = _modules_after(statement)
    assert "pulumi" not in modules
    assert not {m for m in modules if m.startswith(("pulumi.", "pulumi_kubernetes"))}


def test_the_pulumi_side_still_loads_on_demand():
    modules = _modules_after("from infra.kubernetes import deploy_manifest")
    assert "infra.kubernetes.jobs" in modules and "pulumi_kubernetes" in modules
