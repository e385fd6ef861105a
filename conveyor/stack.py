"""Read an environment's stack outputs — the only interface between infra and bundles."""

from __future__ import annotations

import json
import subprocess

from core.contract import EnvironmentOutputs
from core.errors import ConveyorError
from core.paths import project_dir
from conveyor.toolchain import pulumi_env, real_pulumi


class StackError(ConveyorError, RuntimeError):
    """An environment is missing or its outputs cannot be read; the message says which."""


def pulumi_bin() -> str:
    """The real pulumi CLI chosen by `make setup`."""
    try:
        return real_pulumi()
    except SystemExit as exc:
        raise StackError(str(exc.code).removeprefix("error: ")) from None


def read_outputs(env: str) -> EnvironmentOutputs:
    """`pulumi stack output --json --show-secrets -s <env>` as a typed object."""
    proc = subprocess.run(
        [pulumi_bin(), "stack", "output", "--json", "--show-secrets", "--non-interactive", "-s", env],
        cwd=project_dir(),
        env=pulumi_env(),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise StackError(
            f"cannot read outputs of environment {env!r}: {detail[-1] if detail else 'pulumi failed'} "
            f"(provision it with `conveyor env up {env}`)"
        )
    data = json.loads(proc.stdout or "{}")
    if not data:
        raise StackError(f"environment {env!r} has no outputs: provision it with `conveyor env up {env}`")
    return EnvironmentOutputs.model_validate(data)
