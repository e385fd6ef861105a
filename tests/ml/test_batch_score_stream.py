"""The batch job's streaming path (ml/inference/stream.py) writes the table the in-memory path does.

No MLflow: a fraud pipeline fitted on a few generated rows, scored both ways on rows with
missing values and categories the model never saw (~2 s).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml import task
from ml.inference import batch_score, stream
from ml.training.estimator import predict
from ml.usecase import load_use_case
from usecases.fraud.generate import generate_transactions

MODEL = ("fraud-detector-test", "7", "run-1")
THRESHOLD = 0.3


@pytest.fixture(scope="module")
def fitted():
    uc = load_use_case("fraud")
    train = generate_transactions(3000, seed=1)
    model = uc.estimator(uc.load_params([]).train).fit(uc.build_features(train), train[uc.label].to_numpy())
    return uc, model


def awkward_rows(n: int = 1100) -> pd.DataFrame:
    raw = generate_transactions(n, seed=2).drop(columns=["is_fraud"])
    raw.loc[5:40, "merchant_category"] = "casino"  # not a declared category: one-hot to all zeros
    raw.loc[50:60, "merchant_category"] = None
    raw.loc[70:90, "txn_lat"] = np.nan  # distance is NaN: the trees' missing-value branch
    raw.loc[100:120, "amount"] = np.nan
    raw["txn_count_24h"] = np.where(np.arange(n) % 7 == 0, np.nan, 3.0)  # a looked-up column the input carries
    return raw


def streamed(uc, model, source, batch_size: int, tmp_path, threads: int = 1, block: int = stream.BLOCK) -> pd.DataFrame:
    reader = stream.Reader(uc, stream.raw_chunks(uc, source, batch_size))
    try:
        part, rows, _ = batch_score.score_chunks(uc, reader, stream.Scorer(uc, model, block), THRESHOLD, MODEL,
                                                 tmp_path / "out" / "part.parquet", threads)
    finally:
        reader.close()
    return pd.read_parquet(part)


def in_memory(uc, model, raw: pd.DataFrame) -> pd.DataFrame:
    """What the job wrote before it streamed: every row's features and score in one frame."""
    out = pd.DataFrame(batch_score.prediction_columns(uc, stream.chunk_ids(uc, raw, 0),
                                                      predict(uc, model, uc.build_features(raw)), THRESHOLD))
    out["model_name"], out["model_version"], out["job_run_id"] = MODEL
    return out


@pytest.mark.parametrize(("suffix", "threads", "block"), [("parquet", 1, stream.BLOCK), ("csv", 1, stream.BLOCK),
                                                        ("parquet", 3, 64)])
def test_streamed_table_equals_in_memory_table(fitted, tmp_path, suffix, threads, block):
    """Chunks scored by several threads, their trees walked in row blocks: the same table, bit for bit."""
    uc, model = fitted
    raw = awkward_rows()
    source = tmp_path / f"rows.{suffix}"
    raw.to_parquet(source) if suffix == "parquet" else raw.to_csv(source, index=False)
    reference = pd.read_csv(source) if suffix == "csv" else pd.read_parquet(source)
    got = streamed(uc, model, source, 300, tmp_path, threads, block)
    want = in_memory(uc, model, reference)
    want.to_parquet(tmp_path / "want.parquet", index=False)
    want = pd.read_parquet(tmp_path / "want.parquet")
    assert list(got.columns) == list(want.columns)
    assert dict(got.dtypes) == dict(want.dtypes)
    assert got["scored_at"].notna().all()
    cols = [c for c in want.columns if c != "scored_at"]  # the time each chunk was scored
    pd.testing.assert_frame_equal(got[cols], want[cols], check_exact=True)
    assert got["fraud_probability"].iloc[5:41].notna().all() and len(got) == len(raw)


def test_streamed_rows_without_ids_are_numbered_across_chunks(fitted, tmp_path):
    uc, model = fitted
    source = tmp_path / "rows.parquet"
    awkward_rows(700).drop(columns=["transaction_id"]).to_parquet(source)
    got = streamed(uc, model, source, 300, tmp_path)
    assert got["transaction_id"].tolist() == [str(i) for i in range(700)]


@pytest.mark.parametrize("ids", ["large_string", "int64"])
def test_ids_read_as_arrow_come_out_as_a_trip_through_pandas_would_give_them(fitted, tmp_path, ids):
    """The ids never become Python objects on the way, yet the table is the one pandas would write."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    uc, model = fitted
    raw = awkward_rows(700)
    if ids == "int64":
        raw["transaction_id"] = np.arange(700, dtype="int64") * 3
    table = pa.Table.from_pandas(raw, preserve_index=False)
    if ids == "large_string":
        table = table.set_column(0, "transaction_id", table.column("transaction_id").cast(pa.large_string()))
    pq.write_table(table, tmp_path / "rows.parquet")
    got = streamed(uc, model, tmp_path / "rows.parquet", 300, tmp_path)
    want = in_memory(uc, model, raw)
    want.to_parquet(tmp_path / "want.parquet", index=False)
    want = pd.read_parquet(tmp_path / "want.parquet")
    assert dict(got.dtypes) == dict(want.dtypes)
    assert got["transaction_id"].tolist() == raw["transaction_id"].tolist()
    assert pq.read_schema(next((tmp_path / "out").glob("*.parquet"))).field("transaction_id").type == (
        pa.string() if ids == "large_string" else pa.int64())


def test_a_bad_row_is_one_task_error_naming_its_chunk(fitted, tmp_path):
    uc, model = fitted
    raw = awkward_rows(700)
    raw["timestamp"] = raw["timestamp"].astype(str)
    raw.loc[450, "timestamp"] = "not a time"
    source = tmp_path / "rows.parquet"
    raw.to_parquet(source)
    with pytest.raises(task.TaskError, match="input rows 300-599: cannot compute features"):
        streamed(uc, model, source, 300, tmp_path)
    with pytest.raises(task.TaskError, match="input rows 300-599: cannot compute features"):
        streamed(uc, model, source, 300, tmp_path, threads=2)
    source.write_text("not parquet")
    with pytest.raises(stream.SourceDataError, match="cannot read"):
        streamed(uc, model, source, 300, tmp_path)
    raw.drop(columns=["amount"]).to_parquet(source)
    with pytest.raises(task.TaskError, match=r"lacks columns \['amount'\]"):
        streamed(uc, model, source, 300, tmp_path)


def test_scoring_threads_fill_the_cores_unless_set(monkeypatch):
    from joblib import cpu_count
    from threadpoolctl import threadpool_limits

    monkeypatch.delenv("CONVEYOR_BATCH_SCORE_THREADS", raising=False)
    cores = cpu_count()
    with threadpool_limits(limits=1, user_api="openmp"):
        assert stream.scoring_threads() == cores  # one OpenMP thread per tree walk: a walk per core
    monkeypatch.setenv("CONVEYOR_BATCH_SCORE_THREADS", "3")
    assert stream.scoring_threads() == 3
