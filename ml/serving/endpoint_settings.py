"""Rollout and SLA settings of an endpoint: the bundle's `serving_endpoints` resource.

In a job run they are the run's deployment's (`deployed_endpoint_settings`): the spec as
`bundle deploy` resolved it (variables, `${...}` references and `targets.<t>.resources`
overrides applied, checked against the kind's model) and stored in the env, so editing a
checkout changes nothing until it is deployed. Resolving is the bundle loader's alone; this
module only reads a resolved resource. `load_endpoint_settings(file)` reads one resource file
as written, for a task started by hand outside any deployment (and tests).

A deployment may declare several endpoints (one per use case); `default: true` marks the one
served at `/predict`. `use_case` says whose request schema it serves. The bundle engine
validates the resource's shape; its `rollout` mapping is ours: `strategy`,
`challenger_percent`, `sticky_key`, `stages`, `guard`, `sla`. A resource that names no
strategy gets the one its `served`/`shadow` shape implies (`rollouts.implied_by`).
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


def _problem(err: dict) -> str:
    """pydantic's message, without its "Value error, " prefix for errors our validators raise."""
    if err.get("type") == "value_error" and "error" in (err.get("ctx") or {}):
        return str(err["ctx"]["error"])
    return err["msg"]


def _split(resource: dict[str, Any]) -> tuple[dict, Any]:
    """The resource's `rollout` mapping (with the strategy its shape implies) and its `sla`."""
    rollout = dict(resource.get("rollout") or {})
    sla = rollout.pop("sla", {}) or {}
    if "strategy" not in rollout:
        for k, v in rollouts.implied_by(resource).items():
            rollout.setdefault(k, v)
    return rollout, sla


def rollout_problems(resource: dict[str, Any]) -> list[tuple[tuple, str]]:
    """Every problem of a resource's `rollout` mapping as (path in the resource, message), e.g.
    `(("rollout", "sla", "max_rows_per_request"), "Input should be greater than or equal to 1")`:
    what `conveyor bundle validate` reports at the value's file:line. An unknown `sla` key is one
    (a typo would otherwise leave the default limit in force without a word)."""
    from core.errors import did_you_mean

    rollout, sla = _split(resource)
    out: list[tuple[tuple, str]] = []
    if isinstance(sla, dict):
        for k in sla:
            if k not in SLA.model_fields:
                out.append((("rollout", "sla", k), f"unknown key {k!r} in sla{did_you_mean(str(k), SLA.model_fields)}"))
    for prefix, model, value in ((("rollout",), Rollout, rollout), (("rollout", "sla"), SLA, sla)):
        try:
            model.model_validate(value)
        except ValidationError as exc:
            out.extend(((*prefix, *err["loc"]), _problem(err)) for err in exc.errors(include_url=False)
                       if err["type"] != "extra_forbidden")
    return out


def settings_from_resource(key: str, resource: dict[str, Any]) -> EndpointSettings:
    rollout, sla = _split(resource)
    where = "rollout"
    try:
        parsed = Rollout.model_validate(rollout)
        where = "rollout.sla"
        limits = SLA.model_validate(sla)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise EndpointSettingsError(f"serving endpoint {key!r}: {where}{'.' + field if field else ''}: "
                                    f"{_problem(err)}") from None
    return EndpointSettings(key=key, model=resource.get("model"), use_case=resource.get("use_case"),
                            default=bool(resource.get("default", False)), rollout=parsed, sla=limits)


def _pick(endpoints: dict, key: str | None, where: str) -> str:
    if key is not None:
        if key not in endpoints:
            from core.errors import did_you_mean

            raise EndpointSettingsError(f"no serving endpoint {key!r} in {where}{did_you_mean(key, endpoints)} "
                                        f"(declared: {', '.join(endpoints)})")
        return key
    return next((k for k, r in endpoints.items() if isinstance(r, dict) and r.get("default")), next(iter(endpoints)))


def _settings(endpoints: dict, key: str | None, where: str) -> EndpointSettings:
    """Endpoint `key` of `endpoints`, or (no key) the one marked `default: true`, else the first.

    An endpoint asked for by key is the default one only if it says so (`default: true`, as bundle
    deploy binds it): a use case's own endpoint must not take over /predict. Without a key the
    default (else only, else first) endpoint is meant."""
    named = key is not None
    key = _pick(endpoints, key, where)
    found = settings_from_resource(key, endpoints[key])
    if not named:
        found.default = True
    return found


def deployed_endpoint_settings(key: str | None = None) -> EndpointSettings:
    """Inside a job run: endpoint `key` (default: the deployment's default one) as deployed with
    the run's deployment. A ConveyorError saying what to do outside a bundle run, or when the
    deployment declares no such endpoint."""
    from bundles.deployed import task_specs
    from core import settings

    deployment = settings.DEPLOYMENT.get()
    endpoints = task_specs("serving_endpoints")
    where = f"deployment {deployment}"
    if not endpoints:
        raise EndpointSettingsError(f"{where} has no serving endpoint{f' {key!r}' if key else ''}: declare it under "
                                    f"resources.serving_endpoints and redeploy with `conveyor bundle deploy`")
    if key is None and not any(r.get("default") for r in endpoints.values()) and len(endpoints) > 1:
        raise EndpointSettingsError(f"{where} has serving endpoints {', '.join(endpoints)} and none is `default: true`: "
                                    f"pass --endpoint")
    return _settings(endpoints, key, where)


def load_endpoint_settings(path: Path, key: str | None = None) -> EndpointSettings:
    """Outside any deployment (a task started by hand, tests): serving endpoint `key` of resource
    file `path` as written (default: the one marked `default: true`, else the first). Nothing is
    resolved: variables and target overrides exist only in a deployment."""
    if not Path(path).is_file():
        raise EndpointSettingsError(f"endpoint settings file not found: {path}")
    doc = yaml.safe_load(Path(path).read_text()) or {}
    endpoints = (doc.get("resources") or {}).get("serving_endpoints") or {}
    if not endpoints:
        if key is not None:
            raise EndpointSettingsError(f"no serving endpoint {key!r}: {path} declares none")
        return EndpointSettings()
    return _settings(endpoints, key, str(path))


def endpoint_settings(key: str | None = None, path: Path | None = None) -> EndpointSettings:
    """What a task acts on: in a job run the deployed endpoint, never a file (a file would be a
    checkout's, unreviewed and undeployed); outside one, resource file `path`."""
    from core import settings

    deployment = settings.DEPLOYMENT.get()
    if deployment:
        if path is not None:
            raise EndpointSettingsError(f"--endpoint-file {path}: a run of deployment {deployment} reads the endpoint "
                                        f"it deployed, not a file; drop endpoint-file from the job's task and redeploy")
        return deployed_endpoint_settings(key)
    if path is None:
        raise EndpointSettingsError("not inside a bundle run: pass --endpoint-file (a resource file) or run the job "
                                    "with `conveyor bundle run`")
    return load_endpoint_settings(path, key)
