"""Scoring a big table at the model's own speed: stream row batches in, overlap, stream scores out.

At 1M rows the trees of the model are most of the work (issue #16); everything else the job
does (parquet reading, features, the pipeline's column transforms, writing) can run while they
do, because scikit-learn's tree prediction releases the GIL. So:

- `raw_chunks` reads the input one batch of `inference.batch_size` rows at a time: from a
  parquet file only the columns the features come from (id, request and feature columns),
  with pyarrow's batch reader; a csv, or an input that gets looked-up features joined
  (`join_latest`, which joins the whole table at once), is read whole and sliced as before.
- `Reader` runs reading, `build_features` and the pipeline's transforms (`split_model`) in one
  thread, `depth` chunks ahead of the scoring thread; it starts before the job imports MLflow
  and loads the model, and waits for the model only for the transforms.
- `PartWriter` appends each chunk's predictions to one parquet file in memory (pyarrow
  `ParquetWriter`) and puts it in place atomically at the end: no `concat` of all rows.

The scores are the model's `predict_proba` / `predict`, split where `Pipeline` itself splits
them (`final.predict_proba(head.transform(X))`), so they are the same numbers, row by row;
`tests/ml/test_batch_score_stream.py` checks the table equals the in-memory path's.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.files import atomic_write
from ml import task
from ml.data.medallion import SourceDataError, read_table
from ml.training.estimator import predict
from ml.usecase import UseCase


def input_columns(uc: UseCase, available: list[str]) -> list[str]:
    """The input columns the job reads: the row id, the request columns (features are computed
    from them alone, as at serving) and any feature column the input already carries."""
    return [c for c in dict.fromkeys([uc.id_column, *uc.request_columns, *uc.feature_names]) if c in available]


def _lacks(uc: UseCase, available) -> None:
    missing = [c for c in uc.request_columns if c not in available]
    if missing:
        raise task.TaskError(f"input table lacks columns {missing}")


def joins_tables(ctx, uc: UseCase) -> bool:
    """Whether `join_latest` would join a feature table into the rows (a declared lookup with a version)."""
    from ml.features import lookups, offline

    wanted = lookups.declared(uc)
    if not wanted or uc.timestamp is None:
        return False
    ws, _ = lookups.offline_location(ctx)
    return any(w.version != "latest" or offline.latest(ws, key) is not None for key, w in wanted.items())


def raw_chunks(uc: UseCase, source: Path, batch_size: int,
               join: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> Iterator[pd.DataFrame]:
    """The input's rows, `batch_size` at a time; `join` (the env's `join_latest`, when
    `joins_tables`) adds looked-up features to the whole table first."""
    if source.suffix != ".csv" and join is None:
        import pyarrow.parquet as pq

        try:
            reader = pq.ParquetFile(source)
        except ValueError as exc:  # pyarrow's ArrowInvalid: not a parquet file
            raise SourceDataError(f"cannot read {source}: {exc}") from exc
        names = reader.schema_arrow.names
        _lacks(uc, names)
        for batch in reader.iter_batches(batch_size=batch_size, columns=input_columns(uc, names)):
            yield batch.to_pandas()
        return
    raw = read_table(source)
    _lacks(uc, raw.columns)
    if join is not None:
        raw = join(raw)
    for start in range(0, len(raw), batch_size):
        yield raw.iloc[start:start + batch_size]


def split_model(uc: UseCase, model) -> tuple[Callable[[pd.DataFrame], Any], Callable[[Any], np.ndarray]]:
    """(prepare, finish): `finish(prepare(features))` is `estimator.predict(uc, model, features)`.

    For a scikit-learn `Pipeline`, `prepare` is its transforms and `finish` its last step, as
    `Pipeline.predict_proba` does it; the job runs `prepare` in the reader thread."""
    from sklearn.pipeline import Pipeline

    names = uc.feature_names
    if not isinstance(model, Pipeline) or len(model.steps) < 2:
        return (lambda features: features), (lambda features: predict(uc, model, features))
    head, final = model[:-1], model.steps[-1][1]
    if uc.is_classification:
        return (lambda features: head.transform(features[names])), (lambda x: final.predict_proba(x)[:, 1])
    return (lambda features: head.transform(features[names])), (lambda x: np.asarray(final.predict(x), dtype="float64"))


@dataclass
class Chunk:
    start: int  # position of its first row in the input
    rows: int
    ids: np.ndarray
    prepared: Any  # the model's input after `prepare`


def chunk_ids(uc: UseCase, raw: pd.DataFrame, start: int) -> np.ndarray:
    """The rows' ids; rows without an id column are numbered by their position in the input."""
    return raw[uc.id_column].to_numpy() if uc.id_column in raw else np.arange(start, start + len(raw)).astype(str)


_DONE = object()


class Reader:
    """Reads and prepares chunks in a thread, `depth` ahead of the caller (iterate it once).

    An error in the thread (a TaskError for a bad row, a missing column, …) is raised by the
    iteration, in the caller's thread; `close` stops the thread early."""

    def __init__(self, uc: UseCase, chunks: Iterator[pd.DataFrame], depth: int = 2):
        self._uc, self._chunks = uc, chunks
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._prepare: Callable | None = None
        self._ready, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="batch-score-reader", daemon=True)
        self._thread.start()

    def start_preparing(self, prepare: Callable[[pd.DataFrame], Any]) -> None:
        self._prepare = prepare
        self._ready.set()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            start = 0
            for raw in self._chunks:
                try:
                    features = self._uc.build_features(raw)
                except ValueError as exc:  # e.g. a non-numeric value or an unparseable timestamp
                    raise task.TaskError(f"input rows {start}-{start + len(raw) - 1}: cannot compute features: {exc}") from exc
                while not self._ready.wait(0.2):
                    if self._stop.is_set():
                        return
                item = Chunk(start, len(raw), chunk_ids(self._uc, raw, start), self._prepare(features))
                if not self._put(item):
                    return
                start += len(raw)
            self._put(_DONE)
        except BaseException as exc:  # handed to the caller's thread, which raises it
            self._put(exc)

    def __iter__(self) -> Iterator[Chunk]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class PartWriter:
    """One predictions part written chunk by chunk (one row group each) into memory, then
    replaced atomically at `path`; the same table `DataFrame.to_parquet(index=False)` writes."""

    def __init__(self):
        import pyarrow as pa

        self._sink = pa.BufferOutputStream()
        self._writer = None
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._sink, table.schema)
        self._writer.write_table(table)
        self.rows += len(frame)

    def finish(self, path: Path, empty: pd.DataFrame) -> Path:
        """Close and put the part at `path`; `empty` is the table written when no chunk came."""
        if self._writer is None:
            return atomic_write(path, empty.to_parquet(index=False))
        self._writer.close()
        return atomic_write(path, self._sink.getvalue().to_pybytes())
