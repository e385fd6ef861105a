"""Where a Conveyor project keeps its local state (all of it under `.conveyor/`, gitignored)."""

from __future__ import annotations

import os
from pathlib import Path


def project_dir() -> Path:
    """The project root: $CONVEYOR_PROJECT_DIR, else the nearest parent holding Pulumi.yaml."""
    env = os.environ.get("CONVEYOR_PROJECT_DIR")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "Pulumi.yaml").is_file():
            return candidate
    # Installed package used outside a checkout: fall back to the source tree it came from.
    return Path(__file__).resolve().parent.parent


def state_dir() -> Path:
    """$CONVEYOR_HOME, else `<project>/.conveyor`: Pulumi state, env storage, process state."""
    env = os.environ.get("CONVEYOR_HOME")
    return Path(env).resolve() if env else project_dir() / ".conveyor"


def tools_dir() -> Path:
    """The cached toolchain build (pulumi CLI); shared by every checkout of this machine."""
    env = os.environ.get("CONVEYOR_TOOLS_DIR")
    return Path(env).resolve() if env else Path.home() / ".cache" / "conveyor" / "tools"
