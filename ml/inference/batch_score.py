"""Task `batch_score`: score a table of raw rows with the env's champion into a predictions table.

The champion is what the env's endpoint serves as champion (its endpoint config), so a rollout in
progress never makes batch and online scores disagree; without an endpoint serving the model,
the registry's `champion` alias (`--alias` picks another alias).

    python -m ml.inference.batch_score [--use-case NAME] [--input rows.parquet] [--output DIR]

Input: parquet/csv of the use case's raw rows (at least its request columns; a label column is
ignored). Default input is the silver table last ingested in this env's DVC workspace.
Output: one parquet part per run under `<storage.root>/tables/predictions/` (read the
directory as one table): the row id, the use case's score column (classification: the
probability) and prediction column; every row carries `model_name`, `model_version`,
`scored_at` and the job run id.
"""

from __future__ import annotations

import datetime as dt
import gc
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from core import runtime
from ml import task
from ml.data.versioning import workspace_for
from ml.features.lookups import join_latest
from ml.inference import stream
from ml.inference.fetch import Fetch, load
from ml.registry import CHAMPION
from ml.usecase import UseCase


def served_champion(endpoint_root: Path, name: str) -> str | None:
    """The version of `name` an endpoint of the env serves as champion right now, or None.

    During a canary or an A/B test the registry's `champion` alias and the endpoint may briefly
    disagree; batch scores must come from the model callers get answers from."""
    from ml.serving import endpoints
    from ml.serving.endpoint_config import read_config

    dirs = [Path(endpoint_root)] + [endpoints.config_dir(endpoint_root, key) for key in endpoints.named_bindings(endpoint_root)]
    for directory in dirs:
        champion = read_config(directory).champion
        if champion is not None and champion.name == name:
            return champion.version
    return None


def output_columns(uc: UseCase) -> list[str]:
    scored = [uc.score_column, uc.prediction_column] if uc.is_classification else [uc.prediction_column]
    return [uc.id_column, *scored, "scored_at"]


def prediction_columns(uc: UseCase, ids, predicted: np.ndarray, threshold: float) -> dict[str, object]:
    """One chunk's columns of the predictions table (without the model and run columns):
    arrays, and `scored_at` one time for all its rows."""
    columns = {uc.id_column: ids}
    if uc.is_classification:
        columns.update({uc.score_column: predicted, uc.prediction_column: predicted >= threshold})
    else:
        columns[uc.prediction_column] = predicted
    return {**columns, "scored_at": pd.Timestamp(dt.datetime.now(dt.UTC))}


def score_chunks(uc: UseCase, reader, scorer, threshold: float, model: tuple[str, str, str], part: Path,
                 threads: int = 1):
    """Score each chunk of `reader` with `scorer` (`stream.Scorer`; its row blocks on `threads`
    threads) into the parquet file `part`, in input order; `model` is (model_name,
    model_version, job_run_id) for every row. Returns (part, rows, flagged)."""
    name, version, run_id = model
    plain = (uc.id_column, uc.score_column) if uc.is_classification else (uc.id_column, uc.prediction_column)
    writer, flagged = stream.PartWriter(plain), 0
    for chunk, predicted in stream.scored(iter(reader), scorer, threads):
        columns = prediction_columns(uc, chunk.ids, predicted, threshold)
        writer.write({**columns, "model_name": name, "model_version": version, "job_run_id": run_id})
        flagged += int(columns[uc.prediction_column].sum()) if uc.is_classification else 0
        # a line per chunk, not a live bar: the job's log shows how far it got
        print(f"batch_score: {chunk.start + chunk.rows} rows scored", file=sys.stderr, flush=True)
    empty = pd.DataFrame(columns=[*output_columns(uc), "model_name", "model_version", "job_run_id"])
    return writer.finish(part, empty), writer.rows, flagged


def score(args, ctx, uc: UseCase, params, name: str, source: Path, reader: stream.Reader, fetch: Fetch) -> int:
    """Load the model `fetch` resolved, score `reader`'s chunks, write one part of the predictions table."""
    import skops.io  # noqa: F401  the long import (all of scikit-learn), while `fetch` downloads the model

    answer = fetch.result()
    if answer is None:
        raise task.TaskError(f"{name} has no `{args.alias}` in env {ctx.env}: run model_training_job first")
    if not source.is_file():
        raise task.TaskError(f"input table {source} not found (pass --input)")
    version, model = answer["version"], load(answer)
    gc.enable()  # the start-up's imports are done (see `main`)
    run_id = ctx.run_id or "manual"
    table = Path(args.output) if args.output else ctx.storage_path("root") / "tables" / "predictions"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    part, rows, flagged = score_chunks(uc, reader, stream.Scorer(uc, model), params.train.threshold,
                                       (name, version, run_id), table / f"part-{stamp}-{run_id}.parquet",
                                       stream.scoring_threads())
    task.publish("predictions_table", str(table))
    task.publish("predictions_part", str(part))
    task.publish("rows_scored", rows)
    task.publish("model_version", version)
    note = f" ({flagged} flagged)" if uc.is_classification else ""
    print(f"batch_score: {rows} rows scored with {name} v{version}{note} -> {part}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = task.parser("ml.inference.batch_score", __doc__)
    ap.add_argument("--input", default=None, help="parquet/csv of raw rows (default: env's latest silver table)")
    ap.add_argument("--output", default=None, help="predictions table dir (default: <storage.root>/tables/predictions)")
    ap.add_argument("--alias", default=CHAMPION, help="model alias to score with")
    args = ap.parse_args(argv)

    def body() -> int:
        # Until the model is loaded the job mostly imports (scikit-learn, SciPy, skops: ~1.5 s of
        # CPU at the head of its critical path), and the cyclic collector keeps walking the
        # growing module graph while finding nothing to free: ~11% of that CPU (#16).
        gc.disable()
        try:
            return job()
        finally:
            gc.enable()

    def job() -> int:
        ctx = runtime.context()
        uc = task.use_case_from(args)
        params = task.params_from(args)
        name = task.model_name(args, ctx)
        source = Path(args.input) if args.input else workspace_for(ctx, uc.name)[0] / "data" / "silver.parquet"
        # the model is found and downloaded by a second process (ml/inference/fetch.py) and the
        # input read and featurized by a thread, while this one imports scikit-learn to load it;
        # the reader's errors (no such file, a missing column) surface when the chunks are taken
        serving = served_champion(ctx.storage_path("endpoint"), name) if args.alias == CHAMPION else None
        fetch = Fetch(name, serving, args.alias)
        try:
            join = partial(join_latest, ctx, uc) if stream.joins_tables(ctx, uc) else None
            reader = stream.Reader(uc, stream.raw_chunks(uc, source, params.inference.batch_size, join))
            try:
                return score(args, ctx, uc, params, name, source, reader, fetch)
            finally:
                reader.close()
        finally:
            fetch.close()

    return task.run_task("batch_score", body)


def exit_now(code: int) -> None:
    """Leave the process once the job is done, without the interpreter's module-by-module teardown
    of SciPy, scikit-learn and MLflow (~1.5 s of CPU at 1M rows' scale, issue #16): exit handlers
    (MLflow's temp dirs, logging) run and the streams are flushed first, so nothing is lost."""
    import atexit
    import os

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
