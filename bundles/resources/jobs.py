"""`resources.jobs`: task DAGs run by the env's job backend, optionally on a cron schedule.

Deploy registers each job's resolved spec in env storage (what the runner executes) and
asks the job backend to match its schedule: nothing more on the local platform (the env's
scheduler process reads storage), a CronJob on kubernetes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema, field_validator, model_validator

from bundles.errors import BundleError
from bundles.resources.base import DeployContext
from bundles.resources.spec import MODULE_RE, Scalar, Strict
from bundles.resources.stored import StoredKind, resource_key
from core.cron import cron_problem  # the one cron check (feature tables use it too)

if TYPE_CHECKING:
    from bundles.envstore import ResourceRecord
    from bundles.loader import ResolvedBundle
    from bundles.planner import Action


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
    def _one_kind(self) -> ConditionTask:
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
    def _one_kind(self) -> Task:
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


class Jobs(StoredKind):
    name = "jobs"
    model = Job

    def spec(self, entry: BaseModel, bundle: ResolvedBundle) -> dict[str, Any]:
        return {**entry.model_dump(mode="json"), "run_as": bundle.run_as}

    def check(self, ctx: DeployContext, key: str, spec: dict[str, Any]) -> None:
        run_as, outputs = spec["run_as"], ctx.outputs
        if run_as not in outputs.credentials:
            raise BundleError(f"jobs run as {run_as!r}, which has no credentials in environment "
                              f"{outputs.env!r} (known: {', '.join(sorted(outputs.credentials))})")

    def exists(self, ctx: DeployContext, rec: ResourceRecord) -> bool:
        return super().exists(ctx, rec) and ctx.jobs.has(resource_key(rec.key), rec.spec)

    def put(self, ctx: DeployContext, action: Action, old: ResourceRecord | None) -> ResourceRecord:
        rec = super().put(ctx, action, old)
        ctx.jobs.sync(resource_key(action.key), action.spec or {})
        return rec

    def delete(self, ctx: DeployContext, rec: ResourceRecord) -> None:
        ctx.jobs.remove(resource_key(rec.key))
        super().delete(ctx, rec)

    def summary(self, ctx: DeployContext, rec: ResourceRecord) -> dict[str, Any]:
        sched = rec.spec.get("schedule")
        return {"name": rec.name, "url": None,
                "schedule": f"{sched['cron']} ({sched['pause_status'].lower()})" if sched else None}
