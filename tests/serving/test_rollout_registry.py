"""Rollout strategies as registered objects: names validated by the registry, and a strategy
registered from outside is used by routing and by the deploy step — the checklist of
`ml/serving/README.md`, followed once."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from core.errors import ConveyorError
from ml.serving import client, loadtest, rollouts
from ml.serving import deploy as deploy_mod
from ml.serving.endpoint_config import (
    CanaryStage,
    EndpointConfig,
    Rollout,
    ServedModel,
    history,
    promote,
    read_config,
    update_config,
)
from ml.serving.endpoint_settings import load_endpoint_settings, settings_from_resource
from ml.serving.engine import Engine
from ml.serving.errors import EndpointSettingsError
from ml.serving.models import LoadedModel
from ml.serving.rollouts.base import RolloutStrategy
from ml.serving.update_endpoint import parser

SERVING = Path(__file__).resolve().parents[2] / "ml" / "serving"


class Everyone(RolloutStrategy):
    """The throwaway strategy of the checklist: all traffic to the challenger, promoted once live."""

    name = "everyone"
    summary = "all traffic to the challenger at once"

    def __init__(self):
        self.waited_for: list[str] = []

    def challenger_percent(self, cfg, now):
        return 100.0

    def after_go_live(self, endpoint_dir, model, *, by, echo):
        self.waited_for.append(model.version)
        return update_config(endpoint_dir, lambda c: promote(c, model), by=by, reason="everyone: promoted")


@pytest.fixture
def everyone(monkeypatch):
    strategy = Everyone()
    monkeypatch.setitem(rollouts.REGISTRY, strategy.name, strategy)  # the one registry line
    return strategy


@pytest.fixture
def no_server(monkeypatch):
    """The deploy step without an endpoint: every wait succeeds and the SLA load test is fast."""
    fast = loadtest.LoadResult(requests=100, errors=0, seconds=1.0, latencies_ms=[1.0] * 100)
    monkeypatch.setattr(loadtest, "run", lambda *a, **k: fast)
    monkeypatch.setattr(client, "wait_for_revision", lambda *a, **k: {})
    monkeypatch.setattr(client, "sample_rows", lambda n: [{}])


def _spec(version: str) -> ServedModel:
    return ServedModel(name="fraud_detector", version=version, uri=f"models:/fraud_detector/{version}")


class _Constant:
    def __init__(self, p: float):
        self.p = p

    def predict_proba(self, frame):
        return np.column_stack([np.full(len(frame), 1 - self.p), np.full(len(frame), self.p)])


def _loader(spec: ServedModel) -> LoadedModel:
    return LoadedModel(spec=spec, model=_Constant(0.1 * int(spec.version)), columns=None, has_proba=True)


# ---- the registry ----------------------------------------------------------------------------
def test_builtin_strategies_are_registered_and_unknown_names_suggest_the_nearest():
    assert rollouts.names() == ["ab", "canary", "direct", "shadow"]
    assert rollouts.default().name == rollouts.DEFAULT == Rollout().strategy == "direct"
    with pytest.raises(rollouts.UnknownRolloutStrategy, match=r"'canery' \(did you mean 'canary'\?\); known: ab, canary"):
        rollouts.get("canery")
    assert issubclass(rollouts.UnknownRolloutStrategy, ConveyorError)
    with pytest.raises(ValidationError, match="did you mean 'shadow'"):
        Rollout(strategy="shadwo")
    with pytest.raises(EndpointSettingsError, match=r"rollout.strategy: unknown rollout strategy 'bluegreen'; known"):
        settings_from_resource("fraud_endpoint", {"rollout": {"strategy": "bluegreen"}})


def test_a_resource_without_strategy_gets_the_one_its_shape_implies():
    split = {"served": [{"alias": "champion", "traffic_percentage": 80}, {"alias": "challenger", "traffic_percentage": 20}]}
    assert settings_from_resource("e", split).rollout.model_dump(include={"strategy", "challenger_percent"}) == \
        {"strategy": "ab", "challenger_percent": 20}
    assert settings_from_resource("e", {**split, "shadow": "candidate"}).rollout.strategy == "shadow"
    assert settings_from_resource("e", {}).rollout.strategy == "direct"
    explicit = {**split, "rollout": {"strategy": "canary"}}
    assert settings_from_resource("e", explicit).rollout.strategy == "canary"


def test_challenger_share_is_the_strategy_s():
    cfg = EndpointConfig(champion=_spec("1"), challenger=_spec("2"), updated_at=1000.0)
    cfg.rollout = Rollout(strategy="ab", challenger_percent=30)
    assert cfg.canary_percent() == 30
    cfg.rollout = Rollout(strategy="canary", stages=[CanaryStage(percent=10, seconds=5), CanaryStage(percent=50, seconds=5)],
                          started_at=1000.0)
    # a canary's share is its current stage's, whatever the clock says: the deploy step advances
    # the stage on evidence (tests/serving/test_canary_evidence.py)
    assert [cfg.canary_percent(now=t) for t in (1001, 1006, 1020)] == [10, 10, 10]
    cfg.rollout.stage = 1
    assert cfg.canary_percent(now=1001) == 50
    for name in ("direct", "shadow"):
        cfg.rollout = Rollout(strategy=name, challenger_percent=30)
        assert cfg.canary_percent() == 0
    assert rollouts.get("shadow").mirrors and not rollouts.get("ab").mirrors
    assert rollouts.get("canary").guard_bounds(cfg.rollout) is cfg.rollout.guard
    assert rollouts.get("ab").guard_bounds(cfg.rollout) is None


def test_no_strategy_name_is_compared_outside_the_strategy_modules():
    compare = re.compile(r"strategy\s*(==|!=|in|not in)\s*[(\[\"']")
    offenders = [f"{p.name}:{n}" for p in SERVING.glob("*.py")
                 for n, line in enumerate(p.read_text().splitlines(), 1) if compare.search(line)]
    assert offenders == []


# ---- a new strategy, registered once, used everywhere ------------------------------------------
def test_registered_strategy_is_accepted_by_config_settings_and_the_task(everyone):
    assert Rollout(strategy="everyone").strategy == "everyone"
    assert settings_from_resource("e", {"rollout": {"strategy": "everyone"}}).rollout.strategy == "everyone"
    assert parser().parse_args(["--model-name", "m", "--strategy", "everyone"]).strategy == "everyone"
    with pytest.raises(SystemExit):
        parser().parse_args(["--model-name", "m", "--strategy", "everyon"])


def test_registered_strategy_routes_the_engine(everyone, tmp_path):
    update_config(tmp_path, lambda c: EndpointConfig(champion=_spec("1"), challenger=_spec("2"),
                                                      rollout=Rollout(strategy="everyone"), state="rolling_out"),
                  by="test", reason="everyone")
    engine = Engine(None, None, loader=_loader)
    try:
        engine.endpoint_dir = tmp_path  # followed by hand: no watcher thread racing the test
        assert engine.refresh()
        out = engine.score(client.sample_rows(20))
    finally:
        engine.close()
    assert {o["served_by"] for o in out} == {"challenger"} and {o["model_version"] for o in out} == {"2"}
    assert engine.status()["challenger_percent"] == 100


def test_registered_strategy_goes_live_through_the_deploy_step(everyone, no_server, tmp_path, monkeypatch):
    update_config(tmp_path, lambda c: promote(c, _spec("1")), by="test", reason="v1")

    seen: list[EndpointConfig] = []
    original = everyone.go_live
    monkeypatch.setattr(everyone, "go_live", lambda cfg, model, rollout: seen.append(cfg) or original(cfg, model, rollout))
    cfg = deploy_mod.deploy(_spec("2"), endpoint_dir=tmp_path, serving_url="http://unused", token="t",
                            rollout=Rollout(strategy="everyone"), echo=lambda *_: None)
    assert len(seen) == 1 and everyone.waited_for == ["2"]
    assert cfg.champion.version == "2" and cfg.reason == "everyone: promoted"
    went_live = [h for h in history(tmp_path) if h.reason.startswith("everyone rollout")]
    assert went_live and went_live[0].challenger.version == "2" and went_live[0].state == "rolling_out"
    assert read_config(tmp_path).previous_champions[-1].version == "1"


def test_first_model_goes_live_with_the_default_strategy(everyone, no_server, tmp_path):
    started = time.time()
    cfg = deploy_mod.deploy(_spec("1"), endpoint_dir=tmp_path, serving_url="http://unused", token="t",
                            rollout=Rollout(strategy="everyone"), echo=lambda *_: None)
    assert cfg.champion.version == "1" and cfg.challenger is None and everyone.waited_for == []
    assert cfg.reason.startswith("direct rollout") and cfg.updated_at >= started


def test_an_endpoint_named_by_key_is_the_default_only_if_it_says_so(tmp_path):
    one = tmp_path / "diabetes.yml"
    one.write_text("resources:\n  serving_endpoints:\n    diabetes_endpoint: {use_case: diabetes}\n")
    assert load_endpoint_settings(one, key="diabetes_endpoint").default is False  # served at /diabetes_endpoint/
    assert load_endpoint_settings(one).default is True  # no key: the file's endpoint is the env's default
    marked = tmp_path / "endpoint.yml"
    marked.write_text("resources:\n  serving_endpoints:\n    fraud_endpoint: {use_case: fraud, default: true}\n")
    assert load_endpoint_settings(marked, key="fraud_endpoint").default is True
