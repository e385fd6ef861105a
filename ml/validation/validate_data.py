"""Task `validate_data`: GX suites on the raw and feature tables of this run's data version.

The suites are derived from the use case's declaration (`ml.usecase.expectations`).

A failing suite stops the job here (exit 1), before anything is trained; the GX Data
Docs site is logged to the job run's MLflow run under `data_docs/` either way.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from core import runtime
from ml import task
from ml.data.tables import read_frame
from ml.data.versioning import read_version, workspace_for
from ml.usecase.expectations import feature_expectations, raw_expectations
from ml.validation.data_suites import validate_frames


def main(argv: list[str] | None = None) -> int:
    ap = task.parser("ml.validation.validate_data", __doc__)
    ap.add_argument("--data-version", default=None, help="gold md5 (default: from the ingest task)")
    ap.add_argument("--bronze-md5", default=None, help="raw table md5 (default: from the ingest task)")
    ap.add_argument("--run-id", default=None, help="MLflow run to log into (default: the job run's)")
    args = ap.parse_args(argv)

    def body() -> int:
        import mlflow

        ctx = runtime.context()
        uc = task.use_case_from(args)
        params = task.params_from(args)
        gold_md5 = task.upstream("ingest", "data_version", args.data_version)
        bronze_md5 = task.upstream("ingest", "bronze_md5", args.bronze_md5)
        if not gold_md5 or not bronze_md5:
            raise task.TaskError("no data version: run `ingest` first or pass --data-version and --bronze-md5")
        ws, remote = workspace_for(ctx, uc.name)
        raw_path, gold_path = read_version(ws, remote, bronze_md5), read_version(ws, remote, gold_md5)
        with tempfile.TemporaryDirectory(prefix="conveyor-gx-") as tmp:
            # each table read when its suite runs (one in memory at a time), strings compact (ml/data/tables.py)
            results, site = validate_frames(
                {"raw": (lambda: read_frame(raw_path, categories=True), raw_expectations(uc, params.data_validation)),
                 "features": (lambda: read_frame(gold_path, categories=True), feature_expectations(uc, params.data_validation))},
                Path(tmp), source_name=uc.name,
            )
            ok = all(r.success for r in results)
            summary = {"data_version": gold_md5, "success": ok, "suites": [r.__dict__ for r in results]}
            with task.start_job_run(ctx, task.experiment(args), task.upstream("ingest", "mlflow_run_id", args.run_id)) as run:
                mlflow.log_artifacts(str(site), artifact_path="data_docs")
                mlflow.log_dict(summary, "data_validation.json")
                mlflow.set_tag("data_validation_status", "PASSED" if ok else "FAILED")
                mlflow.log_metric("data_validation_failed_expectations", sum(len(r.failed) for r in results))
                report = f"{run.info.artifact_uri}/data_docs/index.html"
                if not ok:
                    lines = [f"  {r.suite}: {f}" for r in results for f in r.failed]
                    raise task.CheckFailed(
                        f"data version {gold_md5} violates {len(lines)} expectation(s); nothing was trained.\n"
                        + "\n".join(lines) + f"\n  report (GX Data Docs): {report}"
                    )
        task.publish("data_validation", "PASSED")
        print(f"validate_data: data version {gold_md5} PASSED {sum(r.evaluated for r in results)} expectations")
        print(json.dumps([{"suite": r.suite, "evaluated": r.evaluated} for r in results]))
        return 0

    return task.run_task("validate_data", body)


if __name__ == "__main__":
    raise SystemExit(main())
