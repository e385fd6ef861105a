"""`resources.registered_models`: MLflow registered models (the registry entry, not versions)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from bundles.resources import _mlflow
from bundles.resources._mlflow import OWNERSHIP_TAGS, MlflowKind
from bundles.resources.base import DeployContext
from bundles.resources.spec import MlflowEntry

if TYPE_CHECKING:
    from bundles.envstore import ResourceRecord
    from bundles.planner import Action


class RegisteredModel(MlflowEntry):
    name: str | None = Field(None, description="registered model name (default: the resource key)")


class RegisteredModels(MlflowKind):
    name = "registered_models"
    model = RegisteredModel
    resource_type = "registered_model"

    def exists(self, ctx: DeployContext, rec: ResourceRecord) -> bool:
        return ctx.api.registered_model(rec.name) is not None

    def put(self, ctx: DeployContext, action: Action, old: ResourceRecord | None) -> ResourceRecord:
        from bundles.envstore import ResourceRecord

        api, spec, name = ctx.api, action.spec, action.spec["name"]
        created = old.created if old else True
        if old and old.name and old.name != name and api.registered_model(old.name) is not None:
            api.rename_registered_model(old.name, name)
        model = api.registered_model(name)
        if model is None:
            api.create_registered_model(name, spec.get("description"), _mlflow.tags(ctx, action))
            created = True
        else:
            if old is None:
                created = _mlflow.adopt(ctx, "registered model", name, model.get("tags", []))
            api.update_registered_model(name, spec.get("description") or "")
            for k, v in _mlflow.tags(ctx, action).items():
                if k in OWNERSHIP_TAGS and not created:
                    continue
                api.set_registered_model_tag(name, k, v)
        grants = _mlflow.sync_grants(ctx, self.resource_type, name, spec, old)
        return ResourceRecord(kind=self.name, key=action.key, name=name, id=name, fingerprint="",
                              created=created, grants=grants)

    def delete(self, ctx: DeployContext, rec: ResourceRecord) -> None:
        if rec.created:
            ctx.api.delete_registered_model(rec.name)
        else:
            self.release(ctx, rec, rec.name)

    def summary(self, ctx: DeployContext, rec: ResourceRecord) -> dict[str, Any]:
        return {"name": rec.name, "url": f"{ctx.outputs.tracking_uri.rstrip('/')}/#/models/{rec.name}"}
