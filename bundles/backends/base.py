"""The one interface between bundles and the platform that runs their jobs.

A `JobBackend` serves one deployment (bundle × target) in one environment. Deploy uses
`sync` / `remove` / `has` to make the platform's schedules match the registered jobs;
`conveyor bundle run` uses `start` (and `active_runs` for max_concurrent_runs). Which
backend an environment gets is decided once, from its `platform` output
(`bundles.backends.backend_for`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from bundles.loader import ResolvedBundle
    from bundles.runner import Reporter
    from core.contract import EnvironmentOutputs


@dataclass(frozen=True)
class JobTarget:
    """What a backend knows of the deployment it serves."""

    outputs: EnvironmentOutputs
    deployment: str  # <bundle>.<target>[.<user>]
    bundle_target: str
    stack: str  # the env's Pulumi stack (its `Pulumi.<stack>.yaml` holds platform settings)
    project: Path  # the bundle root: where the env's stack file is (runs never read it: they run the deployment)
    git_sha: str = "unknown"

    @classmethod
    def of(cls, bundle: ResolvedBundle, outputs: EnvironmentOutputs) -> JobTarget:
        return cls(outputs=outputs, deployment=bundle.deployment_id(), bundle_target=bundle.target,
                   stack=bundle.stack, project=bundle.root, git_sha=bundle.git.commit)


@dataclass(frozen=True)
class TaskFailure:
    task: str
    reason: str
    log: str
    tail: str  # the last lines of its log


@dataclass(frozen=True)
class RunResult:
    """How a run ended: `ok`, the run's id and job, where its logs are, and (when not ok)
    one line saying so plus the failed tasks' log tails where the backend has them."""

    ok: bool
    run_id: str
    job: str
    logs: str | None = None
    error: str = ""
    failures: list[TaskFailure] = field(default_factory=list)


class Run(ABC):
    """A started run. `started` is a line worth telling the user (where to follow it)."""

    started: str | None = None
    finished: bool = False  # True when `start` ran it to the end (wait returns at once)
    label: str = ""

    @abstractmethod
    def wait(self, timeout: float | None = None, on_status: Callable[[str], None] | None = None) -> RunResult:
        """Block until the run ends (or `timeout` seconds pass: then not ok, error says timeout)."""


class JobBackend(ABC):
    """Where one deployment's jobs are scheduled and run."""

    platform: ClassVar[str]  # the `EnvironmentOutputs.platform` value it serves

    def __init__(self, target: JobTarget):
        self.target = target

    # --- deploy side -------------------------------------------------------------------------
    @abstractmethod
    def sync(self, key: str, spec: dict) -> None:
        """Make the platform's schedule of one deployed job match its spec."""

    @abstractmethod
    def remove(self, key: str) -> None:
        """Drop everything the platform holds for a job that left the bundle."""

    @abstractmethod
    def has(self, key: str, spec: dict) -> bool:
        """Whether what `sync` would leave is there (objects deleted by hand are re-created)."""

    # --- run side ----------------------------------------------------------------------------
    @abstractmethod
    def active_runs(self, key: str) -> list[str]:
        """Ids of the job's runs still going (manual and scheduled alike)."""

    @abstractmethod
    def start(self, job: str, params: dict[str, str] | None = None, only: list[str] | None = None,
              reporter: Reporter | None = None) -> Run:
        """Start a run of deployed job `job` (resource key or name); `reporter` shows progress
        where the run is followed live. Raises BundleError when it cannot start."""
