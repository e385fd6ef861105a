"""Scoring a big table at the model's own speed: stream row batches in, score on every core, stream scores out.

At 1M rows the trees of the model are most of the work (issue #16); everything else the job
does (parquet reading, features, the pipeline's column transforms, writing) is arranged
around them:

- `raw_chunks` reads the input one batch of `inference.batch_size` rows at a time: from a
  parquet file only the columns the features come from (id, request and feature columns),
  with pyarrow's batch reader, the row ids staying an Arrow column from the file to the
  output (a million ids as Python strings cost ~0.2 s to make and as much to write back); a
  csv, or an input that gets looked-up features joined (`join_latest`, which joins the whole
  table at once), is read whole and sliced as before.
- `Reader` runs reading and `build_features` in one thread, up to `depth` chunks ahead; it
  starts before the job loads the model, so the features of the first chunks are ready when
  the model is (the start-up is mostly imports: one core, the reader has the other).
- `scored` runs each chunk's transforms, then hands its row blocks to `threads` threads
  (`scoring_threads`: the cores the process may use ÷ the OpenMP threads each tree walk uses)
  and gives the scores back in input order; scikit-learn's tree walk releases the GIL, so the
  threads walk the trees on all cores while the next chunk is read and transformed.
- `Scorer` runs the pipeline's transforms on a chunk and its last step on row blocks of
  `BLOCK` rows: every tree walks every row, and a block that fits the CPU cache is walked by
  all the trees from cache instead of from memory (~25% less CPU at 1M rows).
- `PartWriter` appends each chunk's predictions, as Arrow columns (no DataFrame), to one
  parquet file in memory (pyarrow `ParquetWriter`) and puts it in place atomically at the
  end: no `concat` of all rows.

The scores are the model's `predict_proba` / `predict`, split where `Pipeline` itself splits
them (`final.predict_proba(head.transform(X))`) and taken row block by row block (each row's
score is its own sum over the trees, in the same order), so they are the same numbers, bit for
bit; `tests/ml/test_batch_score_stream.py` checks the table equals the in-memory path's.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.files import atomic_write
from ml import task
from ml.data.medallion import SourceDataError, read_table
from ml.training.estimator import predict
from ml.usecase import UseCase

BLOCK = 16_384  # rows per tree walk: ~2.4 MB of float64 features at 18 columns, within the cache


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
               join: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> Iterator[tuple[pd.DataFrame, object]]:
    """The input's rows, `batch_size` at a time, as (rows, ids): `ids` is the id column as a
    pyarrow array when read from parquet (then `rows` lacks it, unless it is a request
    column), else None (`chunk_ids` takes them from `rows`); `join` (the env's `join_latest`,
    when `joins_tables`) adds looked-up features to the whole table first."""
    if source.suffix != ".csv" and join is None:
        import pyarrow.parquet as pq

        try:
            reader = pq.ParquetFile(source)
        except ValueError as exc:  # pyarrow's ArrowInvalid: not a parquet file
            raise SourceDataError(f"cannot read {source}: {exc}") from exc
        names = reader.schema_arrow.names
        _lacks(uc, names)
        for batch in reader.iter_batches(batch_size=batch_size, columns=input_columns(uc, names)):
            yield _rows_and_ids(uc, batch)
        return
    raw = read_table(source)
    _lacks(uc, raw.columns)
    if join is not None:
        raw = join(raw)
    for start in range(0, len(raw), batch_size):
        yield raw.iloc[start:start + batch_size], None


def _rows_and_ids(uc: UseCase, batch) -> tuple[pd.DataFrame, object]:
    """A parquet batch as (rows for `build_features`, its ids as Arrow): the ids' type is the
    one they would have after a trip through pandas (`large_string` becomes `string`)."""
    import pyarrow as pa

    if uc.id_column not in batch.schema.names:
        return batch.to_pandas(), None
    ids = batch.column(uc.id_column)
    if pa.types.is_large_string(ids.type):
        ids = ids.cast(pa.string())
    rows = batch if uc.id_column in uc.request_columns else batch.drop_columns([uc.id_column])
    return rows.to_pandas(), ids


class Scorer:
    """`finish(prepare(features))` is `estimator.predict(uc, model, features)`, the same numbers.

    For a scikit-learn `Pipeline`, `prepare` is its transforms and `finish` its last step, as
    `Pipeline.predict_proba` / `predict` split it, and `blocks` cuts the transformed rows into
    the row blocks `finish` takes one at a time; anything else is `predict` on the whole chunk."""

    def __init__(self, uc: UseCase, model, block: int = BLOCK):
        from sklearn.pipeline import Pipeline

        self._uc, self._model, self.block = uc, model, block
        self._split = isinstance(model, Pipeline) and len(model.steps) >= 2
        if self._split:
            self._head, self._final = model[:-1], model.steps[-1][1]

    def prepare(self, features: pd.DataFrame):
        return self._head.transform(features[self._uc.feature_names]) if self._split else features

    def blocks(self, prepared) -> list:
        n = len(prepared)
        if not self._split or n <= self.block:
            return [prepared]
        return [prepared[i:i + self.block] for i in range(0, n, self.block)]

    def finish(self, prepared) -> np.ndarray:
        if not self._split:
            return predict(self._uc, self._model, prepared)
        if self._uc.is_classification:
            return self._final.predict_proba(prepared)[:, 1]
        return np.asarray(self._final.predict(prepared), dtype="float64")

    def __call__(self, features: pd.DataFrame) -> np.ndarray:
        parts = [self.finish(b) for b in self.blocks(self.prepare(features))]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def scoring_threads() -> int:
    """Threads that score chunks side by side: the cores this process may use, each tree walk
    taking as many as scikit-learn's OpenMP uses (`OMP_NUM_THREADS`, a task's default: half the
    cores). Batch scoring has the machine to itself while it scores (the tracking server is idle
    then), so it fills every core instead of leaving one free as training does.
    `CONVEYOR_BATCH_SCORE_THREADS` sets the count instead."""
    from core import settings

    if settings.BATCH_SCORE_THREADS.get():
        return max(1, settings.BATCH_SCORE_THREADS.get())
    from joblib import cpu_count
    from threadpoolctl import threadpool_info

    cores = cpu_count()  # the CPUs this process may use: affinity and a container's CPU quota
    omp = max([p.get("num_threads", 1) for p in threadpool_info() if p.get("user_api") == "openmp"] or [1])
    return max(1, cores // max(1, omp))


@dataclass
class Chunk:
    start: int  # position of its first row in the input
    rows: int
    ids: object  # a numpy array, or a pyarrow array (read from parquet)
    features: pd.DataFrame  # the use case's `build_features` of the chunk's rows


def chunk_ids(uc: UseCase, raw: pd.DataFrame, start: int) -> np.ndarray:
    """The rows' ids; rows without an id column are numbered by their position in the input."""
    return raw[uc.id_column].to_numpy() if uc.id_column in raw else np.arange(start, start + len(raw)).astype(str)


_DONE = object()


class Reader:
    """Reads chunks ((rows, ids) of `raw_chunks`) and computes their features in a thread,
    `depth` ahead of the caller (iterate it once).

    An error in the thread (a TaskError for a bad row, a missing column, …) is raised by the
    iteration, in the caller's thread; `close` stops the thread early."""

    def __init__(self, uc: UseCase, chunks: Iterator[pd.DataFrame], depth: int = 8):
        self._uc, self._chunks = uc, chunks
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batch-score-reader", daemon=True)
        self._thread.start()

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
            for raw, ids in self._chunks:
                try:
                    features = self._uc.build_features(raw)
                except ValueError as exc:  # e.g. a non-numeric value or an unparseable timestamp
                    raise task.TaskError(f"input rows {start}-{start + len(raw) - 1}: cannot compute features: {exc}") from exc
                ids = chunk_ids(self._uc, raw, start) if ids is None else ids
                if not self._put(Chunk(start, len(raw), ids, features)):
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


def scored(chunks: Iterator[Chunk], scorer: Scorer, threads: int = 1) -> Iterator[tuple[Chunk, np.ndarray]]:
    """(chunk, its scores) in input order. The caller's thread prepares each chunk (the
    pipeline's transforms) while `threads` threads walk the trees of the previous chunk's row
    blocks (and, for the first chunk, of its first block: nothing to walk otherwise while the
    first, slowest transform runs); an error of a chunk's scoring is raised here, in the
    caller's thread."""
    if threads <= 1:
        for chunk in chunks:
            yield chunk, scorer(chunk.features)
        return
    from concurrent.futures import ThreadPoolExecutor

    def result(futures) -> np.ndarray:
        parts = [f.result() for f in futures]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="batch-score") as pool:
        pending: deque = deque()

        def submit(features: pd.DataFrame) -> list:
            return [pool.submit(scorer.finish, b) for b in scorer.blocks(scorer.prepare(features))]
        try:
            for n, chunk in enumerate(chunks):
                if n == 0 and len(chunk.features) > scorer.block:  # the threads start on its first block
                    futures = submit(chunk.features.iloc[:scorer.block]) + submit(chunk.features.iloc[scorer.block:])
                else:
                    futures = submit(chunk.features)
                pending.append((chunk, futures))
                if len(pending) > 1:
                    done, futures = pending.popleft()
                    yield done, result(futures)
            while pending:
                done, futures = pending.popleft()
                yield done, result(futures)
        finally:
            for _, futures in pending:
                for future in futures:
                    future.cancel()


class PartWriter:
    """One predictions part written chunk by chunk (one row group each) into memory, then
    replaced atomically at `path`; read back, the table `DataFrame.to_parquet(index=False)`
    of the same columns would give (same columns, types and values).

    Each chunk comes as columns: numpy or pyarrow arrays, or one value for every row (a
    string, a `pd.Timestamp`), repeated by Arrow rather than as a million Python objects.
    Columns of `plain` (a value per row: ids, scores) are written without parquet's dictionary
    encoding, which would build a dictionary of a million distinct values to throw it away
    (~40% of the writer's CPU); the others (the model, the run, the time) keep it."""

    def __init__(self, plain: tuple[str, ...] = ()):
        import pyarrow as pa

        self._sink = pa.BufferOutputStream()
        self._writer = None
        self._plain = set(plain)
        self.rows = 0

    def write(self, columns: dict[str, object]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = next(len(v) for v in columns.values() if isinstance(v, (np.ndarray, pa.Array, pa.ChunkedArray)))
        table = pa.table({name: _arrow(value, rows) for name, value in columns.items()})
        if self._writer is None:
            dictionary = [c for c in table.column_names if c not in self._plain]
            self._writer = pq.ParquetWriter(self._sink, table.schema, use_dictionary=dictionary)
        self._writer.write_table(table)
        self.rows += rows

    def finish(self, path: Path, empty: pd.DataFrame) -> Path:
        """Close and put the part at `path`; `empty` is the table written when no chunk came."""
        if self._writer is None:
            return atomic_write(path, empty.to_parquet(index=False))
        self._writer.close()
        return atomic_write(path, self._sink.getvalue().to_pybytes())


def _arrow(value, rows: int):
    """A column as Arrow: an array as it is (numpy object arrays of strings become `string`),
    one value repeated `rows` times (typed as pandas would broadcast it: `pa.scalar`)."""
    import pyarrow as pa

    if isinstance(value, (pa.Array, pa.ChunkedArray)):
        return value
    if isinstance(value, np.ndarray):
        return pa.array(value)
    return pa.repeat(pa.scalar(value), rows)
