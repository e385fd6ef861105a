"""The fraud model's features from raw transactions — one function for the gold table, batch
scoring and serving, so training and serving cannot skew.

`compute_distance` is the on-demand feature: the distance between the customer's home and
where the card was used, computed from the request itself. usecase.yml `features.columns`
declares the columns `build_features` returns (names, order, types, ranges).

`txn_count_24h` and `mean_amount_30d` are looked up, not computed here: the customer's
aggregates from the `customer_aggregates` feature table (resources/features.yml; params.yaml
`feature_tables`), joined point-in-time for training and fetched from the online store at
serving, so they arrive as columns of `raw`. `amount_to_mean_30d` combines one with the
request (on demand). Rows that come without them (a frame no lookup ran on, e.g. a drawn
monitoring reference) get `NO_HISTORY`, the table's declared defaults.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def compute_distance(lat1, lon1, lat2, lon2):
    """Great-circle (haversine) distance in km; works on scalars and arrays."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(v, dtype="float64")) for v in (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 6371.0 * 2 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


# the customer_aggregates defaults (resources/features.yml); tests/features checks they agree
NO_HISTORY = {"txn_count_24h": 0.0, "mean_amount_30d": 60.0}


def _looked_up(raw: pd.DataFrame, name: str) -> pd.Series:
    if name in raw.columns:
        return raw[name].astype("float64").fillna(NO_HISTORY[name])
    return pd.Series(NO_HISTORY[name], index=raw.index, dtype="float64")


def build_features(raw: pd.DataFrame) -> pd.DataFrame:
    """The model's input frame (the declared feature columns, fixed dtypes) from raw transactions
    (with the looked-up customer aggregates as columns, when a lookup ran)."""
    ts = pd.to_datetime(raw["timestamp"])
    count, mean = _looked_up(raw, "txn_count_24h"), _looked_up(raw, "mean_amount_30d")
    return pd.DataFrame({
        "amount": raw["amount"].astype("float64"),
        "merchant_category": raw["merchant_category"].astype(str),
        "card_present": raw["card_present"].astype("int64"),
        "hour": ts.dt.hour.astype("int64"),
        "day_of_week": ts.dt.dayofweek.astype("int64"),
        "distance_from_home_km": compute_distance(raw["home_lat"], raw["home_lon"], raw["txn_lat"], raw["txn_lon"]).round(3),
        "txn_count_24h": count,
        "mean_amount_30d": mean,
        "amount_to_mean_30d": (raw["amount"].astype("float64") / mean.clip(lower=1.0)).round(4),
    }, index=raw.index)


def build_feature_arrays(raw: dict) -> dict[str, np.ndarray]:
    """`build_features` without pandas, for serving a few rows: raw columns (sequences or arrays;
    times as `datetime`s) → the same feature values, column by column (the endpoint checks the two agree)."""
    n = len(raw["amount"])
    amount = np.asarray(raw["amount"], dtype="float64")
    looked = {}
    for name, default in NO_HISTORY.items():
        values = np.asarray(raw[name], dtype="float64") if name in raw else np.full(n, default)
        looked[name] = np.where(np.isnan(values), default, values)
    times = raw["timestamp"]
    distance = compute_distance(raw["home_lat"], raw["home_lon"], raw["txn_lat"], raw["txn_lon"])
    return {
        "amount": amount,
        "merchant_category": np.asarray([str(v) for v in raw["merchant_category"]], dtype=object),
        "card_present": np.asarray(raw["card_present"], dtype="int64"),
        "hour": np.fromiter((t.hour for t in times), dtype="int64", count=n),
        "day_of_week": np.fromiter((t.weekday() for t in times), dtype="int64", count=n),
        "distance_from_home_km": np.round(distance, 3),
        "txn_count_24h": looked["txn_count_24h"],
        "mean_amount_30d": looked["mean_amount_30d"],
        "amount_to_mean_30d": np.round(amount / np.maximum(looked["mean_amount_30d"], 1.0), 4),
    }
