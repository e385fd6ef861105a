"""Re-materialise the exact data a training run used, from the env's DVC remote.

    python -m ml.data.restore --env dev --data-version <md5> [--out gold.parquet]
    python -m ml.data.restore --env dev --run-id <mlflow run id>   # reads its data_version tag

The data version is the `data_version` tag of every training run / model version
(the DVC md5 of the gold table); `--layer bronze` restores the raw table instead
(tag `data_bronze_md5`). Stack outputs come from `conveyor env` (Pulumi) or from
$CONVEYOR_ENV_OUTPUTS when set.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from core.storage import is_local
from core.contract import EnvironmentOutputs, local_path
from ml.data.versioning import DataVersionError, restore


def _outputs(env: str | None) -> EnvironmentOutputs:
    path = os.environ.get("CONVEYOR_ENV_OUTPUTS")
    if path and (env is None or EnvironmentOutputs.model_validate_json(Path(path).read_text()).env == env):
        return EnvironmentOutputs.model_validate_json(Path(path).read_text())
    if not env:
        raise DataVersionError("pass --env (or set CONVEYOR_ENV_OUTPUTS)")
    from conveyor.stack import read_outputs

    return read_outputs(env)


def _version_from_run(run_id: str, layer: str) -> str:
    import mlflow

    tags = mlflow.MlflowClient().get_run(run_id).data.tags
    key = "data_version" if layer == "gold" else f"data_{layer}_md5"
    if key not in tags:
        raise DataVersionError(f"run {run_id} has no {key} tag")
    return tags[key]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.data.restore", description="Re-materialise a data version from an env's DVC remote.")
    ap.add_argument("--env", default=None)
    ap.add_argument("--data-version", default=None, help="DVC md5 (the data_version tag)")
    ap.add_argument("--run-id", default=None, help="MLflow run whose data_version tag to use")
    ap.add_argument("--layer", choices=["gold", "silver", "bronze"], default="gold")
    ap.add_argument("--out", default=None, help="output file (default ./restored/<md5>.parquet)")
    args = ap.parse_args(argv)
    try:
        outputs = _outputs(args.env)
        if not args.data_version and not args.run_id:
            raise DataVersionError("pass --data-version or --run-id")
        md5 = args.data_version or _version_from_run(args.run_id, args.layer)
        out = Path(args.out or f"restored/{md5}.parquet").resolve()
        remote = outputs.storage.dvc_remote
        restore(local_path(remote) if is_local(remote) else remote, md5, out)
    except Exception as exc:  # noqa: BLE001 - one clear line for any failure
        print(f"restore: error: {exc}", file=sys.stderr)
        return 1
    print(f"restored data version {md5} from env {outputs.env} to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
