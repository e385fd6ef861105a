"""An A/B test ends with the user's decision rule (issue #15): labelled live requests per arm,
a metric, a significance level and a margin; the decision and its figures are written. The rule on
prepared tables first (both outcomes, too few samples), then once on a live endpoint: requests over
HTTP logged by the serving workers themselves, their labels landing later in the feed."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ml.serving import client
from ml.serving.endpoint_config import ABDecision, Rollout, ServedModel, promote, read_config, update_config
from ml.serving.inference_log import read_table
from ml.serving.rollouts.ab import AB, watch_ab
from tests.serving.serving_helpers import TOKEN, served


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


def _uninformed_model(path):
    """A model that knows nothing (always the training fraud rate): the champion a real challenger beats."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.dummy import DummyClassifier

    from ml.usecase import load_use_case
    from usecases.fraud.generate import generate_transactions

    uc = load_use_case("fraud")
    raw = generate_transactions(500, seed=5, days=7)
    X = uc.build_features(raw)[uc.feature_names]
    model = DummyClassifier(strategy="prior").fit(X, raw[uc.label])
    mlflow.sklearn.save_model(model, str(path), signature=infer_signature(X, model.predict_proba(X)[:, 1]))
    return path


@pytest.mark.slow
def test_a_live_ab_test_ends_by_its_rule_from_logged_requests_and_landed_labels(endpoint, models, tmp_path):
    from ml.monitoring.tables import labels_dir
    from usecases.fraud.generate import generate_transactions

    ep = endpoint
    champion, challenger = served(_uninformed_model(tmp_path / "prior"), "1"), served(models["v2"], "2")
    rule = ABDecision(metric="roc_auc", min_samples=150, alpha=0.05, margin=0.05, max_wait_s=120)

    def start(cfg):
        cfg = promote(cfg, champion)
        cfg.previous_champions = []
        return AB().go_live(cfg, challenger, Rollout(strategy="ab", challenger_percent=50, decision=rule,
                                                     evidence_table=str(ep.table_dir)))

    cfg = update_config(ep.endpoint_dir, start, by="test", reason="a/b on live traffic")
    client.wait_for_revision(ep.url, cfg.revision, timeout_s=60, confirmations=1, token=TOKEN)

    # live requests over HTTP: the workers route them (sticky 50/50) and log every answer
    raw = generate_transactions(800, seed=21, days=7)
    answers = []
    for start_row in range(0, len(raw), 100):
        resp = ep.post(client.request_rows(raw.iloc[start_row:start_row + 100], "fraud"))
        assert resp.status_code == 200, resp.text[:300]
        answers += resp.json()
    arms = pd.Series([a["served_by"] for a in answers]).value_counts().to_dict()
    assert set(arms) == {"champion", "challenger"} and min(arms.values()) >= rule.min_samples, arms
    deadline = time.monotonic() + 30
    while len(read_table(ep.table_dir)) < len(raw):  # the log is flushed off the request path
        assert time.monotonic() < deadline, "requests not in the inference table after 30 s"
        time.sleep(0.2)
    # ...and their ground truth lands later, as one partition of the labels feed next to the table
    feed = labels_dir(ep.table_dir)
    feed.mkdir(parents=True, exist_ok=True)
    raw[["transaction_id", "is_fraud"]].to_parquet(feed / "labels-day1.parquet", index=False)

    said: list[str] = []
    cfg = watch_ab(ep.endpoint_dir, challenger, by="test", echo=said.append, poll_s=0.5)
    assert cfg.champion.version == "2" and cfg.challenger is None and cfg.state == "serving"
    [written] = list((ep.endpoint_dir / "decisions").glob("ab-v2-*.json"))
    figures = json.loads(written.read_text())
    assert figures["winner"] == "challenger" and figures["samples"] == arms
    # the figures are each arm's roc_auc over what the endpoint logged and the labels that came back
    truth = dict(zip(raw["transaction_id"], raw["is_fraud"]))
    expected = {}
    for role in ("champion", "challenger"):
        mine = [a for a in answers if a["served_by"] == role]
        expected[role] = roc_auc_score([truth[a["transaction_id"]] for a in mine], [a["fraud_probability"] for a in mine])
    assert figures["values"] == pytest.approx(expected, abs=1e-6)
    assert figures["values"]["champion"] == pytest.approx(0.5) and figures["p_value"] < rule.alpha
    assert any(line.startswith("a/b decision: challenger") for line in said), said
    # the decision is applied on the live endpoint: the challenger now answers everything
    client.wait_for_revision(ep.url, cfg.revision, timeout_s=60, confirmations=1, token=TOKEN)
    assert {a["model_version"] for a in ep.post(client.request_rows(raw.head(40), "fraud")).json()} == {"2"}
