"""Batch scoring uses what the endpoint's champion really is (issue #15): while a canary runs, the
registry alias may already name the new version, but callers still get answers from the old one."""

from __future__ import annotations

from ml.inference.batch_score import served_champion
from ml.serving.endpoint_config import Rollout, ServedModel, promote, update_config


def _model(name: str, version: str) -> ServedModel:
    return ServedModel(name=name, version=version, uri=f"models:/{name}/{version}")


def test_batch_scoring_follows_the_endpoint_champion_not_the_challenger(tmp_path):
    root = tmp_path / "endpoint"

    def rolling(cfg):
        cfg = promote(cfg, _model("fraud-detector-prod", "3"))
        cfg.challenger = _model("fraud-detector-prod", "4")
        cfg.rollout = Rollout(strategy="canary")
        return cfg

    update_config(root, rolling, by="test", reason="canary of v4")
    assert served_champion(root, "fraud-detector-prod") == "3"
    assert served_champion(root, "diabetes-progression-prod") is None  # not served here: the alias decides
