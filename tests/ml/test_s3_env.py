"""The training job as it runs in a cluster pod: env storage in a bucket, shared files on a volume.

Storage is `s3://` (a real S3 API on loopback, as MinIO serves it in the cluster): the DVC
remote lives there; endpoint config, tables and the model report are on the env's state
volume ($CONVEYOR_STATE_DIR). Nothing of the env may land on a local path in between.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import subprocess
import sys

import mlflow
import pandas as pd
import pytest

from ml.registry import champion_pointer
from tests.ml.conftest import run_training_job
from tests.ml.harness import PROJECT, MlEnv, new_run_id, start_mlflow
from tests.s3server import CREDENTIALS, s3_client, s3_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("env-s3")
    # its own MLflow: the session's server holds other tests' staging registry, which they check
    mlflow_server = start_mlflow(root / "mlflow")
    with contextlib.ExitStack() as stack:
        stack.callback(mlflow_server.stop)
        endpoint = stack.enter_context(s3_server(root / "s3.log"))
        bucket = f"conveyor-{secrets.token_hex(4)}"
        s3_client(endpoint).create_bucket(Bucket=bucket)
        env = MlEnv("staging", root, mlflow_server.uri, storage_uri=f"s3://{bucket}/staging",
                    extra_env={**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint,
                               "CONVEYOR_STATE_DIR": str(root / "state-volume"),
                               "CONVEYOR_HOME": str(root / "pod-home")})
        run_id, results = run_training_job(env, "--rows", "4000")
        for task, proc in results.items():
            assert proc.returncode == 0, f"{task} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        yield env, run_id, endpoint, bucket


def test_training_on_s3_storage_versions_data_in_the_bucket(s3_env):
    env, run_id, endpoint, bucket = s3_env
    version = env.task_values(run_id, "ingest")["data_version"]
    keys = {o["Key"] for o in s3_client(endpoint).list_objects_v2(Bucket=bucket, Prefix="staging/dvc/")["Contents"]}
    bronze = env.task_values(run_id, "ingest")["bronze_md5"]
    for md5 in (version, bronze):  # what DVC pushed: gold (the data version) and the raw bronze layer
        assert f"staging/dvc/files/md5/{md5[:2]}/{md5[2:]}" in keys

    client = mlflow.MlflowClient(tracking_uri=env.tracking_uri, registry_uri=env.tracking_uri)
    champion = client.get_model_version_by_alias("fraud-detector-staging", "champion")
    assert champion.tags["data_version"] == version
    report = json.loads(champion_pointer(env.root / "state-volume" / "models", "fraud-detector-staging").read_text())
    assert report["version"] == champion.version
    # the DVC workspace (git + cache) lives where the pod keeps env files: its state volume
    assert (env.root / "state-volume" / "dvc-workspaces" / "fraud" / ".dvc").is_dir()


def test_data_version_is_restored_from_the_bucket(s3_env, tmp_path):
    env, run_id, _, _ = s3_env
    version = env.task_values(run_id, "ingest")["data_version"]
    out = tmp_path / "gold.parquet"
    task_env = env.task_env(new_run_id(), "restore")
    proc = subprocess.run([sys.executable, "-m", "ml.data.restore", "--data-version", version, "--out", str(out)],
                          cwd=PROJECT, env=task_env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert hashlib.md5(out.read_bytes()).hexdigest() == version
    assert len(pd.read_parquet(out)) > 0
    bad = subprocess.run([sys.executable, "-m", "ml.data.restore", "--data-version", "0" * 32], cwd=PROJECT,
                         env=task_env, capture_output=True, text=True)
    assert bad.returncode == 1 and "not in the DVC remote s3://" in bad.stderr and "Traceback" not in bad.stderr
