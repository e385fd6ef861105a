"""A tiny declared use case written into a tmp project, so each check runs on files it controls."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

USECASE = """\
name: tiny
task: binary_classification
dataset:
  id: row_id
  label: y
  columns:
    row_id: {type: string}
    x: {type: float, min: 0.0, max: 10.0}
    colour: {type: category, values: [red, blue]}
    y: {type: int, values: [0, 1]}
source:
  kind: file
  path: usecases/tiny/rows.csv
features:
  function: usecases.tiny.features:build
  request: [x, colour]
  columns:
    x: {type: float, min: 0.0, max: 10.0}
    colour: {type: category, values: [red, blue]}
model:
  factory: usecases.tiny.model:make
validation:
  slice_column: colour
"""

FEATURES = """\
def build(raw):
    return raw[["x", "colour"]]
"""

MODEL = """\
def make(params, features):
    from sklearn.dummy import DummyClassifier

    return DummyClassifier()
"""

PARAMS = """\
model_validation:
  min_roc_auc: 0.5
deployment:
  primary_metric: pr_auc
"""

ROWS = "row_id,x,colour,y\nr1,1.0,red,0\nr2,2.5,blue,1\n"


def line_of(path: Path, needle: str) -> int:
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in {path}")


@pytest.fixture
def project(tmp_path):
    """`project(**overrides)`: tmp root with usecases/tiny/{usecase.yml, params.yaml, *.py, rows.csv};
    a keyword replaces that file's text (`usecase=`, `params=`, `rows=`, `features=`)."""

    def make(**texts: str) -> Path:
        files = {"usecase.yml": texts.get("usecase", USECASE), "params.yaml": texts.get("params", PARAMS),
                 "features.py": texts.get("features", FEATURES), "model.py": MODEL, "__init__.py": "",
                 "rows.csv": texts.get("rows", ROWS)}
        base = tmp_path / "usecases" / "tiny"
        base.mkdir(parents=True, exist_ok=True)
        (tmp_path / "usecases" / "__init__.py").write_text("")
        for name, text in files.items():
            (base / name).write_text(textwrap.dedent(text))
        return tmp_path

    return make
