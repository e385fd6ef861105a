"""Point-in-time correct joins: each row gets a feature table's values as of its own timestamp.

A row at time T takes, for its entity, the newest table row stamped strictly before T
(`allow_exact_matches=False`: a value computed from the row itself, or from anything at
the same instant, is not known yet when the row happens). A value older than the table's
`ttl` or than its own window as of T (everything it aggregated has left the window by
then), or no value at all, is the declared default (`max_age`) — exactly what the online lookup
does at serving time, so training and serving see the same thing.

A naive join (each entity's latest values, whenever the row happened) would hand a training
row values computed from its own future; `tests/features/test_pit.py` shows the difference.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from core.feature_tables import FeatureTableError, FeatureTableSpec, parse_duration

AGE = "__feature_ts"


def as_of(rows: pd.DataFrame, table: pd.DataFrame, spec: FeatureTableSpec, features: list[str],
          row_time: str, key: str = "feature table") -> pd.DataFrame:
    """`rows` (order and index kept) plus `features` joined as of each row's `row_time`."""
    unknown = [f for f in features if f not in spec.features]
    if unknown:
        raise FeatureTableError(f"{key}: no feature {unknown} (it has {sorted(spec.features)})")
    ent = spec.entity_key
    missing = [c for c in (ent, row_time) if c not in rows.columns]
    if missing:
        raise FeatureTableError(f"{key}: the rows to join lack columns {missing} (joined on {ent!r} as of {row_time!r})")
    left = pd.DataFrame({"__pos": np.arange(len(rows)), ent: rows[ent].astype(str).to_numpy(),
                         "__t": pd.to_datetime(rows[row_time]).to_numpy()})
    left = left.sort_values("__t", kind="stable")
    right = table[[ent, spec.timestamp, *features]].rename(columns={spec.timestamp: AGE})
    right = right.assign(**{ent: right[ent].astype(str), AGE: pd.to_datetime(right[AGE])}).sort_values(AGE, kind="stable")
    right["__tr"] = right[AGE]
    joined = pd.merge_asof(left, right, left_on="__t", right_on="__tr", by=ent, direction="backward",
                           allow_exact_matches=False)
    joined = joined.sort_values("__pos")
    age = (joined["__t"] - joined[AGE]).to_numpy()
    out = rows.copy()
    for name in features:
        values = joined[name].to_numpy(dtype="float64")
        too_old = age > np.timedelta64(max_age(spec, name))
        values[too_old | np.isnan(values)] = spec.features[name].default
        out[name] = values
    return out


def max_age(spec: FeatureTableSpec, name: str) -> timedelta:
    """How old feature `name`'s value may be when used: the table's ttl, or its window if shorter."""
    return min(spec.ttl_delta, parse_duration(spec.features[name].window))


def naive_latest(rows: pd.DataFrame, table: pd.DataFrame, spec: FeatureTableSpec, features: list[str]) -> pd.DataFrame:
    """The WRONG join, for tests and docs: every row gets its entity's newest values."""
    latest = table.sort_values(spec.timestamp).drop_duplicates(spec.entity_key, keep="last")
    merged = rows.assign(**{spec.entity_key: rows[spec.entity_key].astype(str)}).merge(
        latest[[spec.entity_key, *features]], on=spec.entity_key, how="left")
    for name in features:
        merged[name] = merged[name].fillna(spec.features[name].default)
    merged.index = rows.index
    return merged
