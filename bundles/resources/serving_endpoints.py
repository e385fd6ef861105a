"""`resources.serving_endpoints`: which model aliases an endpoint serves, with what traffic."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from bundles.resources.base import DeployContext
from bundles.resources.spec import Strict
from bundles.resources.stored import StoredKind

if TYPE_CHECKING:
    from bundles.envstore import ResourceRecord


class ServedModel(Strict):
    alias: str = Field(description="registered model alias, e.g. champion / challenger")
    traffic_percentage: int = Field(ge=0, le=100)


class ServingEndpoint(Strict):
    name: str | None = None
    model: str = Field(description="registered model name, e.g. ${resources.registered_models.fraud.name}")
    served: list[ServedModel] = Field(min_length=1)
    shadow: str | None = Field(None, description="alias that scores a copy of each request, never answers")
    rollout: dict[str, Any] = Field({}, description="rollout settings for the serving layer (strategy, stages, sla)")

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

    def summary(self, ctx: DeployContext, rec: ResourceRecord) -> dict[str, Any]:
        return {"name": rec.name, "url": ctx.outputs.serving_url}
