"""Build the endpoint's service (`ml.serving.service:ConveyorEndpoint`) into a Bento.

Two kinds, one service and one request schema:

- the env endpoint's Bento (`build`): code only, models come from the endpoint config.
  `python -m ml.serving.bento [--bentoml-home DIR] [--version V]` prints its tag; serve it with
  `BENTOML_HOME=DIR bentoml serve <tag>` and the same CONVEYOR_* env vars as the source form.
  Rebuilt only when code changes: the version is the content hash of the included sources.
- a pinned Bento (`build_pinned`): the same code plus one BentoML model it always serves
  (`ml.serving.pinned`); `deploy_model` packages each new champion this way.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from importlib.metadata import version as pkg_version
from pathlib import Path

from ml.serving.pinned import PIN_FILE, pin_document

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "ml.serving.service:ConveyorEndpoint"
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


def build(bentoml_home: Path | None = None, version: str | None = None) -> str:
    """Build (or reuse) the endpoint Bento; returns its tag."""
    use_home(bentoml_home)
    import bentoml
    from bentoml.exceptions import NotFound

    version = version or source_hash()
    tag = f"conveyor_endpoint:{version}"
    try:
        return str(bentoml.bentos.get(tag).tag)
    except NotFound:
        pass
    bento = bentoml.bentos.build(
        SERVICE, name="conveyor_endpoint", version=version,
        description="Conveyor environment endpoint (models from the endpoint config)",
        include=INCLUDE, python=_python(), build_ctx=str(ROOT),
    )
    return str(bento.tag)


def build_pinned(tag: str, *, bentoml_model: str, name: str, version: str, threshold: float,
                 labels: dict[str, str], description: str, bentoml_home: Path | None = None,
                 use_case: str | None = None) -> str:
    """Build (or reuse) Bento `tag` serving BentoML model `bentoml_model` as registered `name` v`version`."""
    use_home(bentoml_home)
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return str(bentoml.bentos.get(tag).tag)
    except NotFound:
        pass
    bento_name, bento_version = tag.split(":", 1)
    with tempfile.TemporaryDirectory(prefix="conveyor-bento-") as tmp:
        ctx = Path(tmp)
        for path in _sources():
            dest = ctx / path.relative_to(ROOT)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
        (ctx / PIN_FILE).write_text(pin_document(bentoml_model=bentoml_model, name=name, version=version,
                                                 threshold=threshold, use_case=use_case))
        bento = bentoml.bentos.build(
            SERVICE, name=bento_name, version=bento_version, labels=labels, description=description,
            include=[*INCLUDE, PIN_FILE], models=[bentoml_model], python=_python(), build_ctx=str(ctx),
        )
    return str(bento.tag)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.serving.bento", description=__doc__.splitlines()[0])
    ap.add_argument("--bentoml-home", type=Path, default=None)
    ap.add_argument("--version", default=None)
    args = ap.parse_args(argv)
    from bentoml.exceptions import BentoMLException

    try:
        print(build(args.bentoml_home, args.version))
    except (BentoMLException, OSError) as exc:
        print(f"error: cannot build the endpoint Bento: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
