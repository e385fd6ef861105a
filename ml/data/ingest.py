"""Task `ingest`: snapshot a use case's source, produce bronze/silver/gold with DVC in the env's workspace and version them.

The source is usecase.yml `source` (its entry under `source.targets` for this run's bundle
target), or `--source <file>`. A file, partitions or SQL source is read here, its window kept
(ml/data/sources/), and that snapshot is landed for DVC: same rows, same data version. A source
that is missing, empty, unreadable, of the wrong schema or unreachable stops the task before
anything is landed, so the workspace and every version in the remote stay as they were.

Publishes task values `data_version` (DVC md5 of gold), `data_commit`, `bronze_md5`,
`data_rows`, `source_rows`, `mlflow_run_id`; tags the job run's MLflow run with them and logs
`data_source.json` (what was read: files and sizes, or the query; the window).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from core import runtime
from ml import task
from ml.code import code_root
from ml.data import sources
from ml.data.tables import write_frame
from ml.features import lookups
from ml.data.versioning import cache_file, reproduce, workspace_for


def main(argv: list[str] | None = None) -> int:
    ap = task.parser("ml.data.ingest", __doc__)
    ap.add_argument("--rows", type=int, default=None, help="override data.rows")
    ap.add_argument("--seed", type=int, default=None, help="override data.seed")
    ap.add_argument("--drift", type=float, default=None, help="override data.drift")
    ap.add_argument("--subset", type=float, default=None, help="override data.subset (fraction of rows)")
    ap.add_argument("--source", default=None, help="ingest this parquet/csv file instead of the declared source")
    args = ap.parse_args(argv)

    def body() -> int:
        ctx = runtime.context()
        uc = task.use_case_from(args)
        overrides = list(args.set)
        for key in ("rows", "seed", "drift", "subset"):
            if getattr(args, key) is not None:
                overrides.append(f"data.{key}={getattr(args, key)}")
        raw = uc.raw_params(overrides, args.params)  # checked: fails early on bad values
        pins = lookups.pin(ctx, uc, raw)  # feature table versions the gold stage joins (ml/features/lookups.py)
        source, snap = None, None
        if args.source in ("", "generate"):
            args.source = None
        if args.source and ("://" in args.source or args.source.startswith("{storage}")):
            # on the env's storage or object storage (a retrain's window: ml/monitoring/training_window.py)
            snap = sources.given(uc, args.source, sources.Where(code_root(), ctx.outputs.storage.root))
        elif args.source:
            source = Path(args.source).expanduser().resolve()
            if not source.is_file():
                raise task.TaskError(f"--source {args.source}: no such file")
        else:
            declared = uc.spec.source.for_target(ctx.target)
            snap = sources.snapshot(uc, declared, sources.Where(code_root(), ctx.outputs.storage.root))
        ws, remote = workspace_for(ctx, uc.name)
        with tempfile.TemporaryDirectory(prefix="conveyor-snapshot-") as tmp:
            if snap is not None:
                source = Path(tmp) / "snapshot.parquet"
                write_frame(snap.frame, source)
            version = reproduce(ws, remote, raw, source_file=source)
        described = snap.description if snap else (str(source) if source else "generate")
        rows = pq.ParquetFile(cache_file(ws, version.gold_md5)).metadata.num_rows  # the footer: no column read
        import mlflow  # only now: the stages ran in this process (ml.data.stage_server), their peak memory without it
        with task.start_job_run(ctx, task.experiment(args), None):
            mlflow.set_tags({
                "data_version": version.gold_md5,
                "data_commit": version.commit,
                "data_bronze_md5": version.bronze_md5,
                "data_silver_md5": version.silver_md5,
                "data_source": described,
                "use_case": uc.name,
                **lookups.tags(pins),
            })
            mlflow.log_params({f"data.{k}": v for k, v in raw.get("data", {}).items() if k != "source"})
            mlflow.log_metric("data_rows", rows)
            if snap is not None:
                mlflow.log_dict(snap.manifest, "data_source.json")
            elif source is not None and source.with_suffix(".lineage.json").is_file():
                # a labelled traffic window (ml/monitoring/training_window.py) says where its rows came from
                mlflow.log_dict(json.loads(source.with_suffix(".lineage.json").read_text()), "data_source.json")
        for key, value in (("data_version", version.gold_md5), ("data_commit", version.commit),
                           ("bronze_md5", version.bronze_md5), ("data_rows", rows),
                           ("source_rows", snap.manifest["rows"] if snap else None)):
            task.publish(key, value)
        print(f"ingest: {described} -> data version {version.gold_md5} ({rows} rows, workspace commit {version.commit[:10]})")
        return 0

    return task.run_task("ingest", body)


if __name__ == "__main__":
    raise SystemExit(main())
