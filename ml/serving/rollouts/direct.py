"""`direct`: the new model replaces the champion as soon as it passed the SLA gate.

Also what an endpoint's first model goes live with (`rollouts.default()`): there is no
champion to share traffic with.
"""

from __future__ import annotations

from ml.serving.endpoint_config import EndpointConfig, Rollout, ServedModel, promote
from ml.serving.rollouts.base import RolloutStrategy


class Direct(RolloutStrategy):
    name = "direct"
    summary = "swap the champion now"

    def go_live(self, cfg: EndpointConfig, model: ServedModel, rollout: Rollout) -> EndpointConfig:
        return promote(cfg, model)
