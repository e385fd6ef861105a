"""A fitted scikit-learn pipeline's column transforms as plain numpy, for scoring a few rows cheaply.

Scoring one row through a `Pipeline(ColumnTransformer(OneHotEncoder, passthrough) → model)`
spends most of its time in the ColumnTransformer's per-call DataFrame handling, not in the
model. `compile_scorer` turns the fitted transforms into numpy operations on the feature
columns (a dict of arrays: no DataFrame) and hands the resulting 2-D float array to the
pipeline's remaining steps. It knows:

- `ColumnTransformer` (dense output; columns by name, or by position in the frame it was fitted
  on) of `OneHotEncoder` (dense, `handle_unknown="ignore"`, no dropped/infrequent categories),
  `StandardScaler`, `FunctionTransformer` (identity or a numpy ufunc such as `np.log1p`),
  `"passthrough"`, `"drop"` and `Pipeline`s of those;
- those same transforms as the pipeline's first steps (fitted on the named feature columns).

Anything else gives None, and the caller keeps sklearn's own path. The result is used only
after `check` found it equal to sklearn's `predict_proba` / `predict` on a sample of rows; any
exception while compiling is "not compilable", never an error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Columns = dict[str, np.ndarray]
Transform = Callable[[np.ndarray], np.ndarray]


class NotCompilable(Exception):
    pass


def _step(trans) -> Transform:
    """A numpy function for one fitted transformer applied to a 2-D array of its columns."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    if isinstance(trans, Pipeline):
        fns = [_step(t) for _, t in trans.steps if t not in (None, "passthrough")]

        def chain(x):
            for f in fns:
                x = f(x)
            return x
        return chain
    if isinstance(trans, OneHotEncoder):
        if (trans.handle_unknown != "ignore" or getattr(trans, "drop_idx_", None) is not None or trans.sparse_output
                or getattr(trans, "_infrequent_enabled", False)):
            raise NotCompilable("OneHotEncoder options")
        cats = [np.asarray(c, dtype=object) for c in trans.categories_]
        if any(v != v for c in cats for v in c):  # a NaN category: sklearn matches NaN to it, `==` would not
            raise NotCompilable("OneHotEncoder with a missing-value category")

        def onehot(x):
            return np.hstack([(x[:, [j]].astype(object) == c[None, :]).astype("float64") for j, c in enumerate(cats)])
        return onehot
    if isinstance(trans, StandardScaler):
        mean = trans.mean_ if trans.with_mean else None
        scale = trans.scale_ if trans.with_std else None

        def scaled(x):
            x = x.astype("float64")
            if mean is not None:
                x = x - mean
            return x / scale if scale is not None else x
        return scaled
    if isinstance(trans, FunctionTransformer):
        if trans.kw_args or trans.validate:
            raise NotCompilable("FunctionTransformer options")
        if trans.func is None:  # identity: what a fitted ColumnTransformer makes of "passthrough"
            return lambda x: x.astype("float64")
        if not isinstance(trans.func, np.ufunc):  # other code may rely on getting a DataFrame
            raise NotCompilable("FunctionTransformer of a function that is not a numpy ufunc")
        func = trans.func
        return lambda x: np.asarray(func(x.astype("float64")), dtype="float64")
    if trans == "passthrough":
        return lambda x: x.astype("float64")
    raise NotCompilable(type(trans).__name__)


def _column_transformer(ct) -> Callable[[Columns], np.ndarray]:
    if getattr(ct, "sparse_output_", False):
        raise NotCompilable("sparse ColumnTransformer")
    parts = []
    for _name, trans, cols in ct.transformers_:
        if trans == "drop" or (not isinstance(cols, str) and len(cols) == 0):
            continue
        if isinstance(cols, str):
            cols = [cols]
        names = getattr(ct, "feature_names_in_", None)
        if names is not None and all(isinstance(c, (int, np.integer)) for c in cols):
            cols = [str(names[c]) for c in cols]  # the remainder, by position in the fitted frame
        if not all(isinstance(c, str) for c in cols):
            raise NotCompilable("columns not named")
        parts.append((list(cols), _step(trans)))

    def transform(columns: Columns) -> np.ndarray:
        blocks = []
        for cols, fn in parts:
            x = np.column_stack([columns[c] for c in cols]) if len(cols) > 1 else np.asarray(columns[cols[0]])[:, None]
            blocks.append(fn(x))
        return np.hstack(blocks) if len(blocks) > 1 else blocks[0]
    return transform


def compile_scorer(model, columns: list[str], has_proba: bool) -> Callable[[Columns], np.ndarray] | None:
    """The score per row (the class-1 probability, else the prediction) from feature columns, or None."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if not isinstance(model, Pipeline) or len(model.steps) < 2:
        return None
    try:
        first = model.steps[0][1]
        if isinstance(first, ColumnTransformer):
            head = _column_transformer(first)
        else:
            names = list(getattr(first, "feature_names_in_", []))
            if names != list(columns):
                return None
            fn = _step(first)

            def head(cols: Columns, fn=fn, names=names) -> np.ndarray:
                return fn(np.column_stack([cols[c] for c in names]))
        rest = [t for _, t in model.steps[1:-1] if t not in (None, "passthrough")]
        final = model.steps[-1][1]
        if getattr(final, "feature_names_in_", None) is not None or any(
                getattr(t, "feature_names_in_", None) is not None for t in rest):
            return None  # fitted on a frame (transform_output="pandas"): it would want names
    except NotCompilable:
        return None
    except Exception:  # an estimator this code does not know the insides of
        return None

    def score(cols: Columns) -> np.ndarray:
        x = head(cols)
        for t in rest:
            x = t.transform(x)
        if has_proba:
            return np.asarray(final.predict_proba(x))[:, 1]
        return np.asarray(final.predict(x), dtype=float).reshape(-1)
    return score


def check(compiled: Callable[[Columns], np.ndarray], reference: Callable[[Columns], np.ndarray],
          sample: Columns) -> str | None:
    """None when `compiled` gives the same scores as `reference` on `sample` (row by row and
    together), else what differs."""
    try:
        want = reference(sample)
        got = compiled(sample)
        n = len(want)
        one = np.concatenate([compiled({c: v[i:i + 1] for c, v in sample.items()}) for i in range(min(n, 8))])
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-9, atol=1e-12, equal_nan=True):
        return f"scores differ on the sample (max |diff| {np.nanmax(np.abs(got - want)):.3g})"
    if not np.allclose(one, want[:len(one)], rtol=1e-9, atol=1e-12, equal_nan=True):
        return "single-row scores differ from the batch's"
    return None
