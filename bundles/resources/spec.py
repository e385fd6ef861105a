"""Building blocks every resource spec model uses: strict models, names, grants.

A leaf module (it imports nothing of `bundles`), so each kind module can define its spec
model here-and-now and `bundles.models` can assemble the `resources:` section from the
registry without an import cycle.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

NAME_RE = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
MODULE_RE = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
Scalar = str | int | float | bool
PermissionLevel = Literal["READ", "USE", "EDIT", "MANAGE"]


class Strict(BaseModel):
    """Unknown keys are errors (with a did-you-mean), never silently ignored settings."""

    model_config = ConfigDict(extra="forbid")


class Grant(Strict):
    principal: str = Field(description="persona name from the environment's credentials, e.g. data_scientist")
    permission: PermissionLevel


class MlflowEntry(Strict):
    """What every MLflow-backed entry (experiment, registered model) declares; each kind
    documents its own `name`."""

    name: str | None = None
    description: str | None = None
    tags: dict[str, str] = {}
    grants: list[Grant] = []
