"""The interface of a rollout strategy: how a challenger shares the endpoint with the champion.

A strategy is consulted at three moments, and answers only what it changes there:

- reading the bundle (`ml.serving.endpoint_settings`): `implied_by` — which rollout a
  `serving_endpoints` resource means when it names no strategy;
- the deploy step (`ml.serving.deploy`), once the candidate passed the SLA gate:
  `go_live` — the endpoint-config change that puts the model on traffic, then
  `after_go_live` — what the step waits for before it reports success;
- every serving worker (`ml.serving.engine`), per batch: `challenger_percent` — the share of
  rows routed to the challenger; `mirrors` — whether the challenger also scores a copy of
  every batch off the request path; `guard_bounds` — live bounds whose crossing makes the
  worker take the challenger off the endpoint on its own.

The defaults describe a challenger that gets no traffic and is never watched, so a strategy
overrides only what makes it different. Strategies are stateless singletons: per-rollout
settings live in `endpoint_config.Rollout`, which every method receives.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from ml.serving.endpoint_config import CanaryGuard, EndpointConfig, Rollout, ServedModel


class RolloutStrategy:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""  # one line, shown in `--help` and error messages
    mirrors: ClassVar[bool] = False

    # ---- reading the bundle resource ---------------------------------------------------
    def implied_by(self, resource: dict[str, Any]) -> dict[str, Any] | None:
        """Rollout settings the resource's shape (`served`, `shadow`) implies, or None if not this strategy."""
        return None

    # ---- the deploy step -----------------------------------------------------------------
    def go_live(self, cfg: EndpointConfig, model: ServedModel, rollout: Rollout) -> EndpointConfig:
        """Put `model` (which passed the SLA gate) on the endpoint; the champion keeps serving.

        The default makes it the challenger and starts the rollout's clock.
        """
        cfg.challenger = model
        cfg.rollout = rollout.model_copy(update={"started_at": time.time()})
        cfg.state = "rolling_out"
        return cfg

    def after_go_live(self, endpoint_dir: Path, model: ServedModel, *, by: str,
                      echo: Callable[[str], Any]) -> EndpointConfig | None:
        """Wait for the rollout's outcome and return the config it left, or None to return at once.

        Returning at once leaves the challenger in place until `conveyor model promote` or
        `conveyor model rollback`. Raise `DeployError` when the model did not make it.
        """
        return None

    # ---- the serving worker --------------------------------------------------------------
    def challenger_percent(self, cfg: EndpointConfig, now: float) -> float:
        """Share of traffic (0-100) the challenger answers at time `now`; rows are picked by sticky hash."""
        return 0.0

    def guard_bounds(self, rollout: Rollout) -> CanaryGuard | None:
        """Live bounds on the challenger's errors and latency; None: the challenger is not watched."""
        return None
