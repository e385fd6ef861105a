"""An A/B test ends with the user's decision rule (issue #15): labelled live requests per arm,
a metric, a significance level and a margin; the decision and its figures are written."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ml.serving.endpoint_config import ABDecision, Rollout, ServedModel, promote, read_config, update_config
from ml.serving.rollouts.ab import watch_ab


def _model(version: str) -> ServedModel:
    return ServedModel(name="fraud", version=version, uri=f"models:/fraud/{version}")


def _setup(tmp_path, rule: ABDecision, challenger_skill: float, n: int = 400):
    """An endpoint mid-A/B, with `n` answered requests per arm in its inference table and their labels."""
    ep, table = tmp_path / "endpoint", tmp_path / "tables" / "inference"
    started = time.time() - 5

    def change(cfg):
        cfg = promote(cfg, _model("1"))
        cfg.challenger = _model("2")
        cfg.rollout = Rollout(strategy="ab", challenger_percent=50, decision=rule, started_at=started,
                              evidence_table=str(table))
        cfg.state = "rolling_out"
        return cfg

    update_config(ep, change, by="test", reason="a/b")
    rng = np.random.default_rng(0)
    rows, labels = [], []
    for role, version, skill in (("champion", "1", 1.0), ("challenger", "2", challenger_skill)):
        y = rng.random(n) < 0.2
        score = 1 / (1 + np.exp(-(skill * (2 * y - 1) + rng.normal(0, 1.2, n))))
        for i in range(n):
            rid = f"{role}-{i}"
            rows.append({"request_id": rid, "served_by": role, "model_version": version, "probability": float(score[i]),
                         "prediction": int(score[i] >= 0.5), "latency_ms": 4.0, "timestamp": started + 1 + i * 1e-3})
            labels.append({"request_id": rid, "label": int(y[i])})
    table.mkdir(parents=True)
    pd.DataFrame(rows).to_json(table / "part-a.jsonl", orient="records", lines=True)
    (tmp_path / "tables" / "labels").mkdir()
    pd.DataFrame(labels).to_parquet(tmp_path / "tables" / "labels" / "feed.parquet")
    return ep


@pytest.mark.parametrize("skill, winner", [(2.0, "challenger"), (1.0, "champion")])
def test_the_decision_rule_promotes_only_a_significantly_better_challenger(tmp_path, skill, winner):
    ep = _setup(tmp_path, ABDecision(metric="roc_auc", min_samples=300, alpha=0.05, margin=0.01), skill)
    said = []
    cfg = watch_ab(ep, _model("2"), by="test", echo=said.append, poll_s=0.1)
    assert cfg.champion.version == ("2" if winner == "challenger" else "1") and cfg.challenger is None
    [written] = list((ep / "decisions").glob("ab-v2-*.json"))
    figures = json.loads(written.read_text())
    assert figures["winner"] == winner and figures["samples"] == {"champion": 400, "challenger": 400}
    assert 0 < figures["p_value"] <= 1
    # the figures are the arms' roc_auc on the labelled requests, as sklearn scores them
    logged = pd.read_json(ep.parent / "tables" / "inference" / "part-a.jsonl", lines=True)
    labelled = logged.merge(pd.read_parquet(ep.parent / "tables" / "labels" / "feed.parquet"), on="request_id")
    expected = {role: roc_auc_score(arm["label"], arm["probability"]) for role, arm in labelled.groupby("served_by")}
    assert figures["values"] == pytest.approx(expected)
    assert figures["difference"] == pytest.approx(expected["challenger"] - expected["champion"])
    # the rule: better by more than the margin AND significant at alpha; otherwise the champion stays
    wins = figures["difference"] > 0.01 and figures["p_value"] < 0.05
    assert wins == (winner == "challenger"), figures
    assert any(line.startswith(f"a/b decision: {winner}") for line in said)


def test_without_enough_labelled_samples_the_champion_stays(tmp_path):
    ep = _setup(tmp_path, ABDecision(metric="pr_auc", min_samples=1000, max_wait_s=1), 2.0, n=50)
    cfg = watch_ab(ep, _model("2"), by="test", echo=lambda *_: None, poll_s=0.1)
    assert cfg.champion.version == "1" and cfg.challenger is None
    assert "not enough labelled requests" in read_config(ep).reason
