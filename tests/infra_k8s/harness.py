"""Run the real Pulumi program (`infra/__main__.py`) under Pulumi mocks, in a fresh process.

Pulumi's mock runtime is process-global, so every program run gets its own interpreter:
`python tests/infra_k8s/harness.py '<json request>'` prints one JSON document with every
registered resource (inputs, with secrets unwrapped and their paths listed) and the stack
outputs. `render(...)` is the in-test helper that does this and parses the result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SECRET_SIG = "4dabf18193072939515e22adb298388d"
MOCK_SECRET_PREFIX = "mock-secret-"


def _unwrap(value: Any, path: str, secrets: list[str]) -> Any:
    """Strip Pulumi's secret envelopes (remember where they were); floats that are ints → int."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270":
            secrets.append(path or "/")
            return _unwrap(value.get("value"), path, secrets)
        return {k: _unwrap(v, f"{path}/{k}", secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v, f"{path}/{i}", secrets) for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _child(request: dict) -> None:
    import pulumi

    registered: list[dict] = []

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs):
            state = dict(args.inputs)
            if args.typ.startswith("pulumi-python:dynamic"):
                # RandomSecret and friends: the engine would run the provider; give a stable fake.
                state["value"] = f"{MOCK_SECRET_PREFIX}{args.name}"
            secrets: list[str] = []
            inputs = _unwrap({k: v for k, v in args.inputs.items() if k != "__provider"}, "", secrets)
            registered.append({"type": args.typ, "name": args.name, "inputs": inputs, "secret_paths": secrets})
            name = (inputs.get("metadata") or {}).get("name") if isinstance(inputs.get("metadata"), dict) else None
            return f"{name or args.name}-id", state

        def call(self, args: pulumi.runtime.MockCallArgs):
            return {}

    pulumi.runtime.set_mocks(Mocks(), project="conveyor", stack=request["env"], preview=False)

    import runpy

    from pulumi.runtime.settings import get_root_resource

    outputs: dict = {}

    @pulumi.runtime.test
    def program():
        runpy.run_path(str(ROOT / "infra" / "__main__.py"), run_name="__main__")
        stack_outputs = get_root_resource().outputs

        async def collect():
            for key, out in stack_outputs.items():
                out = pulumi.Output.from_input(out)
                outputs[key] = {"value": await out.future(), "secret": await out.is_secret()}

        return pulumi.Output.from_input(collect())

    program()
    print(json.dumps({"resources": registered, "outputs": outputs}, default=str))


def render(env: str, config: dict[str, Any], tmp_home: Path, timeout: int = 180) -> dict:
    """Run the program for `env` with `config` (`conveyor:*` keys → values); raises with stderr on failure."""
    proc = run(env, config, tmp_home, timeout)
    if proc.returncode != 0:
        raise AssertionError(f"program failed for {env}:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(env: str, config: dict[str, Any], tmp_home: Path, timeout: int = 180) -> subprocess.CompletedProcess:
    environ = {
        **os.environ,
        "PULUMI_CONFIG": json.dumps({k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}),
        "CONVEYOR_HOME": str(tmp_home),
        "CONVEYOR_PROJECT_DIR": str(ROOT),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), json.dumps({"env": env})],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=timeout,
    )


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))
