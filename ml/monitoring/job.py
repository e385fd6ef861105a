"""`monitoring_job` task: drift, prediction drift, quality and champion vs challenger per window.

Reads the env's inference table (and labels, when they have arrived), compares each recent
window with the training reference, appends results to the metric table and writes an HTML
report. Exits 0 whether or not there is drift: deciding what to do about it is the
retraining condition's job. Bad settings or inputs (`MonitorError`) are one line and exit 2.

The features monitored are the use case's (`--use-case`): the reference is its gold table (or
raw rows, featurised), else rows of its declared generator at the params' seed.

Usage: python -m ml.monitoring.job [--use-case NAME] [--monitor-file resources/monitoring.yml] [--reference auto|<file>]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

import pandas as pd

from core import settings as env_settings
from core.cli import guarded
from core.files import atomic_write
from ml.monitoring import report, tables
from ml.monitoring.compute import compute, inference_features
from ml.monitoring.settings import MonitorError, MonitorSettings, load_monitor_settings
from ml.serving.inference_log import read_table
from ml.usecase import UseCase, load_use_case


def load_reference(spec: str, rows: int, uc: UseCase) -> pd.DataFrame:
    """Training-distribution features: a gold/raw file, else `data/gold.parquet`, else the use case's generator."""
    features = uc.feature_names
    path = Path("data/gold.parquet") if spec == "auto" else Path(spec)
    if path.is_file():
        try:
            frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        except ValueError as exc:  # not parquet / csv after all
            raise MonitorError(f"reference file {path}: {exc}") from exc
        if not set(features) <= set(frame.columns):
            if not set(uc.request_columns) <= set(frame.columns):
                raise MonitorError(f"reference file {path} has neither the model features {features} "
                                   f"nor the raw columns {uc.request_columns}")
            frame = uc.build_features(frame)
        return frame[features].sample(min(rows, len(frame)), random_state=0).reset_index(drop=True)
    if spec != "auto":
        raise MonitorError(f"reference file not found: {spec}")
    if uc.spec.source.kind != "generator":
        raise MonitorError(f"no reference: pass --reference (use case {uc.name!r} has no generator to draw one from)")
    data = uc.load_params().data.model_copy(update={"rows": rows, "subset": 1.0})
    if "drift" in type(data).model_fields or "drift" in (data.model_extra or {}):
        data = data.model_copy(update={"drift": 0.0})  # the reference is the undrifted distribution
    return uc.build_features(uc.generate(data))


def reference_predictions(endpoint_dir: Path | None, reference: pd.DataFrame) -> pd.Series | None:
    """The champion's scores on the reference: the baseline for prediction drift."""
    from ml.serving.endpoint_config import read_config
    from ml.serving.models import load

    if endpoint_dir is None:
        return None
    cfg = read_config(endpoint_dir)
    if cfg.champion is None:
        return None
    try:
        model = load(cfg.champion)
    except Exception as exc:  # monitoring still reports feature drift
        print(f"warning: cannot load champion for prediction drift: {exc}", file=sys.stderr)
        return None
    return pd.Series(model.predict_proba(reference))


def run(table_dir: Path, metric_dir: Path, settings: MonitorSettings, *, env: str, endpoint_dir: Path | None,
        reference: pd.DataFrame, report_dir: Path | None = None) -> dict:
    table = read_table(table_dir)
    labels = tables.read_labels(tables.labels_dir(table_dir))
    ref_pred = reference_predictions(endpoint_dir, reference)
    metrics, windows = compute(table, reference, settings, reference_predictions=ref_pred, labels=labels)
    run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    computed_at = time.time()
    for frame in (metrics, windows):
        if len(frame):
            frame.insert(0, "run_id", run_id)
            frame.insert(1, "computed_at", computed_at)
            frame.insert(2, "env", env)
    if len(metrics):
        tables.append_metrics(metric_dir, metrics, "drift")
        tables.append_metrics(metric_dir, windows, "windows")
    latest = None
    if len(windows):
        traffic = table[table["served_by"].isin(("champion", "challenger"))].sort_values("timestamp")
        latest = inference_features(traffic.tail(int(windows.iloc[-1]["n"])), list(reference.columns))
    report_dir = Path(report_dir or Path(metric_dir) / "reports")
    report_dir.mkdir(parents=True, exist_ok=True)
    page = report.render(env, metrics, windows, reference, latest, settings.thresholds)
    report_path = atomic_write(report_dir / f"monitoring-{run_id}.html", page)
    atomic_write(report_dir / "latest.html", page)  # overwritten each run while someone may be reading it
    violated = windows[windows["violated"]]["window"].tolist() if len(windows) else []
    return {"run_id": run_id, "windows": len(windows), "violated_windows": violated, "report": str(report_path),
            "rows": len(table)}


@guarded
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.monitoring.job", description="drift and quality monitoring")
    ap.add_argument("--use-case", default=None, help="the use case monitored (default: the project's only one)")
    ap.add_argument("--monitor-file", default="resources/monitoring.yml")
    ap.add_argument("--reference", default="auto")
    ap.add_argument("--inference-table", help="default: the env's storage.inference_table")
    ap.add_argument("--metric-table", help="default: the env's storage.metric_table")
    ap.add_argument("--endpoint-dir", help="default: the env's storage.endpoint")
    ap.add_argument("--endpoint", default=None,
                    help="a named serving endpoint: its inference table and config under the env's storage")
    args = ap.parse_args(argv)
    in_task = env_settings.ENV_OUTPUTS.is_set()
    settings = load_monitor_settings(Path(args.monitor_file))
    if in_task:
        from core import runtime

        ctx = runtime.context()
        env = ctx.env
        from ml.serving import endpoints

        table_dir = Path(args.inference_table) if args.inference_table else \
            endpoints.table_dir(ctx.storage_path("inference_table"), args.endpoint)
        metric_dir = Path(args.metric_table) if args.metric_table else ctx.storage_path("metric_table")
        if args.endpoint and not args.metric_table:
            metric_dir = metric_dir / args.endpoint  # each endpoint's metrics and report apart
        endpoint_dir = Path(args.endpoint_dir) if args.endpoint_dir else \
            endpoints.config_dir(ctx.storage_path("endpoint"), args.endpoint)
    else:
        if not (args.inference_table and args.metric_table):
            raise MonitorError("outside a bundle run pass --inference-table and --metric-table")
        env = env_settings.ENV.get() or "local"
        table_dir, metric_dir = Path(args.inference_table), Path(args.metric_table)
        endpoint_dir = Path(args.endpoint_dir) if args.endpoint_dir else None
    reference = load_reference(args.reference, settings.config.reference_rows, load_use_case(args.use_case or None))
    result = run(table_dir, metric_dir, settings, env=env, endpoint_dir=endpoint_dir, reference=reference)
    print(f"monitored {result['rows']} logged rows in {result['windows']} windows; "
          f"violating windows: {result['violated_windows'] or 'none'}; report: {result['report']}")
    if in_task and env_settings.TASK_VALUES_DIR.is_set():
        from core import runtime

        for k in ("run_id", "violated_windows", "report"):
            runtime.set_task_value(k, result[k])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
