"""Features of a scored batch without pandas when it is small, checked against the pandas path.

A use case may declare `features.array_function` next to `features.function`: the same
features from raw columns given as arrays (`UseCase.build_feature_arrays`). For a batch of at
most `ARRAY_MAX_ROWS` rows the engine builds features with it (a DataFrame costs more than
scoring one row); bigger batches, and use cases without one, take `build_features`. Before
the engine uses the array function, `Features` checks on rows drawn from the declared columns
that it gives the *identical* features (values and dtypes) as `build_features` — when it does
not, the endpoint logs why and keeps the pandas path, so a twin that drifted can cost speed,
never a different answer.

`FeatureBatch` is what the engine scores: the feature columns as arrays and/or as the frame,
each made from the other only when something asks for it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

log = logging.getLogger("conveyor.serving")
ARRAY_MAX_ROWS = 64
SAMPLE_ROWS = 64


class FeatureBatch:
    """One batch's feature columns: `arrays` (name → numpy array) and `frame`, converted lazily."""

    def __init__(self, names: list[str], arrays: dict[str, np.ndarray] | None = None, frame: pd.DataFrame | None = None):
        self.names = names
        self._arrays, self._frame = arrays, frame

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            self._arrays = {c: self._frame[c].to_numpy() for c in self.names}
        return self._arrays

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame = pd.DataFrame(self._arrays, columns=self.names)
        return self._frame

    def take(self, idx: list[int]) -> FeatureBatch:
        if self._frame is not None:
            return FeatureBatch(self.names, frame=self._frame.iloc[idx])
        rows = np.asarray(idx)
        return FeatureBatch(self.names, arrays={c: v[rows] for c, v in self._arrays.items()})

    def records(self) -> list[dict]:
        """Each row's features as `{"f_<column>": python value}` (the inference table's columns)."""
        keys = [f"f_{c}" for c in self.names]
        arrays = self.arrays
        columns = [arrays[c].tolist() for c in self.names]
        return [dict(zip(keys, values)) for values in zip(*columns)]


class Features:
    """The features of one use case's rows: the array twin for small batches once it is checked."""

    def __init__(self, uc):
        self.uc = uc
        self.names = list(uc.feature_names)
        self.array_ok = False
        self.problem: str | None = None
        declared = uc.spec.dataset.columns
        # rows that did not come through the request schema (direct callers) may carry times as
        # strings: those take the pandas path, which parses them
        self._times = [c for c in uc.request_columns if c in declared and declared[c].type == "datetime"]
        if uc.spec.features.array_function is not None:
            self.problem = check_twin(uc)
            self.array_ok = self.problem is None
            if self.problem:
                log.warning("use case %s: features.array_function not used (%s); features via pandas",
                            uc.name, self.problem)

    def build(self, rows: list[dict], looked_up: dict[str, np.ndarray] | None) -> FeatureBatch:
        """Features of `rows` (request fields) with the looked-up feature columns `looked_up`."""
        if self.array_ok and len(rows) <= ARRAY_MAX_ROWS and self._checked_kind(rows):
            raw = {c: [r.get(c) for r in rows] for c in self.uc.request_columns}
            raw.update(looked_up or {})
            return FeatureBatch(self.names, arrays=self.uc.build_feature_arrays(raw))
        frame = pd.DataFrame(rows)
        for c, v in (looked_up or {}).items():
            frame[c] = v
        return FeatureBatch(self.names, frame=self.uc.build_features(frame))

    def _checked_kind(self, rows: list[dict]) -> bool:
        """Whether `rows` are of the kind `check_twin` compared: times parsed and no value missing.
        A missing value (a nullable column's None) takes the pandas path: a DataFrame makes a
        column with a None float/NaN or object by what else it holds, which no twin is checked on."""
        if any(r.get(c) is None for c in self.uc.request_columns for r in rows):
            return False
        return all(isinstance(r[c], datetime) for c in self._times for r in rows)


def sample_raw(uc, n: int = SAMPLE_ROWS, seed: int = 0) -> dict[str, list]:
    """`n` raw rows drawn from the use case's declared columns, as lists: the request columns
    within their declared types, ranges and values, and each other declared feature column as a
    float (the looked-up ones) with some missing values."""
    rng = np.random.default_rng(seed)
    declared = uc.spec.dataset.columns
    out: dict[str, list] = {}
    for name in uc.request_columns:
        out[name] = _draw(declared[name], n, rng)
    for name, col in uc.spec.features.columns.items():
        if name not in out and col.type in ("float", "int"):
            values = _draw(col, n, rng)
            out[name] = [float("nan") if rng.random() < 0.1 else float(v) for v in values]
    return out


def _draw(col, n: int, rng) -> list:
    if col.values is not None:
        return [col.values[i] for i in rng.integers(0, len(col.values), n)]
    if col.type == "datetime":
        start = datetime(2020, 1, 1)
        return [start + timedelta(seconds=int(s)) for s in rng.integers(0, 5 * 365 * 86400, n)]
    if col.type == "bool":
        return [bool(b) for b in rng.integers(0, 2, n)]
    if col.type in ("string", "category"):
        return [f"v{i}" for i in rng.integers(0, 20, n)]
    low = col.min if col.min is not None else -1000.0
    high = col.max if col.max is not None else 1000.0
    if col.type == "int":
        return [int(v) for v in rng.integers(int(low), int(high) + 1, n)]
    values = rng.uniform(low, high, n)
    if col.strict_min and col.min is not None:
        values = np.maximum(values, np.nextafter(low, np.inf))
    return [float(v) for v in values]


def same_features(arrays: dict[str, np.ndarray], frame: pd.DataFrame, names: list[str]) -> str | None:
    """None when `arrays` holds exactly `frame`'s columns `names` (values and dtype kind), else the first difference."""
    for c in names:
        if c not in arrays:
            return f"{c}: missing"
        a, b = np.asarray(arrays[c]), frame[c].to_numpy()
        if a.shape != b.shape:
            return f"{c}: {a.shape} rows, not {b.shape}"
        if a.dtype != b.dtype and not (a.dtype.kind in "OUS" and b.dtype.kind in "OUS"):
            return f"{c}: dtype {a.dtype}, not {b.dtype}"
        same = (np.array_equal(a, b, equal_nan=True) if a.dtype.kind == "f" else
                bool(np.all(a.astype(object) == b.astype(object))))
        if not same:
            i = next(i for i in range(len(a)) if not (a[i] == b[i] or (a[i] != a[i] and b[i] != b[i])))
            return f"{c}: row {i} is {a[i]!r}, not {b[i]!r}"
    return None


def check_twin(uc, n: int = SAMPLE_ROWS, seed: int = 0) -> str | None:
    """None when the use case's array function gives `build_features`'s values on drawn rows
    (a batch of them and the first rows one by one), else what differs."""
    raw = sample_raw(uc, n, seed)
    try:
        want = uc.build_features(pd.DataFrame(raw))
        problem = same_features(uc.build_feature_arrays(raw), want, uc.feature_names)
        for i in range(min(n, 4)):
            if problem is None:
                one = {c: v[i:i + 1] for c, v in raw.items()}
                problem = same_features(uc.build_feature_arrays(one), want.iloc[i:i + 1], uc.feature_names)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return problem
