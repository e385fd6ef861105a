"""Rollout and SLA settings of the endpoint, read from the bundle's `serving_endpoints` resource.

The bundle engine validates the resource's shape; its `rollout` mapping is ours:
`strategy`, `challenger_percent`, `sticky_key`, `stages`, `guard`, `sla`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ml.serving.endpoint_config import SLA, Rollout


class EndpointSettings(BaseModel):
    key: str = "fraud_endpoint"
    model: str | None = None
    rollout: Rollout = Rollout()
    sla: SLA = SLA()


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def settings_from_resource(key: str, resource: dict[str, Any]) -> EndpointSettings:
    rollout = dict(resource.get("rollout") or {})
    sla = rollout.pop("sla", {}) or {}
    served = {s.get("alias"): s.get("traffic_percentage", 0) for s in resource.get("served") or []}
    if "strategy" not in rollout:
        if resource.get("shadow"):
            rollout["strategy"] = "shadow"
        elif served.get("challenger"):
            rollout["strategy"] = "ab"
            rollout.setdefault("challenger_percent", served["challenger"])
    try:
        return EndpointSettings(key=key, model=resource.get("model"), rollout=Rollout.model_validate(rollout),
                                sla=SLA.model_validate(sla))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"serving endpoint {key!r}: rollout.{where}: {err['msg']}") from None


def load_endpoint_settings(path: Path, target: str | None = None, bundle_file: Path = Path("bundle.yml")) -> EndpointSettings:
    """The first serving endpoint in `path`, with `targets.<target>.resources` overrides from bundle.yml."""
    if not Path(path).is_file():
        raise ValueError(f"endpoint settings file not found: {path}")
    doc = yaml.safe_load(Path(path).read_text()) or {}
    endpoints = (doc.get("resources") or {}).get("serving_endpoints") or {}
    if not endpoints:
        return EndpointSettings()
    key, resource = next(iter(endpoints.items()))
    if target and Path(bundle_file).is_file():
        bundle = yaml.safe_load(Path(bundle_file).read_text()) or {}
        over = ((((bundle.get("targets") or {}).get(target) or {}).get("resources") or {})
                .get("serving_endpoints") or {}).get(key)
        if isinstance(over, dict):
            resource = _deep_merge(resource, over)
    return settings_from_resource(key, resource)
