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
from pathlib import Path

import numpy as np
import pandas as pd

from core import runtime
from core.files import atomic_write
from ml import task
from ml.data.medallion import read_table
from ml.data.versioning import workspace_for
from ml.features.lookups import join_latest
from ml.registry import CHAMPION, alias_version
from ml.training.estimator import predict
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


def score_frame(uc: UseCase, model, raw: pd.DataFrame, threshold: float, batch_size: int, progress=None) -> pd.DataFrame:
    """The model's score per row of `raw`, in chunks so memory stays flat on big tables."""
    missing = [c for c in uc.request_columns if c not in raw.columns]
    if missing:
        raise task.TaskError(f"input table lacks columns {missing}")
    parts = []
    for start in range(0, len(raw), batch_size):
        chunk = raw.iloc[start:start + batch_size]
        try:
            features = uc.build_features(chunk)
        except ValueError as exc:  # e.g. a non-numeric value or an unparseable timestamp
            raise task.TaskError(f"input rows {start}-{start + len(chunk) - 1}: cannot compute features: {exc}") from exc
        predicted = predict(uc, model, features)
        ids = chunk[uc.id_column].to_numpy() if uc.id_column in chunk else np.arange(start, start + len(chunk)).astype(str)
        columns = {uc.id_column: ids}
        if uc.is_classification:
            columns.update({uc.score_column: predicted, uc.prediction_column: predicted >= threshold})
        else:
            columns[uc.prediction_column] = predicted
        parts.append(pd.DataFrame({**columns, "scored_at": pd.Timestamp(dt.datetime.now(dt.UTC))}))
        if progress is not None:
            progress(len(chunk))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=output_columns(uc))


def main(argv: list[str] | None = None) -> int:
    ap = task.parser("ml.inference.batch_score", __doc__)
    ap.add_argument("--input", default=None, help="parquet/csv of raw rows (default: env's latest silver table)")
    ap.add_argument("--output", default=None, help="predictions table dir (default: <storage.root>/tables/predictions)")
    ap.add_argument("--alias", default=CHAMPION, help="model alias to score with")
    args = ap.parse_args(argv)

    def body() -> int:
        import mlflow
        import mlflow.sklearn
        from rich.progress import Progress

        ctx = runtime.context()
        uc = task.use_case_from(args)
        params = task.params_from(args)
        name = task.model_name(args, ctx)
        client = mlflow.MlflowClient()
        serving = served_champion(ctx.storage_path("endpoint"), name) if args.alias == CHAMPION else None
        mv = client.get_model_version(name, serving) if serving else alias_version(client, name, args.alias)
        if mv is None:
            raise task.TaskError(f"{name} has no `{args.alias}` in env {ctx.env}: run model_training_job first")
        if args.input:
            source = Path(args.input)
        else:
            source = workspace_for(ctx, uc.name)[0] / "data" / "silver.parquet"
        if not source.is_file():
            raise task.TaskError(f"input table {source} not found (pass --input)")
        raw = read_table(source)
        raw = join_latest(ctx, uc, raw)  # looked-up features as of each row (ml/features/lookups.py)
        model = mlflow.sklearn.load_model(f"models:/{name}/{mv.version}")
        with Progress(transient=True) as bar:
            job = bar.add_task(f"scoring {len(raw)} rows with {name} v{mv.version}", total=len(raw))
            out = score_frame(uc, model, raw, params.train.threshold, params.inference.batch_size,
                              progress=lambda n: bar.advance(job, n))
        out["model_name"] = name
        out["model_version"] = mv.version
        out["job_run_id"] = ctx.run_id or "manual"
        table = Path(args.output) if args.output else ctx.storage_path("root") / "tables" / "predictions"
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        part = atomic_write(table / f"part-{stamp}-{ctx.run_id or 'manual'}.parquet", out.to_parquet(index=False))
        task.publish("predictions_table", str(table))
        task.publish("predictions_part", str(part))
        task.publish("rows_scored", len(out))
        task.publish("model_version", mv.version)
        flagged = f" ({int(out[uc.prediction_column].sum())} flagged)" if uc.is_classification else ""
        print(f"batch_score: {len(out)} rows scored with {name} v{mv.version}{flagged} -> {part}")
        return 0

    return task.run_task("batch_score", body)


if __name__ == "__main__":
    raise SystemExit(main())
