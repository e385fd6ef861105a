"""`ab`: a fixed share of traffic (`challenger_percent`) goes to the challenger until promoted by hand.

The split is sticky: rows are routed by a hash of `sticky_key` (e.g. `customer_id`), so one
customer always sees the same model, on every worker.
"""

from __future__ import annotations

from typing import Any

from ml.serving.endpoint_config import EndpointConfig
from ml.serving.rollouts.base import RolloutStrategy


class AB(RolloutStrategy):
    name = "ab"
    summary = "fixed challenger_percent, sticky by sticky_key, promoted by hand"

    def implied_by(self, resource: dict[str, Any]) -> dict[str, Any] | None:
        """A resource whose `served` list gives the challenger alias a share of traffic."""
        served = {s.get("alias"): s.get("traffic_percentage", 0) for s in resource.get("served") or []}
        if not served.get("challenger"):
            return None
        return {"strategy": self.name, "challenger_percent": served["challenger"]}

    def challenger_percent(self, cfg: EndpointConfig, now: float) -> float:
        return cfg.rollout.challenger_percent
