"""What a bundle job's pod runs on a kubernetes env: `python -m bundles.incluster <deployment> <job>`.

No checkout and no bundle.yml in the pod: the job spec and the code wheel come from the env's
storage (where `conveyor bundle deploy` put them), the env's outputs (limited to the job's
persona) from the mounted Secret at $CONVEYOR_ENV_OUTPUTS. Exit status 0 when the run
succeeded, so the Job (and CronJob history) tells success from failure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core import settings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bundles.incluster", description=__doc__.splitlines()[0])
    ap.add_argument("deployment", help="deployment id, <bundle>.<target>[.<user>]")
    ap.add_argument("job", help="job resource key")
    ap.add_argument("--param", action="append", default=[], metavar="K=V", help="job parameter override")
    args = ap.parse_args(argv)

    from bundles.envstore import DeploymentStore
    from bundles.errors import BundleError
    from bundles.runner import JobRunner, Reporter, log_tail
    from core.contract import EnvironmentOutputs
    from core.storage import StorageError

    path = settings.ENV_OUTPUTS.get()
    if not path or not Path(path).is_file():
        print("incluster: error: CONVEYOR_ENV_OUTPUTS does not name the env outputs file", file=sys.stderr)
        return 2
    params = {}
    for pair in args.param:
        key, sep, value = pair.partition("=")
        if not sep:
            print(f"incluster: error: --param expects K=V, got {pair!r}", file=sys.stderr)
            return 2
        params[key] = value
    outputs = EnvironmentOutputs.model_validate_json(Path(path).read_text())
    try:
        runner = JobRunner(outputs, DeploymentStore(outputs, args.deployment), trigger=settings.TRIGGER.get(),
                           reporter=Reporter(title=""))
        # the Job's run id (the CLI printed it; a CronJob's Job is named by Kubernetes)
        record = runner.run(args.job, params=params, run_id=settings.RUN_ID.get() or None)
    except (BundleError, StorageError) as exc:
        print(f"incluster: error: {exc}", file=sys.stderr)
        return 1
    # the pod's log is where a cluster user looks (the run's files go with the pod): every task's log
    for name, ts in record.tasks.items():
        if ts.log and Path(ts.log).is_file():
            print(f"----- task {name}: {ts.status} -----\n{Path(ts.log).read_text(errors='replace').rstrip()}")
        if ts.status == "failed":
            print(f"task {name} failed ({ts.reason}); last lines:\n{log_tail(ts.log)}", file=sys.stderr)
    print(f"run {record.run_id} of {record.job}: {record.status}")
    return 0 if record.status == "success" else 1


if __name__ == "__main__":
    raise SystemExit(main())
