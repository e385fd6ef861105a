"""The code artifact: the bundle's packages as one wheel, named by content hash.

Not declared in `resources:` (no model): every deployment has exactly one, and it is
applied first because every job runs it. Its state lives in `state.artifact` / `state.wheel`
too, where the runner finds the code of the deployment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bundles import artifact as artifacts
from bundles.resources.base import DeployContext, Desired, ResourceKind

if TYPE_CHECKING:
    from bundles.envstore import DeploymentState, ResourceRecord
    from bundles.loader import ResolvedBundle
    from bundles.planner import Action


class Artifact(ResourceKind):
    name = "artifact"

    def desired(self, bundle: ResolvedBundle, artifact_hash: str) -> Desired:
        # `format`: what a runner may expect of this artifact (bundles.artifact.FORMAT, checked at each run)
        return {"artifact": (None, {"hash": artifact_hash, "format": artifacts.FORMAT})}

    def exists(self, ctx: DeployContext, rec: ResourceRecord) -> bool:
        return ctx.store.has_code(rec.spec.get("hash", ""))

    def put(self, ctx: DeployContext, action: Action, old: ResourceRecord | None) -> ResourceRecord:
        from bundles.envstore import ResourceRecord

        art = ctx.artifact
        wheel_dir = ctx.store.artifact_dir(art.hash)
        wheel = wheel_dir / art.wheel_name
        if not wheel.exists():
            artifacts.build_wheel(ctx.bundle.root, ctx.bundle.name, art, wheel_dir)
        ctx.store.put_code(art.hash, wheel)
        if old and old.spec.get("hash") and old.spec["hash"] != art.hash:
            ctx.store.prune_code(keep={art.hash, old.spec["hash"]})
        return ResourceRecord(kind=self.name, key="artifact", name=art.wheel_name, id=art.hash, fingerprint="")

    def delete(self, ctx: DeployContext, rec: ResourceRecord) -> None:
        ctx.store.prune_code(keep=set())

    def record(self, state: DeploymentState, rec: ResourceRecord | None) -> None:
        state.artifact = rec.spec["hash"] if rec else None
        state.wheel = rec.name if rec else None

    def summary(self, ctx: DeployContext, rec: ResourceRecord) -> None:
        return None  # shown as the deployment's `artifact`, not as a resource
