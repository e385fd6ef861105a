"""A feature table's rows from its source rows: per entity, trailing-window aggregates.

One output row per source row (entity, event time): each feature aggregates the entity's
source rows whose event time lies in `(t - window, t]`, the row itself included. A value is
therefore known from its event time on, which is what `pit.as_of` relies on (a training row
at time T only sees feature rows stamped strictly before T).
"""

from __future__ import annotations

import pandas as pd

from core.feature_tables import FeatureTableError, FeatureTableSpec, column_problems, parse_duration


def _source_types(frame: pd.DataFrame) -> dict[str, str]:
    out = {}
    for col, dtype in frame.dtypes.items():
        if pd.api.types.is_datetime64_any_dtype(dtype):
            out[col] = "datetime"
        elif pd.api.types.is_bool_dtype(dtype):
            out[col] = "bool"
        elif pd.api.types.is_numeric_dtype(dtype):
            out[col] = "float"
        else:
            out[col] = "string"
    return out


def check_source(key: str, spec: FeatureTableSpec, frame: pd.DataFrame) -> None:
    """FeatureTableError naming each column `spec` reads that the actual source rows lack."""
    problems = column_problems(spec, _source_types(frame))
    if problems:
        raise FeatureTableError(f"feature table {key!r}: the source rows of use case {spec.source.use_case!r} do not "
                                "fit its declaration: " + "; ".join(f"{'.'.join(map(str, p))}: {m}" for p, m in problems))


def compute_table(key: str, spec: FeatureTableSpec, source: pd.DataFrame) -> pd.DataFrame:
    """`[entity_key, timestamp, *features]`, ordered by (timestamp, entity), from source rows."""
    check_source(key, spec, source)
    ent, ts = spec.entity_key, spec.timestamp
    base = source[[ent, ts, *{f.column for f in spec.features.values() if f.column}]].copy()
    base[ent] = base[ent].astype(str)
    base = base.dropna(subset=[ent, ts]).sort_values([ent, ts], kind="stable").reset_index(drop=True)
    base["__one"] = 1.0
    indexed = base.set_index(ts)
    grouped = indexed.groupby(ent, sort=False)
    out = pd.DataFrame({ent: base[ent].to_numpy(), ts: base[ts].to_numpy()})
    for name, feat in spec.features.items():
        column = "__one" if feat.aggregation == "count" else feat.column
        window = pd.Timedelta(parse_duration(feat.window))
        rolled = grouped[column].rolling(window).agg("sum" if feat.aggregation == "count" else feat.aggregation)
        # groupby-rolling keeps each group's rows in order and the groups in first-seen order, which is
        # `base`'s order (sorted by entity, then time), so the values line up with `out` row by row
        out[name] = rolled.to_numpy(dtype="float64")
    return out.sort_values([ts, ent], kind="stable").reset_index(drop=True)


def latest_per_entity(spec: FeatureTableSpec, table: pd.DataFrame) -> pd.DataFrame:
    """The newest row of each entity: what the online store holds."""
    ordered = table.sort_values([spec.timestamp], kind="stable")
    return ordered.drop_duplicates(subset=[spec.entity_key], keep="last").reset_index(drop=True)
