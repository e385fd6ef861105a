"""`resources.experiments`: MLflow experiments, with tags, a description and grants."""

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


class Experiment(MlflowEntry):
    name: str | None = Field(None, description="MLflow experiment name (default: the resource key)")


class Experiments(MlflowKind):
    name = "experiments"
    model = Experiment
    resource_type = "experiment"

    def exists(self, ctx: DeployContext, rec: ResourceRecord) -> bool:
        exp = ctx.api.experiment(rec.id) if rec.id else None
        return bool(exp and exp.get("lifecycle_stage") == "active" and exp.get("name") == rec.name)

    def put(self, ctx: DeployContext, action: Action, old: ResourceRecord | None) -> ResourceRecord:
        from bundles.envstore import ResourceRecord

        api, spec, name = ctx.api, action.spec, action.spec["name"]
        exp = api.experiment(old.id) if old and old.id else None
        created = old.created if old else True
        if exp is None:
            exp = api.experiment_by_name(name)
            if exp is None:
                exp_id = api.create_experiment(name, _mlflow.tags(ctx, action))
                exp = {"experiment_id": exp_id, "name": name, "lifecycle_stage": "active", "tags": []}
                created = True
            else:
                created = _mlflow.adopt(ctx, "experiment", name, exp.get("tags", []))
        exp_id = exp["experiment_id"]
        if exp.get("lifecycle_stage") == "deleted":
            api.restore_experiment(exp_id)
        if exp.get("name") != name:
            api.rename_experiment(exp_id, name)
        for k, v in _mlflow.tags(ctx, action).items():
            if k in OWNERSHIP_TAGS and not created:
                continue  # never claim ownership of an experiment we adopted
            api.set_experiment_tag(exp_id, k, v)
        api.set_experiment_tag(exp_id, "mlflow.note.content", spec.get("description") or "")
        grants = _mlflow.sync_grants(ctx, self.resource_type, exp_id, spec, old)
        return ResourceRecord(kind=self.name, key=action.key, name=name, id=exp_id, fingerprint="",
                              created=created, grants=grants)

    def delete(self, ctx: DeployContext, rec: ResourceRecord) -> None:
        if not rec.id:
            return
        if rec.created:
            ctx.api.delete_experiment(rec.id)
        else:
            self.release(ctx, rec, rec.id)

    def summary(self, ctx: DeployContext, rec: ResourceRecord) -> dict[str, Any]:
        base = ctx.outputs.tracking_uri.rstrip("/")
        return {"name": rec.name, "url": f"{base}/#/experiments/{rec.id}", "id": rec.id}
