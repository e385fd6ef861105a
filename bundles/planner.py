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

# Apply order: code first, then MLflow objects, then what refers to them; deletes reverse it.
KIND_ORDER = ("artifact", "experiments", "registered_models", "jobs", "serving_endpoints", "monitors")
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
    """key -> (kind, name, spec) for everything this target should have deployed."""
    out: dict[str, tuple[str, str | None, dict]] = {
        "artifact": ("artifact", None, {"hash": artifact_hash}),
    }
    res = bundle.resources
    for kind in KIND_ORDER[1:]:
        for key, model in getattr(res, kind).items():
            spec = model.model_dump(mode="json")
            if kind == "jobs":
                spec["run_as"] = bundle.run_as
            out[f"{kind}.{key}"] = (kind, spec.get("name"), spec)
    return out


def _changed_fields(old: dict | None, new: dict) -> list[str]:
    if not old:
        return []
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def order_key(action: Action) -> tuple:
    rank = KIND_ORDER.index(action.kind) if action.kind in KIND_ORDER else len(KIND_ORDER)
    if action.action == "delete":
        rank = -rank  # delete dependants first
    return (action.action == "delete", rank, action.key)
