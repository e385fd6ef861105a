"""A retrain's window goes through the env's storage (issue #15): on kubernetes `fresh_window` and
the retrain's `ingest` run in different pods, so the window is written with `core.storage.Blobs`
(here an S3 API on loopback, as MinIO serves it in the cluster) and read back by `ingest --source
{storage}/…` as a `file` source, lineage included — no local path in between."""

from __future__ import annotations

import secrets
import time

import pandas as pd
import pytest

from core.storage import Blobs
from ml.data import sources
from ml.monitoring import tables
from ml.monitoring.training_window import WINDOWS, build, on_storage
from ml.usecase import load_use_case
from tests.ml.harness import PROJECT
from tests.s3server import CREDENTIALS, s3_client, s3_server
from usecases.fraud.generate import generate_transactions

FRAUD = load_use_case("fraud")


@pytest.fixture(scope="module")
def bucket_env(tmp_path_factory):
    """The env's storage: a bucket prefix on one S3 server for the module."""
    with s3_server(tmp_path_factory.mktemp("s3") / "s3.log") as endpoint, pytest.MonkeyPatch.context() as mp:
        bucket = f"conveyor-{secrets.token_hex(4)}"
        s3_client(endpoint).create_bucket(Bucket=bucket)
        for key, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}.items():
            mp.setenv(key, value)
        yield endpoint, bucket, f"s3://{bucket}/prod"


def _logged_traffic(table, raw: pd.DataFrame) -> None:
    """An endpoint's inference table as the serving process writes it (raw fields, served_by, time)."""
    table.mkdir(parents=True)
    logged = raw.drop(columns=["is_fraud", "transaction_id", "timestamp"]).assign(
        request_id=raw["transaction_id"], txn_timestamp=raw["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.000"),
        served_by="champion", model_version="3", probability=0.2, prediction=0, latency_ms=3.0, timestamp=time.time())
    logged.to_json(table / "part-x.jsonl", orient="records", lines=True)


def test_the_window_is_written_to_object_storage_and_ingest_reads_it_there(bucket_env, tmp_path):
    endpoint, bucket, storage_root = bucket_env
    raw = generate_transactions(600, seed=11)
    table = tmp_path / "state" / "tables" / "inference"
    _logged_traffic(table, raw)
    feed = tables.labels_dir(table)
    feed.mkdir(parents=True)
    raw[["transaction_id", "is_fraud"]].head(550).to_parquet(feed / "labels-1.parquet", index=False)

    written = build(FRAUD, table, feed, Blobs(storage_root).child(WINDOWS), hours=24, run_id="r1", min_rows=500,
                    verdict="3 of the last 3 windows violate")
    assert written["rows"] == 550
    assert written["source"] == f"{storage_root}/{WINDOWS}/window-r1.parquet"
    keys = {o["Key"] for o in s3_client(endpoint).list_objects_v2(Bucket=bucket, Prefix="prod/")["Contents"]}
    assert keys == {f"prod/{WINDOWS}/window-r1.parquet", f"prod/{WINDOWS}/window-r1.lineage.json"}
    assert not list((tmp_path / "state").rglob("window-*"))  # nothing landed beside the task

    # what fresh_window publishes, and what the retrain's ingest (another pod) reads from it
    source = on_storage(written["source"], storage_root)
    assert source == f"{{storage}}/{WINDOWS}/window-r1.parquet"
    snap = sources.given(FRAUD, source, sources.Where(PROJECT, storage_root))
    assert len(snap.frame) == 550 and list(snap.frame.columns) == list(FRAUD.spec.dataset.columns)
    expected = raw.head(550).set_index("transaction_id").sort_index()
    got = snap.frame.set_index("transaction_id").sort_index()
    assert (got["is_fraud"] == expected["is_fraud"]).all() and (got["amount"] == expected["amount"]).all()
    assert snap.description == f"file {written['source']}"
    lineage = snap.manifest["lineage"]
    assert lineage["rows"] == 550 and lineage["labels"] == 550 and lineage["model_versions"] == ["3"]
    assert lineage["monitoring_verdict"] == "3 of the last 3 windows violate"


def test_a_window_that_is_not_there_is_one_source_error(bucket_env):
    _, _, storage_root = bucket_env
    with pytest.raises(sources.SourceError, match=r"source file s3://.*/window-gone\.parquet: no such file"):
        sources.given(FRAUD, f"{{storage}}/{WINDOWS}/window-gone.parquet", sources.Where(PROJECT, storage_root))
    with pytest.raises(sources.SourceError, match="a .parquet or .csv file"):
        sources.given(FRAUD, "{storage}/tables/training_windows", sources.Where(PROJECT, storage_root))


def test_on_a_local_env_the_window_is_a_file_under_its_storage(tmp_path):
    raw = generate_transactions(600, seed=12)
    table = tmp_path / "storage" / "tables" / "inference"
    _logged_traffic(table, raw)
    feed = tables.labels_dir(table)
    feed.mkdir(parents=True)
    raw[["transaction_id", "is_fraud"]].to_parquet(feed / "labels-1.parquet", index=False)
    root = (tmp_path / "storage").as_uri()
    written = build(FRAUD, table, feed, Blobs(root).child(WINDOWS), hours=24, run_id="r2", min_rows=500)
    assert (tmp_path / "storage" / WINDOWS / "window-r2.parquet").stat().st_mode & 0o777 == 0o600
    snap = sources.given(FRAUD, on_storage(written["source"], root), sources.Where(PROJECT, root))
    assert len(snap.frame) == 600 and snap.manifest["lineage"]["rows"] == 600
