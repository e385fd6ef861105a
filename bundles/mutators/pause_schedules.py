"""Step: in development mode, pause every job schedule.

Reads `state.mode`; sets `schedule.pause_status: PAUSED` on each job that has a schedule,
so a personal deployment never runs on its own.
"""

from __future__ import annotations

from bundles.mutators.state import LoadState
from core.diagnostics import Diagnostic


def apply(state: LoadState) -> list[Diagnostic]:
    jobs = state.resources.get("jobs")
    if state.mode == "development" and isinstance(jobs, dict):
        for job in jobs.values():
            if isinstance(job, dict) and isinstance(job.get("schedule"), dict):
                job["schedule"]["pause_status"] = "PAUSED"
    return []
