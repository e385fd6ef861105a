"""Build the endpoint's service (`ml.serving.service:ConveyorEndpoint`) into a Bento: the env endpoint.

One service, one request schema, one kind of Bento: the code of the endpoint, built from the
sources this module sits in. The env's launcher (`ml.serving.launcher`) builds it from the
*deployed* code wheel (`python -m ml.serving.bento` run inside the unpacked wheel) and serves
it with `bentoml serve <tag>`; the models it serves come from the endpoint configs, by their
tag in the env's BentoML model store (`deploy_model` imports each champion there).

`python -m ml.serving.bento [--bentoml-home DIR] [--version V] [--label k=v ...]` prints its tag;
serve it with `BENTOML_HOME=DIR bentoml serve <tag>` and the same CONVEYOR_* env vars as the
env's endpoint, and it gives the same answers. The version defaults to the content hash of the
included sources (the launcher passes the code artifact's), so the same code is built once.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from importlib.metadata import version as pkg_version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "ml.serving.service:ConveyorEndpoint"
NAME = "conveyor_endpoint"
# The service, the use-case contract its schemas are derived from (and what that imports), the use cases.
INCLUDE = ["core/*.py", "ml/__init__.py", "ml/config.py", "ml/usecase/*.py", "ml/serving/*.py",
           "ml/serving/rollouts/*.py",
           "usecases/__init__.py", "usecases/*/*.py", "usecases/*/*.yml", "usecases/*/*.yaml"]
PACKAGES = ("bentoml", "mlflow", "scikit-learn", "pandas", "numpy", "pydantic", "filelock", "threadpoolctl", "httpx",
            "fastapi", "pyyaml")


def _sources(root: Path = ROOT) -> list[Path]:
    return [path for pattern in INCLUDE for path in sorted(root.glob(pattern))]


def source_hash(root: Path = ROOT) -> str:
    digest = hashlib.sha256()
    for path in _sources(root):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _python() -> dict:
    return {"packages": [f"{p}=={pkg_version(p)}" for p in PACKAGES], "lock_packages": False}


def use_home(bentoml_home: Path | None) -> None:
    """Point BentoML at `bentoml_home` (before `import bentoml`: it reads the variable once)."""
    if bentoml_home is not None:
        os.environ["BENTOML_HOME"] = str(bentoml_home)
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")


def build(bentoml_home: Path | None = None, version: str | None = None, labels: dict[str, str] | None = None) -> str:
    """Build (or reuse) the endpoint Bento of these sources; returns its tag."""
    use_home(bentoml_home)
    import bentoml
    from bentoml.exceptions import NotFound

    version = version or source_hash()
    tag = f"{NAME}:{version}"
    try:
        return str(bentoml.bentos.get(tag).tag)
    except NotFound:
        pass
    bento = bentoml.bentos.build(
        SERVICE, name=NAME, version=version, labels=labels or {},
        description="Conveyor environment endpoint: serves the models its endpoint configs name, "
                    "from the env's BentoML model store",
        include=INCLUDE, python=_python(), build_ctx=str(ROOT),
    )
    return str(bento.tag)


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--label wants key=value, got {text!r}")
    return key, value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.serving.bento", description=__doc__.splitlines()[0])
    ap.add_argument("--bentoml-home", type=Path, default=None)
    ap.add_argument("--version", default=None)
    ap.add_argument("--label", type=_label, action="append", default=[], help="key=value (repeatable)")
    args = ap.parse_args(argv)
    from bentoml.exceptions import BentoMLException

    try:
        print(build(args.bentoml_home, args.version, dict(args.label)))
    except (BentoMLException, OSError) as exc:
        print(f"error: cannot build the endpoint Bento: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
