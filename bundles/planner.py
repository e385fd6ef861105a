"""What a deploy would do: desired resources (from the bundle) against deployed state.

A resource's *spec* is everything deploy writes for it; its fingerprint decides
create / update / unchanged, and keys only in the state are deletes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from bundles.loader import ResolvedBundle
from bundles.resources import KINDS

ACTIONS = ("create", "update", "delete", "unchanged")


@dataclass
class Action:
    action: str  # create | update | delete | unchanged
    key: str  # "<kind>.<resource key>", or "artifact"
    kind: str
    name: str | None
    reason: str = ""
    changed: list[str] = field(default_factory=list)
    spec: dict[str, Any] | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        out = asdict(self)
        out.pop("spec")
        return out


@dataclass
class Plan:
    target: str
    env: str
    deployment_id: str
    actions: list[Action]

    def counts(self) -> dict[str, int]:
        return {a: sum(1 for x in self.actions if x.action == a) for a in ACTIONS}

    @property
    def has_changes(self) -> bool:
        return any(a.action != "unchanged" for a in self.actions)

    def to_json(self) -> dict:
        return {
            "target": self.target,
            "env": self.env,
            "deployment": self.deployment_id,
            "summary": self.counts(),
            "actions": [a.to_json() for a in self.actions],
        }


def fingerprint(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def desired_specs(bundle: ResolvedBundle, artifact_hash: str) -> dict[str, tuple[str, str | None, dict]]:
    """key -> (kind, name, spec) for everything this target should have deployed, in apply order."""
    out: dict[str, tuple[str, str | None, dict]] = {}
    for kind in KINDS:
        for key, (name, spec) in kind.desired(bundle, artifact_hash).items():
            out[key] = (kind.name, name, spec)
    return out


def changed_fields(old: dict | None, new: dict) -> list[str]:
    if not old:
        return []
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def order_key(action: Action) -> tuple:
    """Registry order (code first, then MLflow objects, then what refers to them); deletes reverse it."""
    rank = KINDS.rank(action.kind)
    if action.action == "delete":
        rank = -rank  # delete dependants first
    return (action.action == "delete", rank, action.key)
