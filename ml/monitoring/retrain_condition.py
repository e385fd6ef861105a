"""Condition task of `retraining_job`: retrain when N of the last M monitored windows violate.

Reads the newest monitoring run's window summaries from the metric table and sets task value
`outcome` (true → the `run_job` task triggers `model_training_job`). One noisy window alone
does not retrain; a sustained shift does.

N and M are the run's deployed monitor's (`--monitor KEY`, default: the default endpoint's monitor);
started by hand outside a bundle run, `--monitor-file` names a resource file, else the defaults hold.

Usage: python -m ml.monitoring.retrain_condition [--monitor KEY] [--metric-table DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core import settings as env_settings
from core.cli import guarded
from ml.monitoring import tables
from ml.monitoring.settings import monitor_settings


def decide(metric_dir: Path, n: int, m: int) -> tuple[bool, str]:
    windows = tables.read_metrics(metric_dir, "windows")
    if windows.empty:
        return False, "no monitored windows yet"
    latest_run = windows.sort_values("computed_at")["run_id"].iloc[-1]
    recent = windows[windows["run_id"] == latest_run].sort_values("window").tail(m)
    bad = recent[recent["violated"]]
    verdict = len(bad) >= n
    detail = f"{len(bad)} of the last {len(recent)} windows violate (retrain at {n} of {m})"
    if len(bad):
        detail += ": " + " || ".join(f"window {w.window}: {w.reasons}" for w in bad.itertuples())
    return verdict, detail


@guarded
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.monitoring.retrain_condition")
    ap.add_argument("--monitor", default=None, help="the monitors resource (default: the default endpoint's)")
    ap.add_argument("--endpoint", default=None, help="the serving endpoint whose monitor decides (default: the default one)")
    ap.add_argument("--monitor-file", default=None, type=Path,
                    help="outside a bundle run only: a resource file declaring the monitor (a run reads the deployed one)")
    ap.add_argument("--metric-table", help="default: the env's storage.metric_table")
    args = ap.parse_args(argv)
    settings = monitor_settings(args.monitor, args.endpoint, args.monitor_file)
    if args.metric_table:
        metric_dir = Path(args.metric_table)
    else:
        from core import runtime

        metric_dir = runtime.context().storage_path("metric_table")
    outcome, detail = decide(metric_dir, settings.config.retrain_violations, settings.config.retrain_windows)
    print(f"retrain: {str(outcome).lower()} — {detail}")
    if env_settings.TASK_VALUES_DIR.is_set():
        from core import runtime

        runtime.set_task_value("outcome", outcome)
        runtime.set_task_value("reason", detail)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
