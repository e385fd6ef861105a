"""Build the endpoint's code into a Bento (code only — models come from the endpoint config).

`python -m ml.serving.bento [--bentoml-home DIR] [--version V]` prints the Bento tag; serve it
with `BENTOML_HOME=DIR bentoml serve <tag>` and the same CONVEYOR_* env vars as the source form.
Rebuilt only when code changes: the version is the content hash of the included sources.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from importlib.metadata import version as pkg_version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INCLUDE = ["ml/__init__.py", "ml/features.py", "ml/serving/*.py"]
PACKAGES = ("bentoml", "mlflow", "scikit-learn", "pandas", "numpy", "pydantic", "filelock", "threadpoolctl", "httpx")


def source_hash(root: Path = ROOT) -> str:
    digest = hashlib.sha256()
    for pattern in INCLUDE:
        for path in sorted(root.glob(pattern)):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def build(bentoml_home: Path | None = None, version: str | None = None) -> str:
    """Build (or reuse) the endpoint Bento; returns its tag."""
    if bentoml_home is not None:
        os.environ["BENTOML_HOME"] = str(bentoml_home)
    import bentoml
    from bentoml.exceptions import NotFound

    version = version or source_hash()
    tag = f"conveyor_endpoint:{version}"
    try:
        return str(bentoml.bentos.get(tag).tag)
    except NotFound:
        pass
    bento = bentoml.bentos.build(
        "ml.serving.service:ConveyorEndpoint", name="conveyor_endpoint", version=version,
        description="Conveyor environment endpoint (models from the endpoint config)",
        include=INCLUDE, python={"packages": [f"{p}=={pkg_version(p)}" for p in PACKAGES], "lock_packages": False},
        build_ctx=str(ROOT),
    )
    return str(bento.tag)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.serving.bento", description=__doc__.splitlines()[0])
    ap.add_argument("--bentoml-home", type=Path, default=None)
    ap.add_argument("--version", default=None)
    args = ap.parse_args(argv)
    try:
        print(build(args.bentoml_home, args.version))
    except Exception as exc:
        print(f"error: cannot build the endpoint Bento: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
