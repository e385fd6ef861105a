"""The batch job's model, resolved and downloaded by a second process while the job imports scikit-learn.

At 1M rows the job's start-up is mostly skops importing all of scikit-learn and SciPy to load
the model (~1.5 s of CPU); finding and downloading the model happens beside it, in a second
process, so the two do not share one core and one GIL (issue #16). `Fetch` starts

    python -m ml.inference.fetch NAME (--version V | --alias A) DEST

which resolves the version, downloads its artifacts into DEST (a private temp dir) and prints
one JSON line: the version, the local model dir, the MLmodel's `sklearn` flavor and whether
MLflow allows deserializing it (`MLFLOW_ALLOW_PICKLE_DESERIALIZATION`), or `{"missing": true}`
when no version holds the alias. When the tracking server serves the model's files itself, it
does so with four kinds of REST call and no MLflow import (`ml/inference/rest_fetch.py`, ~1.5 s
of CPU less); otherwise with MLflow's client. Same credentials, same artifact store as the job's
own MLflow calls: the child inherits the job's environment.

`load` then does what `mlflow.sklearn.load_model` does with that directory for a skops model
(`skops.io.load` of the flavor's file with the flavor's trusted types), without importing
MLflow in the job; any other model (pickle, cloudpickle, bundled `code`, deserialization not
allowed) goes through `mlflow.sklearn.load_model` itself, errors included.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ml.errors import TaskError

PROJECT = Path(__file__).resolve().parents[2]


class Fetch:
    """The child process fetching `name`'s `version` (or the holder of `alias`); `result()` waits for it."""

    def __init__(self, name: str, version: str | None, alias: str):
        self.name = name
        self.dest = tempfile.mkdtemp(prefix="conveyor-batch-model-")  # owner-only; removed by `close`
        pick = ["--version", version] if version else ["--alias", alias]
        self._proc = subprocess.Popen([sys.executable, "-m", "ml.inference.fetch", name, *pick, self.dest],
                                      cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self) -> dict | None:
        """The child's answer (see the module doc), None when no version holds the alias."""
        out, err = self._proc.communicate()
        if self._proc.returncode != 0:
            last = (err.strip().splitlines() or [f"exit code {self._proc.returncode}"])[-1]
            raise TaskError(f"cannot fetch model {self.name}: {last}")
        answer = json.loads(out.strip().splitlines()[-1])
        return None if answer.get("missing") else answer

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        shutil.rmtree(self.dest, ignore_errors=True)


def load(answer: dict):
    """The scikit-learn model in `answer["path"]`, as `mlflow.sklearn.load_model` loads it."""
    conf, path = answer.get("sklearn") or {}, answer["path"]
    if conf.get("serialization_format") == "skops" and not conf.get("code") and answer.get("allowed"):
        import skops.io

        return skops.io.load(os.path.join(path, conf["pickled_model"]), trusted=conf.get("skops_trusted_types"))
    import mlflow.sklearn

    return mlflow.sklearn.load_model(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.inference.fetch", description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("dest")
    pick = ap.add_mutually_exclusive_group(required=True)
    pick.add_argument("--version")
    pick.add_argument("--alias")
    args = ap.parse_args(argv)
    gc.disable()  # a short-lived process that mostly imports: the collector would find nothing (batch_score.main)
    try:
        return _fetch(args)
    finally:
        gc.enable()


def _fetch(args) -> int:
    from ml.inference import rest_fetch

    answer = rest_fetch.fetch(args.name, args.version, args.alias, args.dest)
    if answer is not None:
        print(json.dumps(answer))
        return 0
    import mlflow
    from mlflow.environment_variables import MLFLOW_ALLOW_PICKLE_DESERIALIZATION
    from mlflow.models import Model

    from ml.registry import alias_version

    client = mlflow.MlflowClient()
    # no such alias (or model): None, and the job says how to get one; a named version must exist
    mv = client.get_model_version(args.name, args.version) if args.version else alias_version(client, args.name, args.alias)
    if mv is None:
        print(json.dumps({"missing": True}))
        return 0
    local = mlflow.artifacts.download_artifacts(f"models:/{args.name}/{mv.version}", dst_path=args.dest)
    print(json.dumps({"version": str(mv.version), "path": local, "sklearn": Model.load(local).flavors.get("sklearn"),
                      "allowed": bool(MLFLOW_ALLOW_PICKLE_DESERIALIZATION.get())}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # one line for the job's error, not a traceback in its log
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
