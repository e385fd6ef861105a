"""Model features from raw transactions — shared by the gold stage, batch scoring and serving.

One function computes them everywhere so training and serving cannot skew.
`compute_distance` is the on-demand feature the seeds describe (distance between the
customer's home and where the card was used).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NUMERIC_FEATURES = ["amount", "card_present", "hour", "day_of_week", "distance_from_home_km"]
CATEGORICAL_FEATURES = ["merchant_category"]
FEATURES = ["amount", "merchant_category", "card_present", "hour", "day_of_week", "distance_from_home_km"]
LABEL = "is_fraud"
# Columns a raw transaction must carry so features can be computed from it.
RAW_INPUT_COLUMNS = ["timestamp", "amount", "merchant_category", "card_present", "home_lat", "home_lon", "txn_lat", "txn_lon"]


def compute_distance(lat1, lon1, lat2, lon2):
    """Great-circle (haversine) distance in km; works on scalars and arrays."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(v, dtype="float64")) for v in (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 6371.0 * 2 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def build_features(raw: pd.DataFrame) -> pd.DataFrame:
    """The model's input frame (columns `FEATURES`, fixed dtypes) from raw transactions."""
    ts = pd.to_datetime(raw["timestamp"])
    return pd.DataFrame({
        "amount": raw["amount"].astype("float64"),
        "merchant_category": raw["merchant_category"].astype(str),
        "card_present": raw["card_present"].astype("int64"),
        "hour": ts.dt.hour.astype("int64"),
        "day_of_week": ts.dt.dayofweek.astype("int64"),
        "distance_from_home_km": compute_distance(raw["home_lat"], raw["home_lon"], raw["txn_lat"], raw["txn_lon"]).round(3),
    }, index=raw.index)
