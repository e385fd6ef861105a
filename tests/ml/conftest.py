"""Fixtures for the ML job tests: envs in tmp dirs on the session's real MLflow server (tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.ml.harness import MlEnv, new_run_id

TRAINING_TASKS = [
    ("ingest", "ml.data.ingest"),
    ("validate_data", "ml.validation.validate_data"),
    ("train", "ml.training.train"),
    ("validate_model", "ml.validation.validate_model"),
    ("deploy_model", "ml.deployment.deploy_model"),
    # what update_endpoint does when its rollout completes (these envs have no endpoint): champion moves
    ("promote", "ml.deployment.promote"),
]


def run_training_job(env: MlEnv, *ingest_args: str, stop_after: str | None = None, extra: dict | None = None) -> tuple[str, dict]:
    """Run the training job's tasks in DAG order like the bundle runner; fail loudly with logs."""
    run_id = new_run_id()
    results = {}
    for task, module in TRAINING_TASKS:
        args = list(ingest_args) if task == "ingest" else []
        args += (extra or {}).get(task, [])
        proc = env.run_task(run_id, task, module, *args)
        results[task] = proc
        if proc.returncode != 0:
            break
        if task == stop_after:
            break
    return run_id, results


@pytest.fixture(scope="module")
def trained_env(mlflow_server, tmp_path_factory):
    """A `dev` env after one successful full training job on 4000 rows."""
    env = MlEnv("dev", tmp_path_factory.mktemp("env-dev"), mlflow_server.uri)
    run_id, results = run_training_job(env, "--rows", "4000")
    for task, proc in results.items():
        assert proc.returncode == 0, f"{task} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return env, run_id, results
