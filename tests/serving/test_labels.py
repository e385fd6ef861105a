"""Labels come back (issue #15): a labels feed that lands after the predictions is joined to the
inference table into quality metrics per window and model; a feed with unknown request ids or
duplicate labels stops the monitoring run with one clear line."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from ml.monitoring import tables
from ml.monitoring.compute import compute
from ml.monitoring.job import run
from ml.monitoring.settings import MonitorConfig, MonitorSettings
from ml.usecase import load_use_case
from tests.serving.serving_helpers import ROOT
from tests.serving.test_monitoring import _engine, _traffic
from usecases.fraud.generate import generate_transactions

FRAUD = load_use_case("fraud")
SETTINGS = MonitorSettings(config=MonitorConfig(window_rows=400, min_window_rows=100, min_labels=50))


@pytest.fixture(scope="module")
def reference():
    return FRAUD.build_features(generate_transactions(3000, seed=42, days=60))[FRAUD.feature_names]


def _land(feed, name: str, frame: pd.DataFrame) -> None:
    """One partition of the labels feed, as the team's labelling process drops it."""
    feed.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(feed / f"{name}.parquet", index=False)


@pytest.mark.slow
def test_labels_landing_later_become_quality_metrics_per_window(tmp_path, models, reference):
    engine = _engine(tmp_path, models)
    ids = _traffic(engine, [0.0, 0.0], seed=300)  # 800 requests, two windows of 400
    truth = pd.concat([generate_transactions(400, seed=300 + k) for k in range(2)])[["transaction_id", "is_fraud"]]
    assert set(truth["transaction_id"]) == set(ids)
    feed = tables.labels_dir(tmp_path / "inference")
    # the labels arrive in two partitions, named as the use case names them (id column, label)
    _land(feed, "day-1", truth.iloc[:500])
    _land(feed, "day-2", truth.iloc[500:])
    result = run(tmp_path / "inference", tmp_path / "metrics", SETTINGS, env="test", endpoint_dir=engine.endpoint_dir,
                 reference=reference, uc=FRAUD)
    assert result["labelled"] == 800
    metrics = tables.read_metrics(tmp_path / "metrics")
    quality = metrics[metrics["metric"].isin(["roc_auc", "pr_auc", "labeled"]) & (metrics["served_by"] == "champion")]
    by = quality.pivot_table(index="window", columns="metric", values="value")
    assert list(by.index) == [0, 1] and (by["labeled"] == 400).all()
    assert (by["roc_auc"] > 0.75).all() and (by["pr_auc"] > 0.1).all()
    html = open(result["report"]).read()
    assert "roc_auc from labels, per model" in html and "800 labelled requests" in html


def test_regression_quality_is_rmse_and_mae():
    n = 120
    table = pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "timestamp": range(n), "served_by": "champion",
                          "model_version": "1", "prediction": [100.0 + (i % 7) for i in range(n)], "probability": None,
                          "latency_ms": 5.0, "f_bmi": [0.01 * i for i in range(n)]})
    labels = pd.DataFrame({"request_id": table["request_id"], "label": table["prediction"] + 10.0})
    settings = MonitorSettings(config=MonitorConfig(window_rows=60, min_window_rows=50, min_labels=50))
    settings.thresholds.max_rmse = 5.0
    metrics, windows = compute(table, pd.DataFrame({"bmi": [0.01 * i for i in range(n)]}), settings,
                               labels=labels, task="regression")
    champion = metrics[metrics["served_by"] == "champion"].pivot_table(index="window", columns="metric", values="value")
    assert champion["rmse"].round(6).tolist() == [10.0, 10.0] and champion["mae"].round(6).tolist() == [10.0, 10.0]
    assert "roc_auc" not in champion.columns
    assert windows["violated"].all() and "champion quality: rmse=10.000 > 5.0" in windows["reasons"].iloc[0]


def test_labels_keyed_by_entity_and_event_time_join_too():
    table = pd.DataFrame({"request_id": ["a", "b", "c"], "served_by": "champion", "customer_id": ["c1", "c1", "c2"],
                          "txn_timestamp": ["2026-01-01T10:00:00", "2026-01-01T11:00:00", "2026-01-01T10:00:00"]})
    feed = pd.DataFrame({"customer_id": ["c1", "c2"], "timestamp": pd.to_datetime(["2026-01-01 11:00", "2026-01-01 10:00"]),
                         "label": [1, 0]})
    joined = tables.join_keys(feed, table, "customer_id", "timestamp")
    assert dict(zip(joined["request_id"], joined["label"])) == {"b": 1, "c": 0}


def test_labels_for_an_empty_inference_table_are_one_clear_error(tmp_path):
    """Whoever joins the feed (monitoring, a fresh training window, the labelled_traffic source):
    labels but no logged request is a LabelsError, also for a feed keyed by entity + event time."""
    feed = tmp_path / "labels"
    _land(feed, "day-1", pd.DataFrame({"customer_id": ["c1"], "timestamp": pd.to_datetime(["2026-01-01 11:00"]),
                                       "is_fraud": [1]}))
    with pytest.raises(tables.LabelsError, match=r"labels feed .*labels: 1 labels but the inference table is empty"):
        tables.joined_labels(feed, pd.DataFrame(), FRAUD)
    assert tables.joined_labels(tmp_path / "no-feed", pd.DataFrame(), FRAUD).empty


@pytest.mark.parametrize("bad, message", [
    ("duplicates", "2 request ids are labelled more than once (e.g. t"),
    ("unknown", "3 of 403 request ids are not in the inference table (e.g. nope-0, nope-1, nope-2)"),
])
def test_a_bad_labels_feed_is_one_clear_line(tmp_path, reference, bad, message):
    """As a user runs it: `python -m ml.monitoring.job` over a table and a feed; exit 2, one `error:` line."""
    raw = generate_transactions(400, seed=5)
    table = tmp_path / "inference"
    table.mkdir()
    logged = pd.DataFrame({"request_id": raw["transaction_id"], "timestamp": range(len(raw)), "served_by": "champion",
                           "model_version": "1", "probability": 0.1, "prediction": 0, "latency_ms": 3.0,
                           **{f"f_{c}": col for c, col in FRAUD.build_features(raw)[FRAUD.feature_names].items()}})
    logged.to_json(table / "part-x.jsonl", orient="records", lines=True)
    labels = raw[["transaction_id", "is_fraud"]]
    if bad == "duplicates":
        labels = pd.concat([labels, labels.head(2).assign(is_fraud=1)])
    else:
        labels = pd.concat([labels, pd.DataFrame({"transaction_id": [f"nope-{i}" for i in range(3)], "is_fraud": 0})])
    _land(tables.labels_dir(table), "feed", labels)
    ref = tmp_path / "reference.parquet"
    reference.to_parquet(ref)
    proc = subprocess.run([sys.executable, "-m", "ml.monitoring.job", "--use-case", "fraud", "--inference-table", str(table),
                           "--metric-table", str(tmp_path / "metrics"), "--reference", str(ref)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: labels feed ") and message in lines[0], proc.stderr
    assert not (tmp_path / "metrics" / "drift").exists()  # nothing half-computed was appended


def test_labelled_traffic_is_a_data_source_in_the_raw_schema(tmp_path):
    """What a retrain learns from: answered requests + their labels, as the use case's raw rows."""
    import time

    from ml.data import sources
    from ml.usecase.contract import SourceSpec

    raw = generate_transactions(300, seed=8)
    table = tmp_path / "tables" / "inference"
    table.mkdir(parents=True)
    logged = raw.drop(columns=["is_fraud", "transaction_id", "timestamp"]).assign(
        request_id=raw["transaction_id"], txn_timestamp=raw["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.000"),
        served_by="champion", model_version="1", probability=0.2, prediction=0, latency_ms=3.0, timestamp=time.time())
    shadow = logged.head(50).assign(served_by="shadow", model_version="2")  # the same requests, not new rows
    pd.concat([logged, shadow]).to_json(table / "part-x.jsonl", orient="records", lines=True)
    _land(tables.labels_dir(table), "feed", raw[["transaction_id", "is_fraud"]].head(200))
    snap = sources.snapshot(FRAUD, SourceSpec(kind="labelled_traffic", path=str(table)), sources.Where(ROOT))
    assert len(snap.frame) == 200 and list(snap.frame.columns) == list(FRAUD.spec.dataset.columns)
    expected = raw.head(200).set_index("transaction_id").sort_index()
    got = snap.frame.set_index("transaction_id").sort_index()
    assert (got["is_fraud"] == expected["is_fraud"]).all() and (got["amount"] == expected["amount"]).all()
    assert (got["timestamp"] == expected["timestamp"]).all()
    assert snap.manifest["labels"] == 200 and snap.manifest["requests_logged"] == 350
