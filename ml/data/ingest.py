"""Task `ingest`: produce a use case's bronze/silver/gold with DVC in the env's workspace and version them.

Publishes task values `data_version` (DVC md5 of gold), `data_commit`, `bronze_md5`,
`mlflow_run_id`; tags the job run's MLflow run with them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from core import runtime
from ml import task
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
        import mlflow

        ctx = runtime.context()
        uc = task.use_case_from(args)
        overrides = list(args.set)
        for key in ("rows", "seed", "drift", "subset"):
            if getattr(args, key) is not None:
                overrides.append(f"data.{key}={getattr(args, key)}")
        raw = uc.raw_params(overrides, args.params)  # checked: fails early on bad values
        source = None
        if args.source in ("", "generate"):
            args.source = None
        if args.source:
            source = Path(args.source).expanduser().resolve()
            if not source.is_file():
                raise task.TaskError(f"--source {args.source}: no such file")
        ws, remote = workspace_for(ctx, uc.name)
        version = reproduce(ws, remote, raw, source_file=source)
        rows = len(pd.read_parquet(cache_file(ws, version.gold_md5), columns=[uc.label]))
        with task.start_job_run(ctx, task.experiment(args), None):
            mlflow.set_tags({
                "data_version": version.gold_md5,
                "data_commit": version.commit,
                "data_bronze_md5": version.bronze_md5,
                "data_silver_md5": version.silver_md5,
                "data_source": str(source) if source else "generate",
                "use_case": uc.name,
            })
            mlflow.log_params({f"data.{k}": v for k, v in raw.get("data", {}).items() if k != "source"})
            mlflow.log_metric("data_rows", rows)
        for key, value in (("data_version", version.gold_md5), ("data_commit", version.commit),
                           ("bronze_md5", version.bronze_md5), ("data_rows", rows)):
            task.publish(key, value)
        print(f"ingest: data version {version.gold_md5} ({rows} rows, workspace commit {version.commit[:10]})")
        return 0

    return task.run_task("ingest", body)


if __name__ == "__main__":
    raise SystemExit(main())
