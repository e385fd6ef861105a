"""The rollout strategies, registered in one place.

A strategy is one module of this package (see `base.RolloutStrategy` for the interface);
the list below is the only place that names them. Everything else — validating a name,
routing rows, going live — asks this registry, so adding a strategy is one module plus one
line here (checklist: `ml/serving/README.md`).
"""

from __future__ import annotations

import difflib
from typing import Any

from ml.serving.endpoint_config import Rollout
from ml.serving.errors import UnknownRolloutStrategy
from ml.serving.rollouts import ab, canary, direct, shadow
from ml.serving.rollouts.base import RolloutStrategy

# Registration order matters only to `implied_by`: the first strategy a resource's shape
# matches wins, so a named shadow model outranks a traffic split.
REGISTRY: dict[str, RolloutStrategy] = {s.name: s for s in (
    direct.Direct(),
    shadow.Shadow(),
    ab.AB(),
    canary.Canary(),
)}

# The strategy of a config with no rollout (`Rollout`'s default); an endpoint's first model goes
# live with it too, as there is no champion to share traffic with.
DEFAULT: str = Rollout.model_fields["strategy"].default

__all__ = ["DEFAULT", "REGISTRY", "RolloutStrategy", "UnknownRolloutStrategy", "check", "default", "get", "implied_by",
           "names"]


def names() -> list[str]:
    return sorted(REGISTRY)


def get(name: str) -> RolloutStrategy:
    """The registered strategy called `name`; raises `UnknownRolloutStrategy` with the nearest names."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownRolloutStrategy(
            f"unknown rollout strategy {name!r}{hint}; known: {', '.join(names())}") from None


def check(name: str) -> str:
    """`name` if a strategy is registered under it (for validators and argparse `type=`)."""
    return get(name).name


def default() -> RolloutStrategy:
    return REGISTRY[DEFAULT]


def implied_by(resource: dict[str, Any]) -> dict[str, Any]:
    """The rollout settings a `serving_endpoints` resource implies when it names no strategy ({} if none)."""
    for strategy in REGISTRY.values():
        implied = strategy.implied_by(resource)
        if implied is not None:
            return implied
    return {}
