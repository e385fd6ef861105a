"""The manifests an env would get, without a cluster or the Kubernetes plugin.

    python -m infra.kubernetes.render dev > dev.yaml
    kubectl apply --dry-run=server -f dev.yaml     # the real API server's admission, PSA included

Runs the real Pulumi program (`infra/__main__.py`) under Pulumi's mock runtime in a child
process (that runtime is process-global state) with the env's stack config and
`conveyor:platform` forced to kubernetes. Generated passwords/tokens and `secure:` config
values are placeholders, so the output is for review and dry runs, never for `apply`.
The tests use the same machinery (`run_program`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from core import settings

SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's wire marker of special values
SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270"  # ... of which: a secret
PLACEHOLDER_PREFIX = "mock-secret-"


def _unwrap(value: Any, path: str, secrets: list[str]) -> Any:
    """Strip Pulumi's secret envelopes (recording where they were); integral floats → int."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE:
            secrets.append(path or "/")
            return _unwrap(value.get("value"), path, secrets)
        return {k: _unwrap(v, f"{path}/{k}", secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v, f"{path}/{i}", secrets) for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _child(env: str) -> None:
    """Inside the child process: run the program under mocks, print resources and outputs as JSON."""
    import runpy

    import pulumi
    from pulumi.runtime.settings import get_root_resource

    registered: list[dict] = []

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs):
            state = dict(args.inputs)
            if args.typ.startswith("pulumi-python:dynamic"):
                # RandomSecret & co: the engine would run the provider; a stable placeholder instead
                state["value"] = f"{PLACEHOLDER_PREFIX}{args.name}"
            secrets: list[str] = []
            inputs = _unwrap({k: v for k, v in args.inputs.items() if k != "__provider"}, "", secrets)
            registered.append({"type": args.typ, "name": args.name, "inputs": inputs, "secret_paths": secrets})
            meta = inputs.get("metadata")
            name = meta.get("name") if isinstance(meta, dict) else None
            return f"{name or args.name}-id", state

        def call(self, args: pulumi.runtime.MockCallArgs):
            return {}

    pulumi.runtime.set_mocks(Mocks(), project="conveyor", stack=env, preview=False)
    outputs: dict = {}
    root = settings.PROJECT_DIR.get() or Path(__file__).resolve().parents[2]

    @pulumi.runtime.test
    def program():
        runpy.run_path(str(root / "infra" / "__main__.py"), run_name="__main__")
        stack_outputs = get_root_resource().outputs

        async def collect():
            for key, out in stack_outputs.items():
                out = pulumi.Output.from_input(out)
                outputs[key] = {"value": await out.future(), "secret": await out.is_secret()}

        return pulumi.Output.from_input(collect())

    program()
    print(json.dumps({"resources": registered, "outputs": outputs}, default=str))


def run_program(env: str, config: dict[str, Any], home: Path, project: Path | None = None,
                timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the program for `env` with `config` (`conveyor:*` key → value) in a child process."""
    project = project or Path(__file__).resolve().parents[2]
    environ = {
        **os.environ,
        "PULUMI_CONFIG": json.dumps({k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}),
        settings.HOME.name: str(home),
        settings.PROJECT_DIR.name: str(project),
        settings.RENDER_ONLY.name: "1",  # no cluster is contacted, so its connection is not checked
        "PYTHONPATH": os.pathsep.join([str(project), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    return subprocess.run([sys.executable, "-m", "infra.kubernetes.render", "--child", env], cwd=project,
                          env=environ, capture_output=True, text=True, timeout=timeout)


def manifests(result: dict) -> list[dict]:
    """The Kubernetes objects among the registered resources."""
    return [r["inputs"] for r in result["resources"]
            if r["type"].startswith("kubernetes:") and r["type"] != "pulumi:providers:kubernetes"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "--child":
        _child(args[1])
        return 0
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m infra.kubernetes.render <env>   (YAML of the env's manifests on stdout)",
              file=sys.stderr)
        return 2
    import tempfile

    import yaml

    from core.paths import project_dir
    from infra.config import read_stack_file, secure_as_placeholders

    env = args[0]
    stack_file = project_dir() / f"Pulumi.{env}.yaml"
    if not stack_file.exists():
        print(f"error: no stack file {stack_file.name}: unknown environment {env!r}", file=sys.stderr)
        return 2
    raw = secure_as_placeholders(read_stack_file(stack_file))
    if raw.get("platform", "local") != "kubernetes":
        print(f"note: {stack_file.name} has conveyor:platform {raw.get('platform', 'local')}; rendering as kubernetes",
              file=sys.stderr)
    config = {f"conveyor:{k}": v for k, v in raw.items()}
    config["conveyor:platform"] = "kubernetes"
    with tempfile.TemporaryDirectory() as home:
        proc = run_program(env, config, Path(home), project_dir())
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        print(f"error: {lines[-1] if lines else 'the program failed'}", file=sys.stderr)
        return 1
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"# {env}: manifests of the kubernetes platform; secrets are placeholders (review / dry-run only)")
    print(yaml.safe_dump_all(manifests(result), sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
