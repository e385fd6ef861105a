"""Per-environment scheduler: starts deployed jobs on their cron.

`python -m bundles.scheduler --env dev` runs under the env's process supervisor.
It reads what is deployed from env storage on every tick, so deploys and destroys
take effect without a restart; with nothing deployed it simply idles. Schedules of
development-mode deployments are paused at deploy time and never fire here.

A scheduled run is the same as `conveyor bundle run`: the deployed job spec and code
(`bundles.runner`), nothing of the checkout the scheduler was started from. A deployment
it cannot run as deployed is logged as `not started:` with the reason and the fix.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from croniter import croniter

from bundles.envstore import DeploymentStore, all_deployments, bundle_root, now_iso, write_json
from bundles.errors import BundleError
from core import settings
from core.contract import EnvironmentOutputs
from core.errors import ConveyorError


@dataclass(frozen=True)
class Due:
    deployment: str
    job: str
    cron: str
    fire_time: datetime


def due_jobs(outputs: EnvironmentOutputs, since: datetime, now: datetime) -> list[Due]:
    """Unpaused scheduled jobs with a cron fire time in (since, now]."""
    out = []
    for dep in all_deployments(outputs):
        for key, doc in DeploymentStore(outputs, dep).objects("jobs").items():
            sched = (doc.get("spec") or {}).get("schedule")
            if not sched or sched.get("pause_status") == "PAUSED" or doc.get("mode") == "development":
                continue
            try:
                nxt = croniter(sched["cron"], since).get_next(datetime)
            except (ValueError, KeyError):
                continue
            if nxt <= now:
                out.append(Due(dep, key, sched["cron"], nxt))
    return out


def start_run(outputs: EnvironmentOutputs, due: Due, log=print) -> threading.Thread:
    """Run the job in a background thread (tasks are subprocesses; the loop keeps ticking)."""
    from bundles.runner import JobRunner

    def target() -> None:
        runner = JobRunner(outputs, DeploymentStore(outputs, due.deployment), trigger="schedule")
        try:
            record = runner.run(due.job)
            log(f"{now_iso()} {due.deployment}/{due.job}: run {record.run_id} {record.status}")
        except BundleError as exc:
            log(f"{now_iso()} {due.deployment}/{due.job}: not started: {exc}")
        except Exception as exc:  # one broken job must not stop the scheduler; its traceback is a bug report
            log(f"{now_iso()} {due.deployment}/{due.job}: crashed: {exc.__class__.__name__}: {exc}\n"
                f"{traceback.format_exc().rstrip()}")

    thread = threading.Thread(target=target, name=f"run-{due.job}", daemon=False)
    thread.start()
    return thread


def tick(outputs: EnvironmentOutputs, since: datetime, now: datetime, log=print) -> list[threading.Thread]:
    threads = []
    for due in due_jobs(outputs, since, now):
        log(f"{now_iso()} {due.deployment}/{due.job}: cron {due.cron!r} fired at {due.fire_time:%H:%M:%S}")
        threads.append(start_run(outputs, due, log=log))
    return threads


def _load_outputs(env: str, outputs_file: str | None) -> EnvironmentOutputs:
    path = outputs_file or settings.ENV_OUTPUTS.get()
    if path:
        return EnvironmentOutputs.model_validate_json(Path(path).read_text())
    from conveyor.stack import read_outputs

    return read_outputs(env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bundles.scheduler", description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="environment (Pulumi stack) whose deployed jobs to schedule")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between checks")
    parser.add_argument("--outputs-file", help="EnvironmentOutputs JSON instead of reading the stack")
    parser.add_argument("--once", action="store_true", help="check once for jobs due in the last interval, then exit")
    args = parser.parse_args(argv)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def log(msg: str) -> None:
        print(msg, flush=True)

    outputs = None
    while outputs is None:
        try:
            outputs = _load_outputs(args.env, args.outputs_file)
        except (ConveyorError, OSError, ValueError) as exc:  # keep retrying: the env may still be coming up
            log(f"{now_iso()} cannot read outputs of env {args.env!r}: {exc}; retrying")
            if args.once or stop.wait(max(args.interval, 5)):
                return 1
    status_path = bundle_root(outputs) / "scheduler.json"
    since = datetime.now(UTC) - timedelta(seconds=args.interval if args.once else 0)
    log(f"{now_iso()} scheduler for env {args.env} started (pid {os.getpid()}, every {args.interval:g}s)")
    threads: list[threading.Thread] = []
    while True:
        now = datetime.now(UTC)
        threads = [t for t in threads if t.is_alive()]
        threads += tick(outputs, since, now, log=log)
        since = now
        write_json(status_path, {"pid": os.getpid(), "env": args.env, "last_tick": now.isoformat(timespec="seconds"),
                                 "active_runs": len(threads)})
        if args.once or stop.wait(args.interval):
            break
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
