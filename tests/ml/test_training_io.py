"""The fast paths of the training job's data handling give what the plain pandas code gave.

- `split` orders rows with pyarrow instead of `DataFrame.sort_values([timestamp, id], kind="stable")`:
  the same rows in the same order, missing values last, whatever the frame's index;
- `read_training_table` reads the columns training, validation and deployment use, no others;
- the DVC workspace reuses its remote config instead of running `dvc remote add` every ingest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.data.versioning import _remote_configured, ensure_workspace
from ml.training.estimator import read_training_table, split
from ml.usecase import load_use_case


@pytest.fixture(scope="module")
def uc():
    return load_use_case("fraud")


def pandas_split(uc, gold: pd.DataFrame, test_fraction: float):
    """The split as it was written before: a pandas multi-key stable sort."""
    ordered = gold.sort_values([uc.timestamp, uc.id_column], kind="stable")
    cut = int(round(len(ordered) * (1.0 - test_fraction)))
    return ordered.iloc[:cut].reset_index(drop=True), ordered.iloc[cut:].reset_index(drop=True)


def frame(uc, rows: int = 5000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 500, rows), unit="s")  # many ties
    ids = [f"t-{i:05d}" for i in rng.permutation(rows)]
    out = pd.DataFrame({uc.id_column: ids, uc.timestamp: ts, "amount": rng.random(rows), uc.label: rng.integers(0, 2, rows)})
    out.index = rng.permutation(rows) * 7  # not a RangeIndex: the parts must come back with one
    return out


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.0])
def test_split_is_the_stable_timestamp_then_id_order(uc, fraction):
    gold = frame(uc)
    for got, want in zip(split(uc, gold, fraction), pandas_split(uc, gold, fraction)):
        pd.testing.assert_frame_equal(got, want)


def test_split_puts_missing_timestamps_and_ids_last_like_pandas(uc):
    gold = frame(uc, rows=400, seed=1)
    gold.iloc[:20, gold.columns.get_loc(uc.timestamp)] = pd.NaT
    gold.iloc[20:40, gold.columns.get_loc(uc.id_column)] = None
    for got, want in zip(split(uc, gold, 0.3), pandas_split(uc, gold, 0.3)):
        pd.testing.assert_frame_equal(got, want)
    assert split(uc, gold, 0.3)[1][uc.timestamp].tail(20).isna().all()


def test_split_of_ids_pyarrow_cannot_type_falls_back_to_pandas(uc):
    gold = frame(uc, rows=300, seed=2)
    gold[uc.id_column] = [i if i % 2 else str(i) for i in range(len(gold))]  # ints and strings: pyarrow refuses
    train, test = split(uc, gold, 0.25)
    assert len(train) + len(test) == len(gold)
    assert train[uc.timestamp].max() <= test[uc.timestamp].min()


def test_training_table_skips_the_columns_nothing_scores(uc, tmp_path):
    gold = pd.DataFrame({c: [1.0, 2.0] for c in uc.feature_names})
    gold[uc.id_column], gold[uc.timestamp] = ["a", "b"], pd.to_datetime(["2026-01-01", "2026-01-02"])
    gold[uc.label], gold[uc.spec.dataset.entity_key], gold["extra"] = [0, 1], ["c1", "c2"], ["x", "y"]
    path = tmp_path / "gold.parquet"
    gold.to_parquet(path, index=False)
    read = read_training_table(uc, path)
    assert set(read.columns) == {uc.id_column, uc.timestamp, uc.label, *uc.feature_names}
    assert uc.spec.dataset.entity_key not in read.columns and "extra" not in read.columns


def test_workspace_remote_is_configured_once(tmp_path):
    ws, remote = tmp_path / "ws", tmp_path / "remote"
    assert not _remote_configured(ws, remote)
    ensure_workspace(ws, remote)
    assert _remote_configured(ws, remote)
    assert not _remote_configured(ws, tmp_path / "other")
    ensure_workspace(ws, tmp_path / "other")  # a changed remote is written again
    assert _remote_configured(ws, tmp_path / "other")
