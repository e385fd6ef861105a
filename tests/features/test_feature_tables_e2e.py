"""Refresh → offline version + online values → point-in-time training → serving lookups logged.

One env (the session's real MLflow server, real DVC remote in env storage, the real tasks as
subprocesses, the serving engine in-process on the model the job registered); 4000 rows.
Plus: the refresh job writing the PostgreSQL online store the platform names (real server), the
endpoint's /status lookup counts, and the looked-up features in monitoring's drift.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml

from core.feature_tables import FeatureTableSpec, definition_key, dump_definition
from core.storage import Blobs
from tests.ml.harness import MlEnv, new_run_id

ROOT = Path(__file__).resolve().parents[2]
KEY = "customer_aggregates"
SPEC = FeatureTableSpec.model_validate(
    yaml.safe_load((ROOT / "resources" / "features.yml").read_text())["resources"]["feature_tables"][KEY])


ENV = "features"  # its own env name on the shared server: its model is fraud-detector-features


@pytest.fixture(scope="module")
def mlflow_uri(mlflow_server):
    return mlflow_server.uri


def deploy_definition(env: MlEnv) -> None:
    """What `bundle deploy` of resources.feature_tables writes (tests/features/test_definition.py deploys it for real)."""
    Blobs(env.outputs.storage.root).write_text(definition_key(KEY), dump_definition(KEY, SPEC))


def refresh(env: MlEnv, *args: str):
    return env.run_task(new_run_id(), "refresh", "ml.features.refresh", *args, job="feature_refresh_job")


@pytest.fixture(scope="module")
def refreshed(mlflow_uri, tmp_path_factory):
    env = MlEnv(ENV, tmp_path_factory.mktemp("env-features"), mlflow_uri)
    deploy_definition(env)
    first = env.run_task(new_run_id(), "ingest", "ml.data.ingest", "--use-case", "fraud", "--rows", "4000")
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"feature table '{KEY}' was never refreshed" in first.stderr  # the first ingest: defaults, said so
    run_id = new_run_id()
    proc = env.run_task(run_id, "refresh", "ml.features.refresh", "--table", KEY, job="feature_refresh_job")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return env, env.task_values(run_id, "refresh")["version"]


def test_refresh_writes_a_dvc_version_with_lineage_and_the_online_store(refreshed):
    env, version = refreshed
    root = Path(env.outputs.storage.root.removeprefix("file://"))
    ws = root / "dvc-workspaces" / "feature-tables"
    pointer = yaml.safe_load((ws / "tables" / f"{KEY}.parquet.dvc").read_text())
    assert pointer["outs"][0]["md5"] == version
    assert (root / "dvc" / "files" / "md5" / version[:2] / version[2:]).is_file()  # pushed to the env's remote
    lineage = yaml.safe_load((ws / "tables" / f"{KEY}.lineage.json").read_text())
    fraud_lock = yaml.safe_load((root / "dvc-workspaces" / "fraud" / "dvc.lock").read_text())
    silver = next(o["md5"] for s in fraud_lock["stages"].values() for o in s["outs"] if o["path"] == "data/silver.parquet")
    assert lineage["source"]["md5"] == silver and lineage["version"] == version and lineage["definition"]["ttl"] == "30d"
    with sqlite3.connect(root / "feature-store" / "online" / f"{KEY}.sqlite") as con:
        entities = con.execute("SELECT count(*) FROM features").fetchone()[0]
        assert dict(con.execute("SELECT k, v FROM meta").fetchall())["version"] == version
    assert entities == lineage["entities"] > 50


def test_the_refresh_job_writes_the_networked_store_the_platform_names(refreshed, pg, monkeypatch):
    """As on kubernetes: CONVEYOR_ONLINE_STORE_URL (no password) + PGPASSWORD → the refresh writes
    PostgreSQL, and serving lookups read it with the same rules."""
    import json
    import subprocess
    import sys

    from sqlalchemy import text

    from ml.features import online
    from ml.features.stores import open_store
    from tests.ml import pgserver

    env, version = refreshed
    run_id = new_run_id()
    task_env = {**env.task_env(run_id, "refresh", "feature_refresh_job"), "CONVEYOR_ONLINE_STORE_URL": pg.url,
                "PGPASSWORD": pgserver.PASSWORD}
    proc = subprocess.run([sys.executable, "-m", "ml.features.refresh", "--table", KEY], cwd=env.project, env=task_env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert env.task_values(run_id, "refresh")["version"] == version  # the same data: the same version
    assert pgserver.PASSWORD not in proc.stdout + proc.stderr
    root = Path(env.outputs.storage.root.removeprefix("file://"))
    with sqlite3.connect(root / "feature-store" / "online" / f"{KEY}.sqlite") as con:
        known, stamp, payload = con.execute("SELECT entity, event_ts, payload FROM features ORDER BY event_ts DESC LIMIT 1").fetchone()
        entities = con.execute("SELECT count(*) FROM features").fetchone()[0]

    monkeypatch.setenv("PGPASSWORD", pgserver.PASSWORD)
    store = open_store(None, pg.url)
    rows = [{"customer_id": known}, {"customer_id": "never-seen"}]
    frame = online.Lookups(store, {KEY: list(SPEC.features)}, {KEY: None}, clock=lambda: stamp + 60.0).augment(rows)
    with store.engine().connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM conveyor_online_features WHERE table_key = :k"), {"k": KEY}).scalar()
    store.close()
    assert stored == entities  # every entity the SQLite store of the same refresh has
    assert [r["fs_customer_aggregates"] for r in rows] == [f"hit@{version}", f"missing@{version}"]
    assert frame["mean_amount_30d"].iloc[0] == pytest.approx(json.loads(payload)["mean_amount_30d"])
    assert frame["mean_amount_30d"].iloc[1] == 60.0  # the definition comes from the store itself (none deployed here)


def test_bad_refreshes_say_what_to_do(refreshed, mlflow_uri, tmp_path):
    env, _ = refreshed
    unknown = refresh(env, "--table", "customer_aggregatez")
    assert unknown.returncode == 1 and "is not deployed to this environment" in unknown.stderr
    fresh = MlEnv("staging", tmp_path / "env", mlflow_uri)
    deploy_definition(fresh)
    missing = refresh(fresh)
    assert missing.returncode == 1
    assert "use case 'fraud' has no silver data in env 'staging' yet (run its ingest first" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.fixture(scope="module")
def trained(refreshed):
    env, version = refreshed
    run_id = new_run_id()  # ingest → train (validate_data, GX on the same columns, is the training job test's)
    for task, module, args in (("ingest", "ml.data.ingest", ["--rows", "4000"]), ("train", "ml.training.train", [])):
        proc = env.run_task(run_id, task, module, "--use-case", "fraud", *args)
        assert proc.returncode == 0, f"{task}:\n{proc.stderr[-3000:]}"
    return env, version, run_id


def test_training_joins_the_pinned_version_point_in_time_and_the_model_records_it(trained):
    import mlflow

    from ml.data.versioning import read_version, workspace_for
    from ml.features import offline, pit
    from ml.features.compute import compute_table

    env, version, run_id = trained
    values = env.task_values(run_id, "train")
    mlflow.set_tracking_uri(env.tracking_uri)
    mv = mlflow.MlflowClient().get_model_version(values["model_name"], values["model_version"])
    assert mv.tags["feature_tables"] == f"{KEY}@{version}" and mv.tags[f"feature_table.{KEY}"] == version

    ctx = type("Ctx", (), {"outputs": env.outputs, "storage_path": lambda self, n: Path(getattr(env.outputs.storage, n).removeprefix("file://"))})()
    ws, remote = workspace_for(ctx, "fraud")
    gold = pd.read_parquet(read_version(ws, remote, env.task_values(run_id, "ingest")["data_version"]))
    table, spec = offline.read(*workspace_for(ctx, "feature-tables"), KEY, version)
    silver = pd.read_parquet(read_version(ws, remote, yaml.safe_load((ws / "dvc.lock").read_text())["stages"]["silver"]["outs"][0]["md5"]))
    expected = pit.as_of(silver, table, spec, ["txn_count_24h", "mean_amount_30d"], "timestamp")
    merged = gold.merge(expected[["transaction_id", "txn_count_24h", "mean_amount_30d"]], on="transaction_id", suffixes=("", "_pit"))
    assert len(merged) == len(gold) and (merged["mean_amount_30d"] == merged["mean_amount_30d_pit"]).all()
    assert (gold["txn_count_24h"] > 0).mean() > 0.1  # looked up, not the defaults
    # and no row saw its own transaction: recomputing from the rows themselves (a leak) gives different values
    leaky = compute_table(KEY, spec, silver).rename(columns={"mean_amount_30d": "leaky"})
    assert (gold.sort_values(["customer_id", "timestamp"])["mean_amount_30d"].to_numpy()
            != leaky.sort_values(["customer_id", "timestamp"])["leaky"].to_numpy()).mean() > 0.5


def _engine(trained, tmp_path, monkeypatch):
    """The serving engine in-process on the model the job registered, reading the env's online store."""
    import mlflow

    from ml.features import online
    from ml.serving.endpoint_config import promote, update_config
    from ml.serving.engine import Engine
    from tests.serving.serving_helpers import served

    env, version, run_id = trained
    root = Path(env.outputs.storage.root.removeprefix("file://"))
    monkeypatch.setenv("CONVEYOR_ONLINE_STORE_ROOT", str(root))
    online._CACHE.clear()
    mlflow.set_tracking_uri(env.tracking_uri)
    values = env.task_values(run_id, "train")
    path = mlflow.artifacts.download_artifacts(values["model_uri"], dst_path=str(tmp_path / "model"))
    update_config(tmp_path / "endpoint", lambda cfg: promote(cfg, served(Path(path), values["model_version"],
                                                                          values["model_name"])), by="test", reason="setup")
    engine = Engine(None, tmp_path / "inference", env=ENV)
    engine.endpoint_dir = tmp_path / "endpoint"
    engine.refresh()
    return engine, root


def test_serving_looks_features_up_by_entity_logs_them_and_survives_a_missing_store(trained, tmp_path, monkeypatch):
    from ml.features import online
    from ml.serving.client import sample_rows
    from ml.serving.inference_log import read_table

    _, version, _ = trained
    engine, root = _engine(trained, tmp_path, monkeypatch)
    with sqlite3.connect(root / "feature-store" / "online" / f"{KEY}.sqlite") as con:
        known, stamp, payload = con.execute("SELECT entity, event_ts, payload FROM features ORDER BY event_ts DESC LIMIT 1").fetchone()
    rows = sample_rows(2, seed=5)
    rows[0]["customer_id"], rows[1]["customer_id"] = known, "never-seen"
    from ml.usecase import load_use_case

    now = stamp + 3600.0  # the online value is an hour old at request time
    online.for_use_case(load_use_case("fraud")).clock = lambda: now
    try:
        answers = engine.score([dict(r) for r in rows])
        assert len(answers) == 2
        (root / "feature-store" / "online" / f"{KEY}.sqlite").rename(tmp_path / "away.sqlite")  # the store is down
        assert len(engine.score([dict(rows[0])])) == 1  # defaults, not a 5xx
        monkeypatch.setenv("CONVEYOR_ONLINE_STORE_POLICY", "reject")
        online._CACHE.clear()
        online.for_use_case(load_use_case("fraud")).clock = lambda: now
        with pytest.raises(online.FeatureStoreUnavailable, match="online store unavailable"):
            engine.score([dict(rows[0])])
        # /status: how many rows of this endpoint got what, since it started (the 503 scored nothing)
        assert engine.status()["feature_lookups"] == {KEY: {"hit": 1, "missing": 1, "stale": 0, "unavailable": 1,
                                                             "defaults": 2}}
    finally:
        engine.close()
        online._CACHE.clear()
        if (tmp_path / "away.sqlite").exists():
            (tmp_path / "away.sqlite").rename(root / "feature-store" / "online" / f"{KEY}.sqlite")
    logged = read_table(tmp_path / "inference")
    import json

    hit, miss, down = logged.iloc[0], logged.iloc[1], logged.iloc[2]
    assert hit["fs_customer_aggregates"] == f"hit@{version}"
    assert hit["f_mean_amount_30d"] == pytest.approx(json.loads(payload)["mean_amount_30d"])
    assert miss["fs_customer_aggregates"] == f"missing@{version}" and miss["f_mean_amount_30d"] == 60.0
    assert miss["f_txn_count_24h"] == 0.0
    assert down["fs_customer_aggregates"] == "unavailable" and down["f_mean_amount_30d"] == 60.0


def test_monitoring_sees_the_looked_up_features_in_drift(trained, tmp_path, monkeypatch):
    """The looked-up columns are logged as f_<name> and monitored against the training reference:
    a window served from the store and one served the defaults (store down) differ in drift."""
    from ml.features import online
    from ml.monitoring.compute import compute
    from ml.monitoring.job import _featurised
    from ml.monitoring.settings import MonitorConfig, MonitorSettings
    from ml.serving.client import sample_rows
    from ml.serving.inference_log import read_table
    from ml.usecase import load_use_case

    env, version, run_id = trained
    uc = load_use_case("fraud")
    engine, root = _engine(trained, tmp_path, monkeypatch)
    store = root / "feature-store" / "online" / f"{KEY}.sqlite"
    with sqlite3.connect(store) as con:
        known = [e for (e,) in con.execute("SELECT entity FROM features")]
        newest = con.execute("SELECT max(event_ts) FROM features").fetchone()[0]
    online.for_use_case(uc).clock = lambda: newest + 3600.0
    rows = sample_rows(200, seed=9)
    for i, r in enumerate(rows):
        r["customer_id"] = known[i % len(known)]
    try:
        engine.score([dict(r) for r in rows])  # window 1: values from the store
        store.rename(tmp_path / "away.sqlite")
        engine.score([dict(r) for r in rows])  # window 2: the store is down, every row the defaults
    finally:
        engine.close()
        online._CACHE.clear()
        if (tmp_path / "away.sqlite").exists():
            (tmp_path / "away.sqlite").rename(store)
    from ml.data.versioning import read_version, workspace_for

    ctx = type("Ctx", (), {"outputs": env.outputs, "storage_path": lambda self, n: Path(getattr(env.outputs.storage, n).removeprefix("file://"))})()
    gold = pd.read_parquet(read_version(*workspace_for(ctx, "fraud"), env.task_values(run_id, "ingest")["data_version"]))
    reference = _featurised(gold, uc, 5000, "gold")  # the reference monitoring takes from the champion's data
    settings = MonitorSettings(config=MonitorConfig(window_rows=200, min_window_rows=100))
    metrics, windows = compute(read_table(tmp_path / "inference"), reference, settings, task=uc.task)
    psi = metrics[metrics["metric"] == "psi"].pivot_table(index="window", columns="feature", values="value")
    assert {"txn_count_24h", "mean_amount_30d", "amount_to_mean_30d"} <= set(psi.columns)
    served_psi, down_psi = psi["mean_amount_30d"].iloc[0], psi["mean_amount_30d"].iloc[1]
    assert down_psi > settings.thresholds.psi and down_psi > served_psi
