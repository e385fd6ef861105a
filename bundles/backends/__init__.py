"""Job backends, one per platform, registered here once.

`backend_for(target)` picks the backend of the env's `platform` output; nothing else in
bundles asks which platform an env runs on. To add a platform's jobs: one module with a
`JobBackend` subclass (see `base.py`), one line in `BACKENDS`.
"""

from __future__ import annotations

from bundles.backends.base import JobBackend, JobTarget, Run, RunResult, TaskFailure
from bundles.backends.kubernetes import KubernetesJobs
from bundles.backends.local import LocalJobs
from bundles.errors import BundleError

BACKENDS: dict[str, type[JobBackend]] = {
    LocalJobs.platform: LocalJobs,
    KubernetesJobs.platform: KubernetesJobs,
}


def backend_for(target: JobTarget) -> JobBackend:
    """The job backend of the env `target.outputs` describes."""
    platform = target.outputs.platform
    if platform not in BACKENDS:
        raise BundleError(f"environment {target.outputs.env!r} runs on platform {platform!r}, which has no job "
                          f"backend (known: {', '.join(sorted(BACKENDS))})")
    return BACKENDS[platform](target)


def storage_only(target: JobTarget) -> JobBackend:
    """A backend that keeps jobs in env storage and nothing else, whatever the platform."""
    return LocalJobs(target)


__all__ = ["BACKENDS", "JobBackend", "JobTarget", "Run", "RunResult", "TaskFailure", "backend_for", "storage_only"]
