"""`canary`: the challenger's share grows through `stages`, each advanced on evidence; a guard rolls it back.

A stage serves `percent` of traffic and advances only once it has lasted `seconds` *and* the
challenger answered its `min_requests` (default: the guard's `min_requests`) — counted in the
endpoint's inference table (`rollouts.evidence`), so a canary nobody sends requests to never
passes: after `max_stage_wait_s` without its minimum it fails with "no traffic" and the
challenger leaves the endpoint. The deploy step (`watch_canary`) walks the stages by writing
`rollout.stage` into the endpoint config; every worker reads its share from there. While
rows reach the challenger, each worker feeds its errors and latency to `LiveGuard`; crossing a
`guard` bound makes the worker rewrite the config without the challenger on its own, and the
deploy step also stops when the logged challenger latency crosses `guard.max_p95_ms`.
The last stage's evidence promotes the challenger.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ml.serving.endpoint_config import (
    CanaryGuard,
    EndpointConfig,
    Rollout,
    ServedModel,
    drop_challenger,
    promote,
    read_config,
    update_config,
)
from ml.serving.errors import DeployError
from ml.serving.rollouts import evidence
from ml.serving.rollouts.base import RolloutStrategy


class Canary(RolloutStrategy):
    name = "canary"
    summary = "stages of percent x (seconds and challenger requests), rolled back when the guard trips or nobody calls"

    def go_live(self, cfg: EndpointConfig, model: ServedModel, rollout: Rollout) -> EndpointConfig:
        cfg = super().go_live(cfg, model, rollout)
        cfg.rollout.stage, cfg.rollout.stage_started_at = 0, cfg.rollout.started_at
        return cfg

    def challenger_percent(self, cfg: EndpointConfig, now: float) -> float:
        stages = cfg.rollout.stages
        if not stages:
            return 0.0
        return stages[min(cfg.rollout.stage, len(stages) - 1)].percent

    def guard_bounds(self, rollout: Rollout) -> CanaryGuard | None:
        return rollout.guard

    def after_go_live(self, endpoint_dir: Path, model: ServedModel, *, by: str,
                      echo: Callable[[str], Any]) -> EndpointConfig | None:
        return watch_canary(endpoint_dir, model, by=by, echo=echo)


def _take_off(endpoint_dir: Path, model: ServedModel, by: str, reason: str) -> None:
    """The challenger leaves the endpoint (the champion answers everything again)."""
    def change(cfg: EndpointConfig):
        if cfg.challenger is None or cfg.challenger.version != model.version:
            return None
        return drop_challenger(cfg)

    update_config(endpoint_dir, change, by=by, reason=reason)


def watch_canary(endpoint_dir: Path, model: ServedModel, *, by: str, echo: Callable[[str], Any] = print,
                 poll_s: float = 0.5) -> EndpointConfig:
    """Walk the canary's stages on evidence; promote after the last one. Raises `DeployError` when
    the guard rolled it back, the challenger is too slow, or a stage saw too few requests in time."""
    cfg = read_config(endpoint_dir)
    if cfg.rollout.stages and cfg.rollout.evidence_table is None:
        _take_off(endpoint_dir, model, by, "canary without an inference table to count challenger requests in")
        raise DeployError(f"canary of {model.name} v{model.version} cannot count challenger requests: "
                          "its rollout names no evidence_table")
    announced = None
    while True:
        cfg = read_config(endpoint_dir)
        if cfg.challenger is None or cfg.challenger.version != model.version:
            raise DeployError(f"canary of {model.name} v{model.version} rolled back: {cfg.reason}")
        r = cfg.rollout
        if not r.stages:
            break
        stage = r.stages[min(r.stage, len(r.stages) - 1)]
        since = r.stage_started_at or r.started_at or cfg.updated_at
        now = time.time()
        need = stage.min_requests or r.guard.min_requests
        seen = evidence.challenger(Path(r.evidence_table), model.version, since)
        if announced != r.stage:
            echo(f"canary stage {r.stage + 1}/{len(r.stages)}: {stage.percent:g}% of traffic on v{model.version}, "
                 f"advancing after {stage.seconds:g} s and {need} challenger requests")
            announced = r.stage
        if seen.requests >= r.guard.min_requests and not math.isnan(seen.p95_ms) and seen.p95_ms > r.guard.max_p95_ms:
            reason = (f"challenger p95 latency {seen.p95_ms:.0f} ms > {r.guard.max_p95_ms:.0f} ms over "
                      f"{seen.requests} requests at stage {r.stage + 1}")
            _take_off(endpoint_dir, model, by, reason)
            raise DeployError(f"canary of {model.name} v{model.version} rolled back: {reason}")
        if seen.requests >= need and now - since >= stage.seconds:
            echo(f"canary stage {r.stage + 1} passed: {seen.requests} challenger requests "
                 f"(p95 {seen.p95_ms:.0f} ms) of {seen.total} in {now - since:.0f} s")
            if r.stage + 1 >= len(r.stages):
                break
            cfg = _advance(endpoint_dir, model, r.stage, by)
            continue
        if now - since >= max(stage.seconds, r.max_stage_wait_s):
            reason = (f"no traffic: {seen.requests} of {need} challenger requests at {stage.percent:g}% "
                      f"({seen.total} requests in all) in {now - since:.0f} s at stage {r.stage + 1}")
            _take_off(endpoint_dir, model, by, reason)
            raise DeployError(f"canary of {model.name} v{model.version} failed: {reason}")
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


def _advance(endpoint_dir: Path, model: ServedModel, stage: int, by: str) -> EndpointConfig:
    def change(cfg: EndpointConfig):
        if cfg.challenger is None or cfg.challenger.version != model.version or cfg.rollout.stage != stage:
            return None  # rolled back (or moved on) meanwhile: the loop sees it
        cfg.rollout.stage, cfg.rollout.stage_started_at = stage + 1, time.time()
        return cfg

    return update_config(endpoint_dir, change, by=by, reason=f"canary of {model.name} v{model.version}: stage {stage + 2}")
