"""The diabetes model's features: the ten baseline measurements, typed as the model expects.

One function for the gold table, batch scoring and serving, so training and serving cannot
skew; its array twin serves a few rows without pandas, and the endpoint uses it only after
checking that the two agree (edit both together). usecase.yml `features.columns` declares what it returns (names, order, types, ranges).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MEASUREMENTS = ["bmi", "bp", "tc", "ldl", "hdl", "tch", "ltg", "glu"]


def build_features(raw: pd.DataFrame) -> pd.DataFrame:
    """The model's input frame (the declared feature columns, fixed dtypes) from raw patient rows."""
    out = pd.DataFrame({"age": raw["age"].astype("int64"), "sex": raw["sex"].astype("int64")}, index=raw.index)
    for name in MEASUREMENTS:
        out[name] = raw[name].astype("float64")
    return out


def build_feature_arrays(raw: dict) -> dict[str, np.ndarray]:
    """`build_features` without pandas, for serving a few rows (the endpoint checks the two agree)."""
    out = {"age": np.asarray(raw["age"], dtype="int64"), "sex": np.asarray(raw["sex"], dtype="int64")}
    for name in MEASUREMENTS:
        out[name] = np.asarray(raw[name], dtype="float64")
    return out
