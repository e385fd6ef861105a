"""Rollout and SLA settings of an endpoint, read from the bundle's `serving_endpoints` resource.

A file may declare several endpoints (one per use case); `default: true` marks the one served
at `/predict` (else the first). `use_case` says whose request schema it serves.
The bundle engine validates the resource's shape; its `rollout` mapping is ours:
`strategy`, `challenger_percent`, `sticky_key`, `stages`, `guard`, `sla`. A resource that
names no strategy gets the one its `served`/`shadow` shape implies (`rollouts.implied_by`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ml.serving import rollouts
from ml.serving.endpoint_config import SLA, Rollout
from ml.serving.errors import EndpointSettingsError


class EndpointSettings(BaseModel):
    key: str = "fraud_endpoint"
    model: str | None = None
    use_case: str | None = None
    default: bool = True
    rollout: Rollout = Rollout()
    sla: SLA = SLA()


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _problem(err: dict) -> str:
    """pydantic's message, without its "Value error, " prefix for errors our validators raise."""
    if err.get("type") == "value_error" and "error" in (err.get("ctx") or {}):
        return str(err["ctx"]["error"])
    return err["msg"]


def settings_from_resource(key: str, resource: dict[str, Any]) -> EndpointSettings:
    rollout = dict(resource.get("rollout") or {})
    sla = rollout.pop("sla", {}) or {}
    if "strategy" not in rollout:
        for k, v in rollouts.implied_by(resource).items():
            rollout.setdefault(k, v)
    try:
        return EndpointSettings(key=key, model=resource.get("model"), use_case=resource.get("use_case"),
                                default=bool(resource.get("default", False)), rollout=Rollout.model_validate(rollout),
                                sla=SLA.model_validate(sla))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise EndpointSettingsError(f"serving endpoint {key!r}: rollout.{where}: {_problem(err)}") from None


def _pick(endpoints: dict, key: str | None) -> str:
    if key is not None:
        if key not in endpoints:
            from core.errors import did_you_mean

            raise EndpointSettingsError(f"no serving endpoint {key!r} declared{did_you_mean(key, endpoints)} "
                                        f"(declared: {', '.join(endpoints)})")
        return key
    return next((k for k, r in endpoints.items() if isinstance(r, dict) and r.get("default")), next(iter(endpoints)))


def load_endpoint_settings(path: Path, target: str | None = None, bundle_file: Path = Path("bundle.yml"),
                           key: str | None = None) -> EndpointSettings:
    """Serving endpoint `key` of `path` (default: the one marked `default: true`, else the first),
    with `targets.<target>.resources` overrides from bundle.yml."""
    if not Path(path).is_file():
        raise EndpointSettingsError(f"endpoint settings file not found: {path}")
    doc = yaml.safe_load(Path(path).read_text()) or {}
    endpoints = (doc.get("resources") or {}).get("serving_endpoints") or {}
    if not endpoints:
        if key is not None:
            raise EndpointSettingsError(f"no serving endpoint {key!r}: {path} declares none")
        return EndpointSettings()
    named = key is not None
    key = _pick(endpoints, key)
    resource = endpoints[key]
    if target and Path(bundle_file).is_file():
        bundle = yaml.safe_load(Path(bundle_file).read_text()) or {}
        over = ((((bundle.get("targets") or {}).get(target) or {}).get("resources") or {})
                .get("serving_endpoints") or {}).get(key)
        if isinstance(over, dict):
            resource = _deep_merge(resource, over)
    found = settings_from_resource(key, resource)
    # An endpoint asked for by key is the default one only if it says so (`default: true`, as bundle
    # deploy binds it): a use case's own file declaring just its endpoint must not take over /predict.
    # Without a key the file's default (else only, else first) endpoint is meant.
    if not named:
        found.default = True
    return found
