"""Where a Conveyor project keeps its local state (all of it under `.conveyor/`, gitignored)."""

from __future__ import annotations

from pathlib import Path

from core import settings


def project_dir() -> Path:
    """The project root: $CONVEYOR_PROJECT_DIR, else the nearest parent holding Pulumi.yaml."""
    given = settings.PROJECT_DIR.get()
    if given is not None:
        return given.resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "Pulumi.yaml").is_file():
            return candidate
    # Installed package used outside a checkout: fall back to the source tree it came from.
    return Path(__file__).resolve().parent.parent


def state_dir() -> Path:
    """$CONVEYOR_HOME, else `<project>/.conveyor`: Pulumi state, env storage, process state."""
    given = settings.HOME.get()
    return given.resolve() if given is not None else project_dir() / ".conveyor"


def cache_dir(setting: settings.Setting, name: str) -> Path:
    """`setting`'s path if set, else ~/.cache/conveyor/<name>: state shared by every checkout of this machine."""
    given = setting.get()
    return given.resolve() if given is not None else Path.home() / ".cache" / "conveyor" / name


def tools_dir() -> Path:
    """The cached toolchain build (pulumi CLI)."""
    return cache_dir(settings.TOOLS_DIR, "tools")


def templates_dir() -> Path:
    """The `conveyor init` templates' git repositories, which `copier update` reads."""
    return cache_dir(settings.TEMPLATES_DIR, "templates")
