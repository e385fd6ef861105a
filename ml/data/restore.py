"""Re-materialise the exact data a training run used, from the env's DVC remote.

    python -m ml.data.restore --env dev --data-version <md5> [--out gold.parquet]
    python -m ml.data.restore --env dev --run-id <mlflow run id>   # reads its data_version tag

The data version is the `data_version` tag of every training run / model version
(the DVC md5 of the gold table); `--layer bronze` restores the raw table instead
(tag `data_bronze_md5`). Stack outputs come from `conveyor env` (Pulumi) or from
$CONVEYOR_ENV_OUTPUTS when set. A user error (unknown version, no such run, env not
provisioned) is one line and exit 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core import settings
from core.cli import guarded
from core.contract import EnvironmentOutputs, local_path
from core.storage import is_local
from ml.data.versioning import DataVersionError, restore


def _outputs(env: str | None) -> EnvironmentOutputs:
    path = settings.ENV_OUTPUTS.get()
    if path is not None:
        if not path.is_file():
            raise DataVersionError(f"{settings.ENV_OUTPUTS.name} is {path}, which does not exist")
        given = EnvironmentOutputs.model_validate_json(path.read_text())
        if env is None or given.env == env:
            return given
    if not env:
        raise DataVersionError(f"pass --env (or set {settings.ENV_OUTPUTS.name})")
    from conveyor.stack import read_outputs

    return read_outputs(env)


def _version_from_run(run_id: str, layer: str) -> str:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        tags = mlflow.MlflowClient().get_run(run_id).data.tags
    except MlflowException as exc:  # no such run, or the tracking server refused us
        raise DataVersionError(f"cannot read run {run_id}: {exc}") from exc
    key = "data_version" if layer == "gold" else f"data_{layer}_md5"
    if key not in tags:
        raise DataVersionError(f"run {run_id} has no {key} tag")
    return tags[key]


@guarded(prefix="restore: ")
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.data.restore", description="Re-materialise a data version from an env's DVC remote.")
    ap.add_argument("--env", default=None)
    ap.add_argument("--data-version", default=None, help="DVC md5 (the data_version tag)")
    ap.add_argument("--run-id", default=None, help="MLflow run whose data_version tag to use")
    ap.add_argument("--layer", choices=["gold", "silver", "bronze"], default="gold")
    ap.add_argument("--out", default=None, help="output file (default ./restored/<md5>.parquet)")
    args = ap.parse_args(argv)
    outputs = _outputs(args.env)
    if not args.data_version and not args.run_id:
        raise DataVersionError("pass --data-version or --run-id")
    md5 = args.data_version or _version_from_run(args.run_id, args.layer)
    out = Path(args.out or f"restored/{md5}.parquet").resolve()
    remote = outputs.storage.dvc_remote
    restore(local_path(remote) if is_local(remote) else remote, md5, out)
    print(f"restored data version {md5} from env {outputs.env} to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
