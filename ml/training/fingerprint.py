"""What a model is made of, as three versions a retrain compares with the champion's.

- data: the DVC md5 of the gold table (`data_version`, from ingest);
- code (`code_version`): sha256 of the code that turns data and params into a model — the
  use case's folder (its declaration, features and estimator factory; not params.yaml, which
  is the params' part) and `ml/training`, `ml/usecase`, `ml/config.py` — as imported, so in a
  job run the deployed code. A change to serving or monitoring code makes no new model;
- params (`params_version`): sha256 of the effective `train` and `split` sections (after
  `--set` overrides), the knobs that shape the fitted model. Gates and deployment knobs judge
  a model and do not make another one.

`train` tags each run and model version with all three; `changed` compares them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ml.code import package_dir

TRAINING_CODE = ("training", "usecase", "config.py")  # under ml/
NOT_CODE = ("params.yaml",)
CODE_SUFFIXES = (".py", ".yml", ".yaml")


def _files(base: Path) -> list[Path]:
    if base.is_file():
        return [base]
    return sorted(p for p in base.rglob("*") if p.is_file() and p.suffix in CODE_SUFFIXES
                  and "__pycache__" not in p.parts and p.name not in NOT_CODE)


def code_version(uc) -> str:
    """sha256 (hex, 16 chars) over the relative paths and contents of the training code of `uc`."""
    ml = package_dir("ml")
    roots = [(f"ml/{name}", ml / name) for name in TRAINING_CODE] + [(f"usecases/{uc.name}", Path(uc.dir))]
    digest = hashlib.sha256()
    for label, root in roots:
        for path in _files(root):
            rel = label if path == root else f"{label}/{path.relative_to(root)}"
            digest.update(rel.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def params_version(params) -> str:
    """sha256 (hex, 16 chars) of the effective `train` and `split` params."""
    shaped = {"train": params.train.model_dump(mode="json"), "split": params.split.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(shaped, sort_keys=True).encode()).hexdigest()[:16]


def of_run(uc, params, data_version: str) -> dict[str, str]:
    """The three versions of a model trained now on `data_version`."""
    return {"data_version": data_version, "code_version": code_version(uc), "params_version": params_version(params)}
