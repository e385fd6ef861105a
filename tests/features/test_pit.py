"""Point-in-time joins: a training row only sees feature values from strictly before it."""

from __future__ import annotations

import pandas as pd
import pytest

from core.feature_tables import FeatureTableError, FeatureTableSpec
from ml.features.compute import compute_table, latest_per_entity
from ml.features.pit import as_of, naive_latest

SPEC = FeatureTableSpec.model_validate({
    "entity_key": "customer_id", "timestamp": "timestamp", "source": {"use_case": "fraud"}, "ttl": "30d",
    "features": {"txn_count_24h": {"aggregation": "count", "window": "24h", "default": 0.0},
                 "mean_amount_30d": {"aggregation": "mean", "column": "amount", "window": "30d", "default": 60.0}},
})


def _txns(*rows):
    return pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"]).assign(
        timestamp=lambda d: pd.to_datetime(d["timestamp"]))


def test_a_naive_join_leaks_the_future_and_the_point_in_time_join_does_not():
    # c1 spends 10, then 20; a big 1000 comes on day 3. A training row on day 2 must not know it.
    source = _txns(("c1", "2026-01-01 10:00", 10.0), ("c1", "2026-01-02 09:00", 20.0), ("c1", "2026-01-03 12:00", 1000.0))
    table = compute_table("t", SPEC, source)
    training = pd.DataFrame({"customer_id": ["c1"], "timestamp": pd.to_datetime(["2026-01-02 12:00"])})
    naive = naive_latest(training, table, SPEC, ["mean_amount_30d"])
    assert naive["mean_amount_30d"].iloc[0] == pytest.approx((10 + 20 + 1000) / 3)  # computed from day 3: a leak
    pit = as_of(training, table, SPEC, ["mean_amount_30d", "txn_count_24h"], "timestamp")
    assert pit["mean_amount_30d"].iloc[0] == pytest.approx(15.0)                     # only what was known by then
    assert pit["txn_count_24h"].iloc[0] == 2.0


def test_a_row_never_sees_its_own_values_or_an_older_than_ttl_one():
    source = _txns(("c1", "2026-01-01 10:00", 10.0), ("c1", "2026-03-01 10:00", 50.0), ("c2", "2026-03-01 10:00", 7.0))
    table = compute_table("t", SPEC, source)
    rows = pd.DataFrame({"customer_id": ["c1", "c1", "c2", "nobody"],
                         "timestamp": pd.to_datetime(["2026-03-01 10:00", "2026-03-01 10:01", "2026-03-01 10:00",
                                                      "2026-03-01 10:00"])}, index=[7, 5, 3, 1])
    out = as_of(rows, table, SPEC, ["mean_amount_30d", "txn_count_24h"], "timestamp")
    assert list(out.index) == [7, 5, 3, 1]  # order and index kept
    # 10:00 on Mar 1: the Jan 1 value is 59 days old (> ttl 30d) → default; the row's own value is not known yet
    assert out.loc[7, "mean_amount_30d"] == 60.0 and out.loc[7, "txn_count_24h"] == 0.0
    assert out.loc[5, "mean_amount_30d"] == 50.0  # a minute later it is
    assert out.loc[3, "mean_amount_30d"] == 60.0 and out.loc[1, "mean_amount_30d"] == 60.0


def test_a_value_older_than_its_own_window_is_the_default():
    source = _txns(("c1", "2026-01-01 10:00", 10.0))
    table = compute_table("t", SPEC, source)
    rows = pd.DataFrame({"customer_id": ["c1"], "timestamp": pd.to_datetime(["2026-01-03 10:00"])})
    out = as_of(rows, table, SPEC, ["mean_amount_30d", "txn_count_24h"], "timestamp")
    assert out["txn_count_24h"].iloc[0] == 0.0      # the 24 h count has expired two days later
    assert out["mean_amount_30d"].iloc[0] == 10.0   # the 30 d mean has not


def test_windows_count_and_average_per_entity():
    source = _txns(("c1", "2026-01-01 00:00", 10.0), ("c2", "2026-01-01 01:00", 99.0), ("c1", "2026-01-01 12:00", 30.0),
                   ("c1", "2026-01-02 06:00", 50.0))
    table = compute_table("t", SPEC, source)
    c1 = table[table.customer_id == "c1"]
    assert list(c1["txn_count_24h"]) == [1.0, 2.0, 2.0]  # the 00:00 one left the 24 h window by 06:00 next day
    assert list(c1["mean_amount_30d"]) == [10.0, 20.0, 30.0]
    latest = latest_per_entity(SPEC, table).set_index("customer_id")
    assert latest.loc["c1", "mean_amount_30d"] == 30.0 and latest.loc["c2", "mean_amount_30d"] == 99.0


def test_unknown_features_and_source_columns_are_named():
    with pytest.raises(FeatureTableError, match="no feature"):
        as_of(pd.DataFrame({"customer_id": ["c"], "timestamp": [pd.Timestamp("2026-01-01")]}), pd.DataFrame(), SPEC,
              ["nope"], "timestamp")
    with pytest.raises(FeatureTableError, match=r"unknown column 'amount'"):
        compute_table("t", SPEC, pd.DataFrame({"customer_id": ["c"], "timestamp": [pd.Timestamp("2026-01-01")]}))
