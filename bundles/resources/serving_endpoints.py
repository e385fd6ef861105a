"""`resources.serving_endpoints`: which model aliases an endpoint serves, with what traffic."""

from __future__ import annotations

from core.endpoints import Binding, write_binding

from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from bundles.resources.base import DeployContext
from bundles.resources.spec import Strict
from bundles.resources.stored import StoredKind, resource_key

if TYPE_CHECKING:
    from bundles.envstore import ResourceRecord


class ServedModel(Strict):
    alias: str = Field(description="registered model alias, e.g. champion / challenger")
    traffic_percentage: int = Field(ge=0, le=100)


class ServingEndpoint(Strict):
    name: str | None = None
    model: str = Field(description="registered model name, e.g. ${resources.registered_models.fraud.name}")
    use_case: str | None = Field(None, description="the use case whose declaration gives the request/response schema")
    default: bool = Field(False, description="served at /predict (else at /<key>/predict); one per environment")
    served: list[ServedModel] = Field(min_length=1)
    shadow: str | None = Field(None, description="alias that scores a copy of each request, never answers")
    rollout: dict[str, Any] = Field({}, description="rollout settings for the serving layer (strategy, stages, sla)")
    bootstrap_job: str | None = Field(None, description="job (resource key) that trains and serves this endpoint's "
                                      "first model: a production deploy runs it while the endpoint serves none")
    bootstrap: bool = Field(True, description="whether deploys of this target run bootstrap_job (a per-target "
                                              "variable: on in prod, off where CI trains by itself)")

    @model_validator(mode="after")
    def _traffic(self) -> ServingEndpoint:
        total = sum(s.traffic_percentage for s in self.served)
        if total != 100:
            raise ValueError(f"served traffic_percentage must add up to 100, got {total}")
        return self


class ServingEndpoints(StoredKind):
    """Registered for the serving layer, which reads the deployed spec and routes by it."""

    name = "serving_endpoints"
    model = ServingEndpoint

    def put(self, ctx: DeployContext, action, old):
        """Write the deployed spec, then bind the endpoint in the env's endpoint storage, so the
        env's serving process starts serving it (`core.endpoints`)."""
        rec = super().put(ctx, action, old)
        use_case = action.spec.get("use_case")
        if use_case:
            root = _endpoint_root(ctx)
            if root is not None:
                write_binding(root, Binding(name=resource_key(action.key), use_case=use_case,
                                            model=action.spec.get("model"), default=bool(action.spec.get("default"))))
        return rec

    def check(self, ctx: DeployContext, key: str, spec: dict[str, Any]) -> None:
        job = spec.get("bootstrap_job")
        if job and job not in ctx.bundle.resources.jobs:
            from bundles.errors import BundleError

            raise BundleError(f"{key}: bootstrap_job {job!r} is not a job of this bundle "
                              f"(jobs: {', '.join(sorted(ctx.bundle.resources.jobs)) or 'none'})")
        super().check(ctx, key, spec)

    def summary(self, ctx: DeployContext, rec: ResourceRecord) -> dict[str, Any]:
        return {"name": rec.name, "url": ctx.outputs.serving_url}


def _endpoint_root(ctx: DeployContext):
    """The env's endpoint storage as a local path (None where deploy cannot reach it: the
    update_endpoint task binds the endpoint from inside the env instead)."""
    from core.runtime import RuntimeContextError, local_storage_path

    try:
        return local_storage_path(ctx.outputs, "endpoint")
    except (RuntimeContextError, AttributeError):
        return None
