"""`resources.monitors`: drift thresholds on an endpoint, and the job a violation triggers."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from bundles.resources.spec import Strict
from bundles.resources.stored import StoredKind


class Monitor(Strict):
    name: str | None = None
    endpoint: str = Field(description="resource key of the serving endpoint it watches")
    thresholds: dict[str, float] = {}
    config: dict[str, Any] = {}
    retrain_job: str | None = Field(None, description="resource key of the job a violation triggers")


class Monitors(StoredKind):
    """Registered for the monitoring job, which reads the deployed spec."""

    name = "monitors"
    model = Monitor
