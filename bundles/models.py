"""Typed models of `bundle.yml` and `resources/*.yml`; also the source of `bundle schema`.

Every model forbids unknown keys so a typo is an error with a did-you-mean,
never a silently ignored setting. The `resources:` section has one field per kind
registered in `bundles.resources`; each kind's entry model lives in its kind module
(re-exported here).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from bundles.resources import KINDS
from bundles.resources.experiments import Experiment
from bundles.resources.jobs import (
    ConditionExpr,
    ConditionTask,
    Dependency,
    Job,
    PythonEntry,
    RunJobTask,
    Schedule,
    Task,
    cron_problem,
)
from bundles.resources.monitors import Monitor
from bundles.resources.registered_models import RegisteredModel
from bundles.resources.serving_endpoints import ServedModel, ServingEndpoint
from bundles.resources.spec import MODULE_RE, NAME_RE, Grant, PermissionLevel, Scalar, Strict

__all__ = [
    "MODULE_RE", "NAME_RE", "RESOURCE_KINDS", "ArtifactSettings", "BundleFile", "BundleInfo", "ConditionExpr",
    "ConditionTask", "Dependency", "Experiment", "GitSettings", "Grant", "Job", "Monitor", "PermissionLevel",
    "PythonEntry", "RegisteredModel", "Resources", "RunJobTask", "Scalar", "Schedule", "ServedModel",
    "ServingEndpoint", "Strict", "Target", "Task", "Variable", "cron_problem", "key_ok", "schema",
]


# --- bundle.yml --------------------------------------------------------------------------


class Variable(Strict):
    """A bundle variable; resolved --var > BUNDLE_VAR_<name> > target value > default."""

    description: str | None = None
    default: Scalar | None = None


class GitSettings(Strict):
    branch: str | None = Field(None, description="production targets refuse to deploy from any other branch")


class ArtifactSettings(Strict):
    packages: list[str] | None = Field(
        None, description="top-level Python packages shipped in the code wheel (default: every package dir at the root)"
    )


class BundleInfo(Strict):
    name: str = Field(pattern=NAME_RE)
    git: GitSettings | None = None
    artifact: ArtifactSettings = ArtifactSettings()


class Target(Strict):
    """One deployment target, mapped to the Pulumi stack (environment) it deploys into."""

    stack: str | None = Field(None, description="Pulumi stack / environment name (default: the target name)")
    mode: Literal["development", "production"] = "development"
    default: bool = False
    git: GitSettings | None = None
    run_as: str | None = Field(None, description="persona that deploys and runs jobs (required in production)")
    name_prefix: str | None = Field(None, description="prefix for resource names (development default: dev_<user>_)")
    variables: dict[str, Scalar] = {}
    resources: dict[str, Any] = Field({}, description="per-target overrides, deep-merged over `resources`")


# --- resources: one `{key: entry}` field per registered kind ------------------------------

Resources = KINDS.resources_model(Strict)
RESOURCE_KINDS = KINDS.declared()


class BundleFile(Strict):
    """`bundle.yml` (and, with only `resources`, every included file)."""

    bundle: BundleInfo | None = None
    variables: dict[str, Variable] = {}
    include: list[str] = []
    resources: Resources = Resources()
    targets: dict[str, Target] = {}


def schema() -> dict:
    """JSON Schema for editors (yaml-language-server: $schema=...)."""
    doc = BundleFile.model_json_schema()
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["title"] = "Conveyor bundle"
    return doc


def key_ok(key: str) -> bool:
    return bool(re.match(NAME_RE, key))
