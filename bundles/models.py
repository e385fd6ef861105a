"""Typed models of `bundle.yml` and `resources/*.yml`; also the source of `bundle schema`.

Every model forbids unknown keys so a typo is an error with a did-you-mean,
never a silently ignored setting.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

NAME_RE = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
MODULE_RE = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
Scalar = Union[str, int, float, bool]
PermissionLevel = Literal["READ", "USE", "EDIT", "MANAGE"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


# --- resources ---------------------------------------------------------------------------


class Grant(Strict):
    principal: str = Field(description="persona name from the environment's credentials, e.g. data_scientist")
    permission: PermissionLevel


class Experiment(Strict):
    name: str | None = Field(None, description="MLflow experiment name (default: the resource key)")
    description: str | None = None
    tags: dict[str, str] = {}
    grants: list[Grant] = []


class RegisteredModel(Strict):
    name: str | None = Field(None, description="registered model name (default: the resource key)")
    description: str | None = None
    tags: dict[str, str] = {}
    grants: list[Grant] = []


class PythonEntry(Strict):
    """`python -m <module> --<param> <value> ...`; values may use {{job.parameters.x}} and
    {{tasks.<task>.values.<key>}} references resolved at run time."""

    module: str = Field(pattern=MODULE_RE)
    parameters: dict[str, Scalar | list[Scalar]] = {}


class ConditionExpr(Strict):
    """A condition evaluated by the runner itself: `left op right` (values may be references)."""

    left: Scalar
    op: Literal["==", "!=", ">", ">=", "<", "<="]
    right: Scalar


class ConditionTask(Strict):
    """True/false gate: either a module that sets task value `outcome`, or an expression."""

    module: str | None = Field(None, pattern=MODULE_RE)
    parameters: dict[str, Scalar | list[Scalar]] = {}
    expression: ConditionExpr | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "ConditionTask":
        if (self.module is None) == (self.expression is None):
            raise ValueError("a condition needs exactly one of `module` or `expression`")
        return self


class RunJobTask(Strict):
    job: str = Field(description="resource key of the job to trigger")
    parameters: dict[str, Scalar] = {}


class Dependency(Strict):
    task: str
    outcome: bool | None = Field(None, description="for condition tasks: run only on this outcome (default true)")


_DEPENDS_SCHEMA = {
    "type": "array",
    "description": "upstream task keys, or {task, outcome} for a branch of a condition task",
    "items": {"anyOf": [
        {"type": "string"},
        {"type": "object", "additionalProperties": False, "required": ["task"],
         "properties": {"task": {"type": "string"}, "outcome": {"type": "boolean"}}},
    ]},
}


class Task(Strict):
    description: str | None = None
    depends_on: Annotated[list[Dependency], WithJsonSchema(_DEPENDS_SCHEMA)] = []
    python: PythonEntry | None = None
    condition: ConditionTask | None = None
    run_job: RunJobTask | None = None
    max_retries: int = Field(0, ge=0, le=10)
    retry_delay_seconds: float = Field(0, ge=0)
    timeout_seconds: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_kind(self) -> "Task":
        kinds = [k for k in ("python", "condition", "run_job") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a task needs exactly one of `python`, `condition` or `run_job`")
        return self

    @field_validator("depends_on", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"task": v} if isinstance(v, str) else v for v in value]
        return value

    def dependencies(self) -> list[Dependency]:
        return list(self.depends_on)

    @property
    def kind(self) -> str:
        return "python" if self.python else "condition" if self.condition else "run_job"


def cron_problem(expr: str) -> str | None:
    """Why a 5-field cron expression is invalid, or None."""
    if len(expr.split()) != 5:
        return f"bad cron {expr!r}: expected 5 fields (minute hour day month weekday)"
    if not croniter.is_valid(expr):
        return f"bad cron {expr!r}: not a valid cron expression"
    return None


class Schedule(Strict):
    cron: str = Field(description="5-field cron expression, evaluated in UTC")
    pause_status: Literal["PAUSED", "UNPAUSED"] = "UNPAUSED"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        problem = cron_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class Job(Strict):
    name: str | None = Field(None, description="display name (default: the resource key)")
    description: str | None = None
    parameters: dict[str, Scalar] = Field({}, description="job parameters; `run --params k=v` overrides them")
    tasks: dict[str, Task] = Field(min_length=1)
    schedule: Schedule | None = None
    max_concurrent_runs: int = Field(1, ge=1)
    max_parallel_tasks: int = Field(2, ge=1, description="tasks of one run executed at the same time")
    timeout_seconds: int | None = Field(None, gt=0)
    tags: dict[str, str] = {}


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
    def _traffic(self) -> "ServingEndpoint":
        total = sum(s.traffic_percentage for s in self.served)
        if total != 100:
            raise ValueError(f"served traffic_percentage must add up to 100, got {total}")
        return self


class Monitor(Strict):
    name: str | None = None
    endpoint: str = Field(description="resource key of the serving endpoint it watches")
    thresholds: dict[str, float] = {}
    config: dict[str, Any] = {}
    retrain_job: str | None = Field(None, description="resource key of the job a violation triggers")


class Resources(Strict):
    experiments: dict[str, Experiment] = {}
    registered_models: dict[str, RegisteredModel] = {}
    jobs: dict[str, Job] = {}
    serving_endpoints: dict[str, ServingEndpoint] = {}
    monitors: dict[str, Monitor] = {}


RESOURCE_KINDS = tuple(Resources.model_fields)


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
