"""Task `fresh_window` of `retraining_job`: labelled production traffic becomes training data.

The requests an endpoint answered (its inference table: the raw fields every request carried)
joined with the labels that came back for them (the labels feed, checked as monitoring checks
it) are the newest rows with ground truth a team has: the window a drift-triggered retrain
learns from. This task writes them in the use case's raw schema (id, declared columns, label) to
the env's storage (`core.storage.Blobs` of `storage.root`: a directory on the local platform, an
`s3://` prefix on kubernetes, so the `ingest` pod of the retrain reads it wherever it runs) as
`tables/training_windows/window-<run>.parquet`, with `window-<run>.lineage.json` next to it (which
table and feed, how many requests and labels, the time span, the monitoring run's verdict), and
publishes `source` = `{storage}/tables/training_windows/window-<run>.parquet` for `run_job` to hand
`model_training_job` as its `source` parameter; `ingest` then reads it as a `file` source
(`ml.data.sources.given`), DVC-versions exactly these rows and records where they came from.

Only requests answered by the champion or the challenger count (a shadow's copies are the same
requests). Bad input — a feed with unknown ids or duplicates, requests that lack a declared raw
column, fewer labelled rows than the use case's `data_validation.min_rows` — is one line and exit 2,
before any training starts.

Usage: python -m ml.monitoring.training_window [--use-case NAME] [--endpoint KEY] [--hours H] [--monitor KEY]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from core import settings as env_settings
from core.cli import guarded
from core.files import PRIVATE_FILE, atomic_write
from core.storage import Blobs
from ml.monitoring import tables
from ml.monitoring.settings import MonitorError, monitor_settings
from ml.serving.inference_log import read_table
from ml.usecase import UseCase, load_use_case

LOGGED_PREFIX = "txn_"  # a request field whose name the inference table uses itself is logged as txn_<name>


def labelled_traffic(uc: UseCase, table: pd.DataFrame, labels: pd.DataFrame, since: float | None = None) -> pd.DataFrame:
    """The answered requests of `table` (logged at or after `since`) that have a label, in the use
    case's raw schema: declared columns, id from the request id, label from the feed."""
    if table.empty or labels.empty:
        return pd.DataFrame(columns=list(uc.spec.dataset.columns))
    answered = table[table["served_by"].isin(("champion", "challenger"))]
    if since is not None:
        answered = answered[answered["timestamp"].astype(float) >= since]
    rows = answered.merge(labels, on="request_id", how="inner")
    out = {}
    missing = []
    for column in uc.spec.dataset.columns:
        if column == uc.label:
            out[column] = rows["label"]
        elif column == uc.id_column:
            out[column] = rows["request_id"].astype(str)
        elif f"{LOGGED_PREFIX}{column}" in rows.columns:
            out[column] = rows[f"{LOGGED_PREFIX}{column}"]
        elif column in rows.columns:
            out[column] = rows[column]
        else:
            missing.append(column)
    if missing:
        raise MonitorError(f"the logged requests lack the declared columns {missing}: to become training data a "
                           "request must carry every raw column of the use case")
    frame = pd.DataFrame(out)
    for column, spec in uc.spec.dataset.columns.items():
        if spec.type == "datetime" and column in frame:  # logged as ISO text: back to the declared type
            stamps = pd.to_datetime(frame[column], utc=True, format="ISO8601")
            frame[column] = stamps.dt.tz_localize(None)
    return frame.drop_duplicates(uc.id_column).reset_index(drop=True)


WINDOWS = "tables/training_windows"  # under the env's storage root


def build(uc: UseCase, table_dir: Path, labels_dir: Path, out: Blobs, *, hours: float, run_id: str,
          min_rows: int, verdict: str | None = None) -> dict:
    """Write the window and its lineage into `out` (the env's `tables/training_windows`); returns
    what was written: `source` and `lineage` as `{storage}/…` locations (`out` is under the env's
    storage root) or `out`'s own URIs (it is not), and `rows`."""
    table = read_table(table_dir)
    labels = tables.joined_labels(labels_dir, table, uc)
    since = time.time() - hours * 3600
    frame = labelled_traffic(uc, table, labels, since)
    if len(frame) < min_rows:
        raise MonitorError(f"only {len(frame)} labelled requests in the last {hours:g} h (of {len(table)} logged, "
                           f"{len(labels)} labels in {labels_dir}); retraining needs data_validation.min_rows = {min_rows}")
    name = f"window-{run_id}"
    _put(out, f"{name}.parquet", frame.to_parquet(index=False))
    logged = table[table["request_id"].astype(str).isin(set(frame[uc.id_column]))]
    lineage = {
        "kind": "labelled_traffic", "use_case": uc.name, "rows": len(frame), "hours": hours,
        "inference_table": str(table_dir), "labels_feed": str(labels_dir),
        "requests_logged": len(table), "labels": len(labels),
        "first_request_at": float(logged["timestamp"].min()), "last_request_at": float(logged["timestamp"].max()),
        "model_versions": sorted(logged["model_version"].astype(str).unique()),
        "label_rate": float(frame[uc.label].mean()) if uc.is_classification else None,
        "monitoring_verdict": verdict, "written_at": time.time(), "run_id": run_id,
    }
    _put(out, f"{name}.lineage.json", json.dumps(lineage, indent=2).encode())
    return {"source": f"{out.uri}/{name}.parquet", "lineage": f"{out.uri}/{name}.lineage.json", "rows": len(frame)}


def _put(out: Blobs, key: str, data: bytes) -> None:
    """One whole blob: renamed into place on a disk, one PUT on object storage (readers never see half)."""
    if out.local is not None:
        atomic_write(out.local / key, data, PRIVATE_FILE)
        return
    with tempfile.TemporaryDirectory(prefix="conveyor-window-") as tmp:
        staged = Path(tmp) / key
        staged.write_bytes(data)
        out.upload(staged, key)


def on_storage(location: str, storage_root: str) -> str:
    """`location` under the env's storage root as a `{storage}/…` source path (so any platform's
    ingest resolves it), else unchanged."""
    root = storage_root.rstrip("/")
    return "{storage}" + location[len(root):] if location.startswith(root + "/") else location


@guarded
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.monitoring.training_window", description=__doc__.splitlines()[0])
    ap.add_argument("--use-case", default=None)
    ap.add_argument("--endpoint", default=None, help="a named serving endpoint (default: the env's default one)")
    ap.add_argument("--monitor", default=None, help="the monitors resource (default: the endpoint's), as deployed")
    ap.add_argument("--monitor-file", default=None, type=Path,
                    help="outside a bundle run only: a resource file declaring the monitor (a run reads the deployed one)")
    ap.add_argument("--hours", type=float, default=None, help="default: the monitor's config.training_window_hours")
    ap.add_argument("--verdict", default=None, help="the retraining condition's reason, kept in the lineage")
    args = ap.parse_args(argv)
    from core import runtime
    from ml.serving import endpoints

    ctx = runtime.context()
    uc = load_use_case(args.use_case or None)
    settings = monitor_settings(args.monitor, args.endpoint, args.monitor_file)  # in a run: the deployed spec
    table_dir = endpoints.table_dir(ctx.storage_path("inference_table"), args.endpoint)
    params = uc.load_params()
    min_rows = int(getattr(getattr(params, "data_validation", None), "min_rows", 1) or 1)
    storage_root = ctx.outputs.storage.root
    written = build(uc, table_dir, tables.labels_dir(table_dir), Blobs(storage_root).child(WINDOWS),
                    hours=args.hours or settings.config.training_window_hours, run_id=ctx.run_id or "manual",
                    min_rows=min_rows, verdict=args.verdict)
    written.update(source=on_storage(written["source"], storage_root), lineage=on_storage(written["lineage"], storage_root))
    print(f"fresh window: {written['rows']} labelled requests -> {written['source']} (lineage {written['lineage']})")
    if env_settings.TASK_VALUES_DIR.is_set():
        for key in ("source", "lineage", "rows"):
            runtime.set_task_value(key, written[key])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
