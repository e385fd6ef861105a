"""Monitoring and the retraining trigger: drift injected with the generator's knob retrains; nothing else does."""

from __future__ import annotations

import pytest

from ml.monitoring import drift, tables
from ml.monitoring.job import run
from ml.monitoring.retrain_condition import decide
from ml.monitoring.settings import MonitorConfig, MonitorSettings
from ml.serving.client import sample_rows
from ml.serving.endpoint_config import Rollout, promote, update_config
from ml.serving.engine import Engine
from ml.usecase import load_use_case
from tests.serving.serving_helpers import served
from usecases.fraud.features import build_features
from usecases.fraud.generate import generate_transactions

FEATURES = load_use_case("fraud").feature_names

SETTINGS = MonitorSettings(config=MonitorConfig(window_rows=400, min_window_rows=100, retrain_violations=2, retrain_windows=3,
                                                min_labels=50))


@pytest.fixture(scope="module")
def reference():
    return build_features(generate_transactions(4000, seed=42, days=60))[FEATURES]


def _engine(tmp_path, models, shadow: bool = False) -> Engine:
    ep = tmp_path / "endpoint"

    def change(cfg):
        cfg = promote(cfg, served(models["v1"], "1"))
        if shadow:
            cfg.challenger = served(models["v2"], "2")
            cfg.rollout = Rollout(strategy="shadow")
        return cfg

    update_config(ep, change, by="test", reason="setup")
    engine = Engine(None, tmp_path / "inference", env="test")
    engine.endpoint_dir = ep
    engine.refresh()
    return engine


def _traffic(engine: Engine, windows: list[float], seed: int = 100) -> list[str]:
    ids = []
    for k, knob in enumerate(windows):
        rows = sample_rows(400, seed=seed + k, drift=knob)
        for i in range(0, len(rows), 100):
            ids += [o["transaction_id"] for o in engine.score(rows[i:i + 100])]
    engine.close()
    return ids


def _monitor(tmp_path, engine, reference):
    return run(tmp_path / "inference", tmp_path / "metrics", SETTINGS, env="test",
               endpoint_dir=engine.endpoint_dir, reference=reference)


def test_drift_metrics_separate_shifted_from_fresh_samples(reference):
    fresh = build_features(generate_transactions(800, seed=5, days=60))[FEATURES]
    shifted = build_features(generate_transactions(800, seed=5, days=60, drift=1.5))[FEATURES]
    for f in ("amount", "distance_from_home_km"):
        assert drift.psi(reference[f], fresh[f]) < 0.1 < 0.2 < drift.psi(reference[f], shifted[f])
        assert drift.ks(reference[f], fresh[f])[0] < drift.ks(reference[f], shifted[f])[0]
        assert drift.js(reference[f], fresh[f]) < drift.js(reference[f], shifted[f])
    assert drift.psi(reference["card_present"], shifted["card_present"]) > drift.psi(reference["card_present"], fresh["card_present"])


@pytest.mark.slow
def test_injected_drift_triggers_retraining(tmp_path, models, reference):
    engine = _engine(tmp_path, models)
    _traffic(engine, [0.0, 1.5, 1.5])
    result = _monitor(tmp_path, engine, reference)
    assert result["violated_windows"] == [1, 2]
    outcome, detail = decide(tmp_path / "metrics", 2, 3)
    assert outcome is True and "feature drift" in detail and "amount" in detail
    html = open(result["report"]).read()
    assert "<img src='data:image/png;base64," in html and "Champion vs challenger" in html


@pytest.mark.slow
def test_nothing_else_triggers_retraining(tmp_path, models, reference):
    # clean traffic, a shadow challenger scoring every request, labels arriving, and one odd window
    engine = _engine(tmp_path, models, shadow=True)
    ids = _traffic(engine, [0.0, 0.0, 1.5, 0.0])
    labels = generate_transactions(400, seed=100, drift=0.0, days=7)[["transaction_id", "is_fraud"]]
    lab_dir = tables.labels_dir(tmp_path / "inference")
    lab_dir.mkdir(parents=True)
    labels.to_parquet(lab_dir / "labels.parquet")
    result = _monitor(tmp_path, engine, reference)
    assert result["violated_windows"] == [2]
    outcome, detail = decide(tmp_path / "metrics", 2, 3)
    assert outcome is False, detail
    metrics = tables.read_metrics(tmp_path / "metrics")
    q = metrics[(metrics["metric"] == "roc_auc") & (metrics["window"] == 0)]
    assert set(q["served_by"]) == {"champion", "shadow"}  # quality from joined labels, champion vs shadow
    assert (q["value"] > 0.7).all()
    assert set(ids[:1]) <= set(tables.read_labels(lab_dir)["request_id"])


@pytest.mark.slow
def test_monitoring_and_condition_tasks_in_a_job_run(tmp_path, models):
    """The two task modules as the bundle runner starts them, over an env's storage."""
    import json
    import os
    import subprocess
    import sys

    from core.contract import Credential, EnvironmentOutputs, storage_layout
    from tests.serving.serving_helpers import ROOT

    storage = tmp_path / "storage"
    layout = storage_layout(storage.as_uri())
    outputs = EnvironmentOutputs(env="mon", platform="local", tracking_uri="http://127.0.0.1:1", serving_url="http://127.0.0.1:1",
                                 storage_uri=storage.as_uri(), storage=layout,
                                 credentials={"ci": Credential(username="ci", password="x", token="t")})
    (tmp_path / "outputs.json").write_text(outputs.model_dump_json())
    ep, table = storage / "endpoint", storage / "tables" / "inference"
    update_config(ep, lambda c: promote(c, served(models["v1"], "1")), by="test", reason="setup")
    engine = Engine(None, table, env="mon")
    engine.endpoint_dir = ep
    engine.refresh()
    _traffic(engine, [0.0, 1.5, 1.5])
    monitor_file = tmp_path / "monitoring.yml"
    monitor_file.write_text("resources:\n  monitors:\n    m:\n      endpoint: e\n      config: {window_rows: 400, min_window_rows: 100,"
                            " retrain_violations: 2, retrain_windows: 3}\n")
    values = tmp_path / "values"
    values.mkdir()

    # the champion's training data (in an env the monitor restores it from its DVC data version)
    reference_file = tmp_path / "gold.parquet"
    build_features(generate_transactions(4000, seed=42, days=60)).to_parquet(reference_file)

    def task(name, module, *extra):
        env = {**os.environ, "CONVEYOR_ENV_OUTPUTS": str(tmp_path / "outputs.json"), "CONVEYOR_ENV": "mon",
               "CONVEYOR_TASK": name, "CONVEYOR_TASK_VALUES_DIR": str(values), "CONVEYOR_JOB": "retraining_job"}
        proc = subprocess.run([sys.executable, "-m", module, "--monitor-file", str(monitor_file), *extra], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        return json.loads((values / f"{name}.json").read_text())

    mon = task("monitor", "ml.monitoring.job", "--reference", str(reference_file))
    assert mon["violated_windows"] == [1, 2]
    assert (storage / "tables" / "metrics" / "reports" / "latest.html").is_file()
    assert task("drift_sustained", "ml.monitoring.retrain_condition")["outcome"] is True
