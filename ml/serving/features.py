"""On-demand features: computed at request time from request fields.

Training must call the same functions (import them from here) so the model sees the
same feature at training and serving time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EARTH_RADIUS_KM = 6371.0088


def compute_distance(home_lat, home_lon, tx_lat, tx_lon):
    """Great-circle (haversine) distance in km between customer home and transaction location.

    Works on scalars and numpy/pandas arrays alike.
    """
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(v, dtype=float)) for v in (home_lat, home_lon, tx_lat, tx_lon))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def add_on_demand_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Return `frame` with `distance_km` added (no copy of other columns' data)."""
    out = frame.copy(deep=False)
    out["distance_km"] = compute_distance(frame["home_lat"], frame["home_lon"], frame["tx_lat"], frame["tx_lon"])
    return out
