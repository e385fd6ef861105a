"""A canary advances on evidence, not on the clock (issue #15): on a real endpoint, a canary nobody
calls fails with "no traffic" and leaves the champion serving; one with traffic walks its stages
only after each stage's challenger requests are in the inference table, then promotes."""

from __future__ import annotations

import time

import pytest

from ml.serving import client
from ml.serving.deploy import DeployError
from ml.serving.endpoint_config import CanaryGuard, CanaryStage, Rollout, history, promote, read_config, update_config
from ml.serving.inference_log import read_table
from ml.serving.rollouts.canary import Canary, watch_canary
from tests.serving.serving_helpers import TOKEN, endpoint_traffic, served

pytestmark = pytest.mark.slow


def _start(ep, champion, challenger, stages, wait_s: float):
    def change(cfg):
        cfg = promote(cfg, champion)
        cfg.previous_champions = []
        return Canary().go_live(cfg, challenger, Rollout(
            strategy="canary", stages=stages, guard=CanaryGuard(max_error_rate=0.05, max_p95_ms=5000, min_requests=10),
            max_stage_wait_s=wait_s, evidence_table=str(ep.table_dir)))

    cfg = update_config(ep.endpoint_dir, change, by="test", reason="canary")
    client.wait_for_revision(ep.url, cfg.revision, timeout_s=60, confirmations=1, token=TOKEN)
    return cfg


def test_a_canary_without_traffic_fails_and_the_champion_keeps_serving(shared_endpoint, models, rows):
    ep = shared_endpoint
    started = time.monotonic()
    _start(ep, served(models["v1"], "1"), served(models["v2"], "2"), [CanaryStage(percent=50, seconds=0.5)], wait_s=2)
    with pytest.raises(DeployError, match="failed: no traffic: 0 of 10 challenger requests at 50%"):
        watch_canary(ep.endpoint_dir, served(models["v2"], "2"), by="test", echo=lambda *_: None, poll_s=0.2)
    assert time.monotonic() - started < 120  # it waited its max_stage_wait_s (2 s), not forever
    cfg = read_config(ep.endpoint_dir)
    assert cfg.challenger is None and cfg.champion.version == "1" and cfg.state == "rolled_back"
    assert cfg.reason.startswith("no traffic")
    client.wait_for_revision(ep.url, cfg.revision, timeout_s=60, confirmations=1, token=TOKEN)
    assert {p["model_version"] for p in ep.post(rows[:20]).json()} == {"1"}


def test_a_canary_advances_only_on_challenger_requests_then_promotes(shared_endpoint, models, rows):
    ep = shared_endpoint
    stages = [CanaryStage(percent=20, seconds=0.5, min_requests=15), CanaryStage(percent=60, seconds=0.5, min_requests=30)]
    start = _start(ep, served(models["v1"], "1"), served(models["v2"], "2"), stages, wait_s=60)
    said: list[str] = []
    with endpoint_traffic(ep, rows):
        cfg = watch_canary(ep.endpoint_dir, served(models["v2"], "2"), by="test", echo=said.append, poll_s=0.2)
    assert cfg.champion.version == "2" and cfg.challenger is None and cfg.state == "serving"
    walked = [c for c in history(ep.endpoint_dir) if c.revision > start.revision]
    advanced = next(c for c in walked if c.rollout.stage == 1)
    # the stage moved only once 15 challenger rows were logged after the canary started
    table = read_table(ep.table_dir)
    early = table[(table["served_by"] == "challenger") & (table["timestamp"] >= start.rollout.stage_started_at)
                  & (table["timestamp"] <= advanced.updated_at)]
    assert len(early) >= 15
    assert any("stage 1 passed" in s for s in said) and any("stage 2 passed" in s for s in said), said
    assert said[-1] == "canary passed: v2 is champion"
