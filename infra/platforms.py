"""Every platform an environment can run on, in one place: `conveyor:platform` value → class.

A platform is an `infra.environment.Environment` subclass in its own package. Entries are
import paths, loaded only when a stack asks for that platform, so one platform's
dependencies (e.g. `pulumi_kubernetes`) are never needed to run another.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infra.config import StackConfig
    from infra.environment import Environment

PLATFORMS: dict[str, str] = {
    "local": "infra.local.environment:LocalEnvironment",
    "kubernetes": "infra.kubernetes.environment:KubernetesEnvironment",
}


def names() -> list[str]:
    """The accepted `conveyor:platform` values, in registration order (the default first)."""
    return list(PLATFORMS)


def platform_class(name: str) -> type[Environment]:
    """The Environment class registered as `name` (KeyError when none is)."""
    module, _, attr = PLATFORMS[name].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if cls.platform != name:
        raise TypeError(f"{PLATFORMS[name]} says platform = {cls.platform!r}, but is registered as {name!r}")
    return cls


def create_environment(cfg: StackConfig) -> Environment:
    """Build the environment of `cfg` on its platform, with freshly generated identities."""
    from infra.components.identities import generate_identities

    cls = platform_class(cfg.platform)
    cls.preflight(cfg)
    return cls(cfg.env, generate_identities(cfg))
