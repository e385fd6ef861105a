"""Run the real Pulumi program (`infra/__main__.py`) under Pulumi mocks, in a fresh process.

Pulumi's mock runtime is process-global, so every program run gets its own interpreter
(`infra.kubernetes.render.run_program`, also behind `python -m infra.kubernetes.render`).
The result lists every registered resource (inputs with secrets unwrapped, plus the paths
that were secret) and the stack outputs (value + whether it is secret).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from infra.kubernetes.render import PLACEHOLDER_PREFIX, run_program

ROOT = Path(__file__).resolve().parents[2]
MOCK_SECRET_PREFIX = PLACEHOLDER_PREFIX


def run(env: str, config: dict[str, Any], tmp_home: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return run_program(env, config, tmp_home, ROOT, timeout)


def render(env: str, config: dict[str, Any], tmp_home: Path, timeout: int = 300) -> dict:
    """Run the program for `env` with `config` (`conveyor:*` keys → values); raises with stderr on failure."""
    proc = run(env, config, tmp_home, timeout)
    if proc.returncode != 0:
        raise AssertionError(f"program failed for {env}:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- reading a render -----------------------------------------------------------------------

def objects(render: dict) -> list[dict]:
    return [r["inputs"] for r in render["resources"]
            if r["type"].startswith("kubernetes:") and r["type"] != "pulumi:providers:kubernetes"]


def find(render: dict, kind: str, name: str) -> dict:
    hits = [o for o in objects(render) if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(hits) == 1, f"expected one {kind}/{name}, found {len(hits)}"
    return hits[0]


def pod_specs(render: dict) -> list[tuple[str, dict]]:
    specs = []
    for obj in objects(render):
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            specs.append((f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]))
    return specs


def outputs(render: dict) -> dict:
    return {k: v["value"] for k, v in render["outputs"].items()}
