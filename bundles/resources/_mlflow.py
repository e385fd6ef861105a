"""What the MLflow kinds (experiments, registered models) share: ownership tags and grants.

Ownership: every object deploy creates carries the deployment and resource key as tags,
so a deploy never takes over what another deployment manages, and destroy deletes only
what it created (an adopted object keeps existing; only our grants on it are revoked).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bundles.errors import BundleError
from bundles.resources.base import DeployContext, ResourceKind

if TYPE_CHECKING:
    from bundles.envstore import ResourceRecord
    from bundles.planner import Action

TAG_DEPLOYMENT = "conveyor.deployment"
TAG_RESOURCE = "conveyor.resource"
OWNERSHIP_TAGS = (TAG_DEPLOYMENT, TAG_RESOURCE)


def tags(ctx: DeployContext, action: Action) -> dict[str, str]:
    """The spec's tags plus the ownership tags."""
    out = dict(action.spec.get("tags") or {})
    out[TAG_DEPLOYMENT] = ctx.deployment_id
    out[TAG_RESOURCE] = action.key
    return out


def adopt(ctx: DeployContext, what: str, name: str, found_tags: list[dict]) -> bool:
    """Check an object that already exists; True when this deployment created it.

    Raises when another deployment manages it (two bundles, one name)."""
    existing = {t["key"]: t["value"] for t in found_tags}
    owner = existing.get(TAG_DEPLOYMENT)
    if owner and owner != ctx.deployment_id:
        raise BundleError(f"{what} {name!r} is managed by deployment {owner!r}; rename it in this bundle "
                          f"or destroy that deployment first")
    return owner == ctx.deployment_id


def sync_grants(ctx: DeployContext, resource_type: str, resource_id: str, spec: dict,
                old: ResourceRecord | None) -> list[dict]:
    """Make the permissions on one object match the spec's grants; returns what was applied."""
    # The deploying persona keeps the MANAGE it has as creator; downgrading itself would
    # lock it out of the rest of this deploy.
    wanted = [
        {"principal": g["principal"], "username": ctx.username(g["principal"]), "permission": g["permission"]}
        for g in spec.get("grants", []) if g["principal"] != ctx.persona
    ]
    before = {g["username"]: g for g in (old.grants if old else [])}
    after = {g["username"] for g in wanted}
    for username in before:
        if username not in after:
            ctx.api.revoke(username, resource_type, resource_id)
    for g in wanted:
        ctx.api.grant(g["username"], resource_type, resource_id, g["permission"])
    return wanted


class MlflowKind(ResourceKind):
    """A kind living in the env's MLflow, with grants; `resource_type` is MLflow's name for it."""

    resource_type: str

    def check(self, ctx: DeployContext, key: str, spec: dict[str, Any]) -> None:
        for grant in spec.get("grants", []):
            ctx.username(grant["principal"])

    def release(self, ctx: DeployContext, rec: ResourceRecord, resource_id: str) -> None:
        """Destroy of an adopted object: take back only the grants deploy gave."""
        for g in rec.grants:
            ctx.api.revoke(g["username"], self.resource_type, resource_id)
