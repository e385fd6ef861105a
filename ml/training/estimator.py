"""Fitting and scoring a use case's estimator — shared by training, validation and deployment.

Everything that scores a model (train metrics, validation gates, champion vs challenger,
slices) goes through `evaluate`, so the numbers are comparable across steps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.config import TrainParams
from ml.usecase import UseCase
from ml.usecase.metrics import scores


def split(uc: UseCase, gold: pd.DataFrame, test_fraction: float, seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Held-out split: the most recent `test_fraction` of rows when the dataset has a timestamp
    (models are used on the future, so they are judged on the future), else a seeded random share.

    With a timestamp, rows are ordered by (timestamp, id), stably, missing values last — the
    order `DataFrame.sort_values(kind="stable")` gives — and each part is taken straight from
    `gold` in that order (one copy of the rows, not two)."""
    if uc.timestamp is not None:
        order = time_order(gold, [uc.timestamp, uc.id_column])
        cut = int(round(len(order) * (1.0 - test_fraction)))
        return _take(gold, order[:cut]), _take(gold, order[cut:])
    test_mask = np.zeros(len(gold), dtype=bool)
    n_test = int(round(len(gold) * test_fraction))
    test_mask[np.random.default_rng(seed).permutation(len(gold))[:n_test]] = True
    return gold[~test_mask].reset_index(drop=True), gold[test_mask].reset_index(drop=True)


def time_order(frame: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """Row positions of `frame` sorted by `keys` (stable, missing values last).

    pyarrow's `sort_indices` is stable and puts nulls last like pandas, and sorts 1M
    (timestamp, string id) rows in ~0.1 s where pandas' multi-key sort takes ~5 s (it factorizes
    the strings first). A column pyarrow cannot type (mixed objects) falls back to pandas."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        table = pa.table({f"k{i}": pa.array(frame[k], from_pandas=True) for i, k in enumerate(keys)})
        # nulls go last: pyarrow's default placement, as pandas' na_position="last"
        return pc.sort_indices(table, sort_keys=[(f"k{i}", "ascending") for i in range(len(keys))]).to_numpy()
    except (pa.ArrowException, TypeError, ValueError):
        return frame.reset_index(drop=True).sort_values(keys, kind="stable").index.to_numpy()


def _take(frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    part = frame.take(positions)
    part.index = pd.RangeIndex(len(part))
    return part


def training_columns(uc: UseCase) -> list[str]:
    """The gold columns training and its evaluations use, in order, each once (see `read_training_table`)."""
    wanted = (uc.timestamp, uc.id_column, *uc.feature_names, uc.label, uc.spec.validation.slice_column)
    return [c for c in dict.fromkeys(wanted) if c]


def read_training_table(uc: UseCase, path) -> pd.DataFrame:
    """The columns of a gold table that training and its evaluations use: the split keys
    (timestamp, id), the features, the label and the validation slice column — not the entity
    key or other keys, which at millions of rows are seconds of string decoding and hundreds of
    MB for nothing. Strings compact (`ml.data.tables.read_frame`): the id as arrow-backed `str`,
    category columns as categoricals, which the estimator's encoder reads as their values."""
    import pyarrow.parquet as pq

    from ml.data.tables import read_frame

    present = set(pq.read_schema(path).names)
    frame = read_frame(path, columns=[c for c in training_columns(uc) if c in present], categories=True)
    release_arrow_memory()
    return frame


def fit(uc: UseCase, p: TrainParams, train: pd.DataFrame, *, consume: bool = False):
    """A fresh estimator of `uc` fitted on `train`'s feature columns and label: the same fitted
    object `estimator.fit(train[features], train[label])` gives, with less memory at its peak.

    A scikit-learn `Pipeline` is fitted as `Pipeline.fit` does it — its transformers fitted and
    applied in order, then its final estimator fitted on their output — but in two calls
    (`model[:-1].fit_transform`, then the final step's `fit`), so the feature frame is dropped
    once it has been turned into the transformers' array instead of staying alive while the
    trees fit (at 4M rows the frame is ~260 MB next to the ~580 MB float64 array), and the
    transformers run with pandas copy-on-write (their column subsets are views of the frame).
    With `consume`, `train` itself is emptied (its columns dropped in place) as soon as the
    features and label are copied out of it: the caller's frame is then empty, and the largest
    frame of the training task is not resident while the transformers run."""
    model = uc.estimator(p)
    X, y = train[uc.feature_names], train[uc.label].to_numpy(copy=True)  # copies: `train` can go
    if consume:
        train.drop(columns=list(train.columns), inplace=True)
    steps = getattr(model, "steps", None)
    if not steps or len(steps) < 2 or steps[-1][1] is None or isinstance(steps[-1][1], str):
        return model.fit(X, y)  # not a Pipeline of transformers and an estimator: nothing to drop between
    prefix = model[:-1]  # a Pipeline over the same transformer objects, fitted in place
    # copy-on-write: the column subsets a ColumnTransformer hands its transformers are views of
    # `X`, not copies (at 4M rows ~250 MB less at the peak); same values, same fitted transformers
    with pd.option_context("mode.copy_on_write", True):
        Xt = prefix.fit_transform(X, y)
    del X  # the only reference: the frame's memory is free before the final estimator fits
    model.steps = [*prefix.steps, steps[-1]]  # as `Pipeline._fit` leaves them (fitted clones when it caches)
    steps[-1][1].fit(Xt, y)
    return model


def release_arrow_memory() -> None:
    """Give the memory pyarrow's allocator keeps from freed buffers back to the system.

    Reading a table through pyarrow (`read_frame`) and splitting it leaves the arrow pool with
    what the file's columns took while they were converted to pandas: mimalloc keeps those pages
    for reuse (measured in `train`: ~0.15 GB at 1M rows, 0.5-0.6 GB at 5M, after the read and
    again after the split), and pandas and numpy, which allocate with malloc, never reuse them."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def predict(uc: UseCase, model, X: pd.DataFrame) -> np.ndarray:
    """What the metrics score: the positive-class probability (classification) or the prediction."""
    if uc.is_classification:
        return model.predict_proba(X[uc.feature_names])[:, 1]
    return np.asarray(model.predict(X[uc.feature_names]), dtype="float64")


def evaluate(uc: UseCase, model, data: pd.DataFrame, threshold: float, predicted: np.ndarray | None = None) -> dict[str, float]:
    """The task's metrics of `model` on `data` (`predicted`: its `predict` on `data`, when the caller has it)."""
    predicted = predict(uc, model, data) if predicted is None else predicted
    return scores(uc.task, data[uc.label].to_numpy(), predicted, threshold)


def enough_evidence(uc: UseCase, y: np.ndarray, minimum: int) -> bool:
    """Whether labels `y` can judge a model: `minimum` positives and a negative (classification), `minimum` rows (regression)."""
    if uc.is_classification:
        positives = int(np.sum(y))
        return positives >= minimum and positives < len(y)
    return len(y) >= minimum


def slice_scores(uc: UseCase, model, data: pd.DataFrame, column: str, threshold: float, min_positives: int,
                 predicted: np.ndarray | None = None) -> dict[str, dict]:
    """Metrics per value of `column`; slices with too little evidence are reported, not judged
    (`predicted`: the model's `predict` on `data`, when the caller has it)."""
    predicted = predict(uc, model, data) if predicted is None else predicted
    labels = data[uc.label].to_numpy()
    out: dict[str, dict] = {}
    for value, idx in data.groupby(column, observed=True).indices.items():
        y = labels[idx]
        entry: dict = {"rows": int(len(idx))}
        if uc.is_classification:
            entry["positives"] = int(y.sum())
        if enough_evidence(uc, y, min_positives):
            entry.update(scores(uc.task, y, predicted[idx], threshold))
        out[str(value)] = entry
    return out
