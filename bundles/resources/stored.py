"""Kinds that live as documents in the env's storage (`<kind>/<key>.json` of the deployment).

Jobs, serving endpoints and monitors are not objects of an external service: deploy writes
their resolved spec where the runner, the scheduler and the serving layer read it
(`bundles.deployed.deployed_specs`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bundles.resources.base import DeployContext, ResourceKind

if TYPE_CHECKING:
    from bundles.envstore import ResourceRecord
    from bundles.planner import Action


def resource_key(key: str) -> str:
    """`jobs.train_job` -> `train_job`."""
    return key.split(".", 1)[1]


class StoredKind(ResourceKind):
    """Put = write the document, delete = remove it, exists = the document is there."""

    def exists(self, ctx: DeployContext, rec: ResourceRecord) -> bool:
        return ctx.store.read_object(self.name, resource_key(rec.key)) is not None

    def put(self, ctx: DeployContext, action: Action, old: ResourceRecord | None) -> ResourceRecord:
        from bundles.envstore import ResourceRecord

        key, bundle = resource_key(action.key), ctx.bundle
        ctx.store.write_object(self.name, key, {
            "key": key,
            "deployment": ctx.deployment_id,
            "bundle": bundle.name,
            "target": bundle.target,
            "env": ctx.outputs.env,
            "mode": bundle.mode,
            "spec": action.spec,
        })
        return ResourceRecord(kind=self.name, key=action.key, name=action.name, id=key, fingerprint="")

    def delete(self, ctx: DeployContext, rec: ResourceRecord) -> None:
        ctx.store.delete_object(self.name, resource_key(rec.key))
