"""Declared data sources through the real tasks (tests/ml/harness.py: a real MLflow server, DVC
remote, PostgreSQL): partitions landing on the env's storage give new data versions, a rerun on
unchanged data registers nothing, bad input stops the job before training and loses nothing, a
SQL source is read from a real server.

Lean by design (CI budget): one full job (the champion every later assertion compares with;
validate_data, GX on the same columns, is the training job test's), later tests run only the
tasks their assertion needs."""

from __future__ import annotations

import hashlib
import shutil

import mlflow
import pandas as pd
import pytest
import yaml

from tests.ml import pgserver
from tests.ml.harness import PROJECT, MlEnv, new_run_id
from usecases.fraud.generate import generate_transactions

pytestmark = pytest.mark.slow

WINDOW_DAYS = 3
ROWS = 1000  # per day of partitions
TASKS = [("ingest", "ml.data.ingest"), ("changed", "ml.training.changed"), ("train", "ml.training.train"),
         ("validate_model", "ml.validation.validate_model"), ("deploy_model", "ml.deployment.deploy_model"),
         ("promote", "ml.deployment.promote")]  # no endpoint here: the champion moves once decided


def day(start: str, seed: int, rows: int = ROWS) -> pd.DataFrame:
    return generate_transactions(rows, seed=seed, days=1, start=start)


def project_with_sources(root, targets: dict) -> MlEnv | dict:
    """A project whose fraud use case reads partitions on the env's storage (and, per target, SQL)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("ml", "core", "dvc.yaml"):
        (root / name).symlink_to(PROJECT / name)
    shutil.copytree(PROJECT / "usecases", root / "usecases", ignore=shutil.ignore_patterns("__pycache__"))
    path = root / "usecases" / "fraud" / "usecase.yml"
    doc = yaml.safe_load(path.read_text())
    doc["source"] = {"kind": "partitions", "path": "{storage}/landing/fraud", "window": {"days": WINDOW_DAYS},
                     "targets": targets}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return {"PYTHONPATH": str(root), "CONVEYOR_PROJECT_DIR": str(root), "PGPASSWORD": pgserver.PASSWORD}


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    if not pgserver.installed():
        pytest.skip("PostgreSQL server not installed (scripts/postgres.sh)")
    with pgserver.postgres_server(tmp_path_factory.mktemp("pg")) as server:
        yield server


@pytest.fixture(scope="module")
def project(pg, tmp_path_factory):
    from tests.ports import free_port

    root = tmp_path_factory.mktemp("sources") / "project"
    query = "SELECT * FROM transactions"
    extra = project_with_sources(root, {
        "sqlfeed": {"kind": "sql", "url": pg.url, "query": query, "window": {"days": WINDOW_DAYS}},
        "sqldown": {"kind": "sql", "url": f"postgresql+psycopg://ingest@127.0.0.1:{free_port()}/sales", "query": query},
    })
    return root, extra


def env_of(name: str, project, mlflow_server, tmp_path_factory) -> MlEnv:
    root, extra = project
    return MlEnv(name, tmp_path_factory.mktemp(f"env-{name}"), mlflow_server.uri, project=root, extra_env=extra)


def run_job(env: MlEnv, *, extra: dict | None = None) -> tuple[str, dict]:
    """The training job's tasks in DAG order, like the runner: a condition with outcome false
    skips the rest (the run succeeds), a failed task stops it."""
    run_id, results = new_run_id(), {}
    for task, module in TASKS:
        results[task] = proc = env.run_task(run_id, task, module, *(extra or {}).get(task, []))
        if proc.returncode != 0 or (task == "changed" and env.task_values(run_id, "changed").get("outcome") is False):
            break
    return run_id, results


def client_for(env: MlEnv) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=env.tracking_uri, registry_uri=env.tracking_uri)


def stored(env: MlEnv, md5: str) -> pd.DataFrame:
    """Data version `md5` as the env's DVC remote holds it (what `ml.data.restore` pulls)."""
    path = env.root / "storage" / "dvc" / "files" / "md5" / md5[:2] / md5[2:]
    assert hashlib.md5(path.read_bytes()).hexdigest() == md5
    return pd.read_parquet(path)


@pytest.fixture(scope="module")
def feeds(project, mlflow_server, tmp_path_factory):
    """An env whose fraud partitions land on its storage, after one full training job on 3 days."""
    env = env_of("feeds", project, mlflow_server, tmp_path_factory)
    landing = env.root / "storage" / "landing" / "fraud"
    landing.mkdir(parents=True)
    for i, start in enumerate(("2026-03-01", "2026-03-02", "2026-03-03")):
        day(start, seed=i).to_parquet(landing / f"{start}.parquet", index=False)
    first, results = run_job(env, extra={"deploy_model": ["--no-package"]})
    for task, proc in results.items():
        assert proc.returncode == 0, f"{task} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert list(results) == [t for t, _ in TASKS]
    return env, first, landing


def test_the_first_job_trains_on_the_landed_partitions(feeds):
    env, first, landing = feeds
    v1 = env.task_values(first, "ingest")["data_version"]
    assert env.task_values(first, "changed")["reason"] == "no champion yet"
    client = client_for(env)
    champion = client.get_model_version_by_alias("fraud-detector-feeds", "champion")
    assert champion.version == "1" and champion.tags["data_version"] == v1
    assert {"code_version", "params_version"} <= set(champion.tags)
    run = client.get_run(env.task_values(first, "ingest")["mlflow_run_id"])
    assert run.data.tags["data_source"] == f"partitions at {landing} (3 files)"
    assert env.task_values(first, "ingest")["source_rows"] == 3 * ROWS


def test_an_unchanged_data_rerun_registers_nothing(feeds):
    env, first, _ = feeds
    v1 = env.task_values(first, "ingest")["data_version"]
    again, results = run_job(env, extra={"deploy_model": ["--no-package"]})
    assert list(results) == ["ingest", "changed"] and all(p.returncode == 0 for p in results.values())
    assert env.task_values(again, "ingest")["data_version"] == v1
    assert env.task_values(again, "changed")["outcome"] is False
    assert "nothing changed: data " in results["changed"].stdout and "champion v1" in results["changed"].stdout
    client = client_for(env)
    assert [mv.version for mv in client.search_model_versions("name='fraud-detector-feeds'")] == ["1"]
    assert client.get_run(env.task_values(again, "ingest")["mlflow_run_id"]).data.tags["training_decision"] == "nothing_changed"


def test_a_bad_partition_stops_the_job_before_training_and_loses_nothing(feeds):
    env, first, landing = feeds
    ws = env.root / "storage" / "dvc-workspaces" / "fraud"
    lock = (ws / "dvc.lock").read_text()
    bad = landing / "2026-03-04.parquet"
    day("2026-03-04", seed=9).drop(columns=["amount"]).to_parquet(bad, index=False)
    try:
        _, results = run_job(env)
    finally:
        bad.unlink()
    assert list(results) == ["ingest"] and results["ingest"].returncode == 1
    err = results["ingest"].stderr
    assert f"partition {bad} lacks declared columns ['amount']" in err and "Traceback" not in err
    assert (ws / "dvc.lock").read_text() == lock
    assert client_for(env).get_model_version_by_alias("fraud-detector-feeds", "champion").version == "1"
    assert len(stored(env, env.task_values(first, "ingest")["data_version"])) > 0  # the champion's data is still there


def test_a_landed_partition_is_a_new_data_version_of_exactly_the_window(feeds):
    env, first, landing = feeds
    v1 = env.task_values(first, "ingest")["data_version"]
    day("2026-03-04", seed=9).to_parquet(landing / "2026-03-04.parquet", index=False)
    fresh = new_run_id()
    ingest = env.run_task(fresh, "ingest", "ml.data.ingest")
    assert ingest.returncode == 0, ingest.stderr
    values = env.task_values(fresh, "ingest")
    assert values["data_version"] != v1
    bronze = stored(env, values["bronze_md5"])
    assert len(bronze) == values["source_rows"] < 4 * ROWS  # the first day slid out of the 3-day window
    assert bronze["timestamp"].min() > pd.Timestamp("2026-03-01 12:00") and bronze["timestamp"].max() >= pd.Timestamp("2026-03-04")
    assert len(stored(env, v1)) > 0  # the old version stays in the remote
    changed = env.run_task(fresh, "changed", "ml.training.changed")
    assert changed.returncode == 0 and env.task_values(fresh, "changed")["outcome"] is True
    assert f"changed since champion v1: data {v1[:12]} -> {values['data_version'][:12]}" in changed.stdout


def test_a_sql_source_against_a_real_postgresql_server(project, pg, mlflow_server, tmp_path_factory):
    from sqlalchemy import create_engine

    env = env_of("sqlfeed", project, mlflow_server, tmp_path_factory)
    engine = create_engine(f"postgresql+psycopg://{pgserver.USER}:{pgserver.PASSWORD}@127.0.0.1:{pg.port}/{pgserver.DATABASE}")
    day("2026-03-01", seed=1, rows=600).to_sql("transactions", engine, index=False)
    day("2026-03-02", seed=2, rows=600).to_sql("transactions", engine, index=False, if_exists="append")

    first = new_run_id()
    proc = env.run_task(first, "ingest", "ml.data.ingest")
    assert proc.returncode == 0, proc.stderr
    v1 = env.task_values(first, "ingest")
    assert v1["source_rows"] == 1200 and v1["data_rows"] == 1200
    tags = client_for(env).get_run(v1["mlflow_run_id"]).data.tags
    assert tags["data_source"] == f"SQL source {pg.url}"

    # the same table: the same version; rows arrive: a new one, the window sliding past the first day
    same = new_run_id()
    assert env.run_task(same, "ingest", "ml.data.ingest").returncode == 0
    assert env.task_values(same, "ingest")["data_version"] == v1["data_version"]
    day("2026-03-05", seed=5, rows=600).to_sql("transactions", engine, index=False, if_exists="append")
    engine.dispose()
    later = new_run_id()
    assert env.run_task(later, "ingest", "ml.data.ingest").returncode == 0
    v2 = env.task_values(later, "ingest")
    assert v2["data_version"] != v1["data_version"] and v2["source_rows"] < 1800
    assert stored(env, v2["bronze_md5"])["timestamp"].min() > pd.Timestamp("2026-03-02")


def test_a_sql_server_that_is_down_fails_ingest_in_one_line(project, mlflow_server, tmp_path_factory):
    env = env_of("sqldown", project, mlflow_server, tmp_path_factory)
    proc = env.run_task(new_run_id(), "ingest", "ml.data.ingest")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("ingest: error:")]
    assert line.startswith("ingest: error: SQL source postgresql+psycopg://ingest@127.0.0.1:") and "cannot connect" in line
    assert not (env.root / "storage" / "dvc-workspaces" / "fraud" / "dvc.lock").exists()
