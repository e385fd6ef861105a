"""`monitoring_job` task: drift, prediction drift, quality and champion vs challenger per window.

Reads the env's inference table (and labels, when they have arrived), compares each recent
window with the training reference, appends results to the metric table and writes an HTML
report. Exits 0 whether or not there is drift: deciding what to do about it is the
retraining condition's job. Bad settings or inputs (`MonitorError`) are one line and exit 2.

The features monitored are the use case's (`--use-case`). The reference is the data the endpoint's
champion was trained on: its run's `data_version`, restored from the env's DVC workspace or remote
(never a generator); `--reference <file>` overrides it (outside a bundle run it is required). The
labels feed (`<tables>/labels/`: partitions keyed by request id, or by entity + event time) is
joined to the requests; unknown request ids or duplicate labels stop the run with one message.

Thresholds and windowing are the run's deployed monitor (`--monitor KEY`, default: the monitor of
`--endpoint`, else of the default endpoint); started by hand outside a bundle run, `--monitor-file`.

Usage: python -m ml.monitoring.job [--use-case NAME] [--endpoint KEY] [--monitor KEY] [--reference auto|<file>] [--labels DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from core import settings as env_settings
from core.cli import guarded
from core.files import atomic_write
from ml.monitoring import report, tables
from ml.monitoring.compute import compute, inference_features
from ml.monitoring.settings import MonitorError, MonitorSettings, monitor_settings
from ml.serving.inference_log import read_table
from ml.usecase import UseCase, load_use_case


def _featurised(frame: pd.DataFrame, uc: UseCase, rows: int, what: str) -> pd.DataFrame:
    features = uc.feature_names
    if not set(features) <= set(frame.columns):
        if not set(uc.request_columns) <= set(frame.columns):
            raise MonitorError(f"{what} has neither the model features {features} nor the raw columns {uc.request_columns}")
        frame = uc.build_features(frame)
    return frame[features].sample(min(rows, len(frame)), random_state=0).reset_index(drop=True)


def load_reference(spec: str, rows: int, uc: UseCase) -> pd.DataFrame:
    """Training-distribution features from a gold/raw parquet or CSV file `spec`."""
    path = Path(spec)
    if not path.is_file():
        raise MonitorError(f"reference file not found: {spec}")
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except ValueError as exc:  # not parquet / csv after all
        raise MonitorError(f"reference file {path}: {exc}") from exc
    return _featurised(frame, uc, rows, f"reference file {path}")


def champion_reference(endpoint_dir: Path, uc: UseCase, rows: int, ctx) -> tuple[pd.DataFrame, str]:
    """(features, description) of the data the endpoint's champion was trained on: its run's
    `data_version` tag, restored from the env's DVC workspace or remote (`ml.data.versioning`)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from ml.data.versioning import DataVersionError, read_version, workspace_for
    from ml.serving.endpoint_config import read_config

    champion = read_config(endpoint_dir).champion
    if champion is None:
        raise MonitorError(f"the endpoint at {endpoint_dir} has no champion: no training data to monitor against")
    client = MlflowClient()
    try:
        mv = client.get_model_version(champion.name, champion.version)
        tags = {**(client.get_run(mv.run_id).data.tags if mv.run_id else {}), **(mv.tags or {})}
    except MlflowException as exc:
        raise MonitorError(f"cannot read champion {champion.name} v{champion.version} in the registry: {exc}") from None
    md5 = tags.get("data_version")
    if not md5:
        raise MonitorError(f"champion {champion.name} v{champion.version} has no data_version tag: "
                           "its training data is unknown (pass --reference)")
    ws, remote = workspace_for(ctx, uc.name)
    try:
        path = read_version(ws, remote, md5)
    except DataVersionError as exc:
        raise MonitorError(f"champion {champion.name} v{champion.version}'s training data: {exc}") from None
    what = f"the training data of champion {champion.name} v{champion.version} (data version {md5[:12]})"
    return _featurised(pd.read_parquet(path), uc, rows, what), what


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
        reference: pd.DataFrame | Callable[[], tuple[pd.DataFrame, str]], report_dir: Path | None = None,
        uc: UseCase | None = None, labels_dir: Path | None = None) -> dict:
    """Monitor the inference table at `table_dir` against `reference` (features, or a function giving
    (features, description): called only when there is traffic), joined with the labels feed."""
    uc = uc or load_use_case()
    table = read_table(table_dir)
    labels = tables.joined_labels(Path(labels_dir or tables.labels_dir(table_dir)), table, uc)
    described = "the reference given"
    if callable(reference):
        if table.empty:  # nothing to compare: the training data is not restored
            reference, described = pd.DataFrame(columns=uc.feature_names), "nothing yet (no traffic)"
        else:
            reference, described = reference()
    ref_pred = reference_predictions(endpoint_dir, reference) if len(reference) else None
    metrics, windows = compute(table, reference, settings, reference_predictions=ref_pred, labels=labels, task=uc.task)
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
    page = report.render(env, metrics, windows, reference, latest, settings.thresholds, reference_from=described,
                         labelled=len(labels))
    report_path = atomic_write(report_dir / f"monitoring-{run_id}.html", page)
    atomic_write(report_dir / "latest.html", page)  # overwritten each run while someone may be reading it
    violated = windows[windows["violated"]]["window"].tolist() if len(windows) else []
    return {"run_id": run_id, "windows": len(windows), "violated_windows": violated, "report": str(report_path),
            "rows": len(table), "labelled": len(labels), "reference": described}


@guarded
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.monitoring.job", description="drift and quality monitoring")
    ap.add_argument("--use-case", default=None, help="the use case monitored (default: the project's only one)")
    ap.add_argument("--monitor", default=None, help="the monitors resource (default: the one of the endpoint)")
    ap.add_argument("--monitor-file", default=None, type=Path,
                    help="outside a bundle run only: a resource file declaring the monitor (a run reads the deployed one)")
    ap.add_argument("--reference", default="auto")
    ap.add_argument("--inference-table", help="default: the env's storage.inference_table")
    ap.add_argument("--metric-table", help="default: the env's storage.metric_table")
    ap.add_argument("--endpoint-dir", help="default: the env's storage.endpoint")
    ap.add_argument("--labels", default=None, help="the labels feed directory (default: <tables>/labels next to the inference table)")
    ap.add_argument("--endpoint", default=None,
                    help="a named serving endpoint: its inference table and config under the env's storage")
    args = ap.parse_args(argv)
    in_task = env_settings.ENV_OUTPUTS.is_set()
    settings = monitor_settings(args.monitor, args.endpoint, args.monitor_file)  # in a run: the deployed spec
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
    uc = load_use_case(args.use_case or None)
    rows = settings.config.reference_rows
    if args.reference != "auto":
        reference = load_reference(args.reference, rows, uc)
    elif in_task and endpoint_dir is not None:
        def reference():
            return champion_reference(endpoint_dir, uc, rows, ctx)
    else:
        raise MonitorError("outside a bundle run pass --reference (the champion's training data: "
                           "python -m ml.data.restore --run-id <its run>)")
    result = run(table_dir, metric_dir, settings, env=env, endpoint_dir=endpoint_dir, reference=reference, uc=uc,
                 labels_dir=Path(args.labels) if args.labels else None)
    print(f"monitored {result['rows']} logged rows ({result['labelled']} labelled) in {result['windows']} windows "
          f"against {result['reference']}; violating windows: {result['violated_windows'] or 'none'}; "
          f"report: {result['report']}")
    if in_task and env_settings.TASK_VALUES_DIR.is_set():
        from core import runtime

        for k in ("run_id", "violated_windows", "report"):
            runtime.set_task_value(k, result[k])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
