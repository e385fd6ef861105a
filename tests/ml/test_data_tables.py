"""Compact string columns (ml/data/tables.py) change memory, not data or verdicts.

- the files the medallion stages write are byte for byte what object-string frames gave (so the
  data versions, the DVC md5s, stay the same) and plain `pd.read_parquet` still reads objects;
- `read_frame` gives the same values as `pd.read_parquet`;
- GX reports the same verdicts, counts and failure lines on the compact frame as on the object one;
- silver, the training table's split and the fitted estimator give the same rows and scores.
"""

from __future__ import annotations

import gc
import hashlib
import weakref

import numpy as np
import pandas as pd
import pytest

from ml.config import DataValidationParams, TrainParams
from ml.data.medallion import gold, silver
from ml.data.tables import STR, read_frame, write_frame
from ml.training.estimator import fit, predict, read_training_table, split
from ml.usecase import load_use_case
from usecases.fraud.generate import generate_transactions

IDS = ["transaction_id", "customer_id"]


@pytest.fixture(scope="module")
def uc():
    return load_use_case("fraud")


def as_objects(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its `STR` and categorical string columns as object columns (the old dtypes)."""
    return frame.astype({c: object for c in frame.columns if isinstance(frame[c].dtype, (pd.StringDtype, pd.CategoricalDtype))})


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_generated_bronze_file_is_the_one_object_strings_gave(tmp_path):
    compact = generate_transactions(3000, seed=3, drift=0.5)
    assert all(isinstance(compact[c].dtype, pd.StringDtype) for c in IDS)
    write_frame(compact, tmp_path / "new.parquet")
    as_objects(compact).to_parquet(tmp_path / "old.parquet", index=False)
    assert md5(tmp_path / "new.parquet") == md5(tmp_path / "old.parquet")
    plain = pd.read_parquet(tmp_path / "new.parquet")
    assert all(plain[c].dtype == np.dtype(object) for c in IDS)
    pd.testing.assert_frame_equal(plain, as_objects(compact))


def test_read_frame_keeps_values_and_missing_values(tmp_path):
    rows = 1000
    frame = pd.DataFrame({
        "id": [f"id-{i}" if i % 97 else None for i in range(rows)],
        "kind": [("a", "b", None)[i % 3] for i in range(rows)],
        "x": np.arange(rows, dtype="float64"),
    })
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    read = read_frame(tmp_path / "t.parquet")
    assert isinstance(read["id"].dtype, pd.StringDtype) and read["kind"].dtype == object
    assert read["id"].isna().sum() == frame["id"].isna().sum() == 11
    categorical = read_frame(tmp_path / "t.parquet", categories=True)
    assert isinstance(categorical["kind"].dtype, pd.CategoricalDtype)
    want = pd.read_parquet(tmp_path / "t.parquet")
    for got in (read, categorical):
        pd.testing.assert_frame_equal(as_objects(got).fillna({"id": np.nan, "kind": np.nan}),
                                      want.fillna({"id": np.nan, "kind": np.nan}))
    assert list(read_frame(tmp_path / "t.parquet", columns=["x", "id"]).columns) == ["x", "id"]


def test_medallion_stage_files_do_not_change(uc, tmp_path):
    raw = generate_transactions(2000, seed=4)
    # duplicated ids silver drops, rows out of time order under a shuffled index, missing times
    raw = pd.concat([raw, raw.iloc[[5, 17]]]).sample(frac=1.0, random_state=1)
    raw.iloc[:4, raw.columns.get_loc(uc.timestamp)] = pd.NaT
    given = raw.copy()
    old = as_objects(raw)
    old_silver = old.drop_duplicates(subset=uc.id_column, keep="first").sort_values(uc.timestamp, kind="stable").reset_index(drop=True)
    new_silver = silver(uc, raw)
    pd.testing.assert_frame_equal(as_objects(new_silver), old_silver)
    pd.testing.assert_frame_equal(raw, given)  # the stage's input is left as it was
    in_order = generate_transactions(500, seed=4)
    pd.testing.assert_frame_equal(silver(uc, in_order), in_order)
    old_silver.to_parquet(tmp_path / "old.parquet", index=False)
    write_frame(new_silver, tmp_path / "new.parquet")
    assert md5(tmp_path / "new.parquet") == md5(tmp_path / "old.parquet")
    timed = old_silver.dropna(subset=[uc.timestamp])  # features need a time
    gold(uc, timed).to_parquet(tmp_path / "old_gold.parquet", index=False)
    new_timed = read_frame(tmp_path / "new.parquet").dropna(subset=[uc.timestamp])
    write_frame(gold(uc, new_timed), tmp_path / "new_gold.parquet")
    assert md5(tmp_path / "new_gold.parquet") == md5(tmp_path / "old_gold.parquet")


@pytest.mark.slow
def test_gx_verdicts_are_the_same_on_compact_and_object_frames(uc, tmp_path):
    from ml.usecase.expectations import raw_expectations
    from ml.validation import data_suites

    bad = as_objects(generate_transactions(3000, seed=5))
    bad.loc[:9, "amount"] = -1.0
    bad.loc[20:24, "merchant_category"] = "casino"
    bad.loc[30, "transaction_id"] = bad.loc[31, "transaction_id"]
    bad.loc[40:42, "customer_id"] = None
    bad.to_parquet(tmp_path / "bad.parquet", index=False)
    read = []

    def compact() -> pd.DataFrame:
        frame = read_frame(tmp_path / "bad.parquet", categories=True)
        assert isinstance(frame["merchant_category"].dtype, pd.CategoricalDtype)
        read.append(weakref.ref(frame))
        return frame

    def objects() -> pd.DataFrame:
        gc.collect()
        assert read[0]() is None  # the first table is freed (by GX too) before the next is read
        return bad

    (got, want), _ = data_suites.validate_frames({  # one GX context for both: GX's start-up is most of the time
        "compact": (compact, raw_expectations(uc, DataValidationParams())),
        "objects": (objects, raw_expectations(uc, DataValidationParams())),
    }, tmp_path)
    assert (got.success, got.evaluated, sorted(got.failed)) == (want.success, want.evaluated, sorted(want.failed))
    text = "\n".join(got.failed)
    assert not got.success and "casino" in text and "-> 10 unexpected" in text and "expect_column_values_to_be_unique" in text
    assert "column=customer_id" in text  # the nulls: not_null is strict (max_null_fraction 0)
    # what the run swapped in GX is put back
    import great_expectations.execution_engine.pandas_execution_engine as engine
    assert engine.HASH_THRESHOLD == 1e9 and not pd.get_option("mode.copy_on_write")


def test_training_table_split_and_fit_match_object_strings(uc, tmp_path):
    raw = generate_transactions(4000, seed=6)
    table = gold(uc, silver(uc, raw))
    write_frame(table, tmp_path / "gold.parquet")
    compact = read_training_table(uc, tmp_path / "gold.parquet")
    assert isinstance(compact[uc.id_column].dtype, pd.StringDtype)
    plain = pd.read_parquet(tmp_path / "gold.parquet", columns=list(compact.columns))
    params = uc.load_params(overrides=["train.max_iter=10"]).train
    assert isinstance(params, TrainParams)
    scores = []
    for frame in (compact, plain):
        train, test = split(uc, frame, 0.25)
        scores.append((as_objects(train), as_objects(test), predict(uc, fit(uc, params, train), test)))
    pd.testing.assert_frame_equal(scores[0][0], scores[1][0])
    pd.testing.assert_frame_equal(scores[0][1], scores[1][1])
    np.testing.assert_array_equal(scores[0][2], scores[1][2])


def test_str_dtype_is_pandas_string_with_nan():
    assert pd.isna(pd.Series(["a", None], dtype=STR)[1]) and pd.Series(["a", None], dtype=STR)[1] is np.nan
