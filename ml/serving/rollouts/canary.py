"""`canary`: the challenger's share grows through timed `stages`; a live guard can roll it back.

Every worker walks the stages by its own clock from `rollout.started_at`, so no process has
to move traffic. While rows reach the challenger, the worker feeds its errors and latency to
`LiveGuard`; crossing a `guard` bound makes the worker rewrite the endpoint config without
the challenger (its rows fall back to the champion meanwhile). The deploy step waits out the
stages, then promotes — unless the guard got there first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ml.serving.endpoint_config import (
    CanaryGuard,
    EndpointConfig,
    Rollout,
    ServedModel,
    promote,
    read_config,
    update_config,
)
from ml.serving.errors import DeployError
from ml.serving.rollouts.base import RolloutStrategy


class Canary(RolloutStrategy):
    name = "canary"
    summary = "stages of percent x seconds, rolled back on its own when the guard trips"

    def challenger_percent(self, cfg: EndpointConfig, now: float) -> float:
        stages = cfg.rollout.stages
        if not stages:
            return 0.0
        elapsed = now - (cfg.rollout.started_at or cfg.updated_at)
        for stage in stages:
            if elapsed < stage.seconds:
                return stage.percent
            elapsed -= stage.seconds
        return stages[-1].percent

    def guard_bounds(self, rollout: Rollout) -> CanaryGuard | None:
        return rollout.guard

    def after_go_live(self, endpoint_dir: Path, model: ServedModel, *, by: str,
                      echo: Callable[[str], Any]) -> EndpointConfig | None:
        return watch_canary(endpoint_dir, model, by=by, echo=echo)


def watch_canary(endpoint_dir: Path, model: ServedModel, *, by: str, echo: Callable[[str], Any] = print,
                 poll_s: float = 0.5) -> EndpointConfig:
    """Wait out the canary stages; promote at the end unless the service's guard rolled it back."""
    last_pct = None
    while True:
        cfg = read_config(endpoint_dir)
        if cfg.challenger is None or cfg.challenger.version != model.version:
            raise DeployError(f"canary of {model.name} v{model.version} rolled back: {cfg.reason}")
        pct = cfg.canary_percent()
        if pct != last_pct:
            echo(f"canary: {pct:g}% of traffic on v{model.version}")
            last_pct = pct
        total = sum(s.seconds for s in cfg.rollout.stages)
        if time.time() - (cfg.rollout.started_at or cfg.updated_at) >= total:
            break
        time.sleep(poll_s)

    def finish(cfg: EndpointConfig):
        if cfg.challenger is None or cfg.challenger.version != model.version:
            return None
        return promote(cfg, model)

    new = update_config(endpoint_dir, finish, by=by, reason=f"canary of {model.name} v{model.version} passed")
    if new.champion is None or new.champion.version != model.version:
        raise DeployError(f"canary of {model.name} v{model.version} rolled back: {new.reason}")
    echo(f"canary passed: v{model.version} is champion")
    return new
