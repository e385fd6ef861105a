"""Build a `LoadState` straight from YAML text, so each step's test runs that step alone."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bundles.mutators import LoadState
from core.source import load_yaml


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


DOCS = Path(__file__).parent / "samples"


def read_doc(name: str) -> str:
    """A step's sample bundle.yml, kept as YAML next to the tests (`samples/<name>`)."""
    return (DOCS / name).read_text()


@pytest.fixture
def state_from(tmp_path):
    """`state_from(text, files={...}, **fields)`: bundle.yml written and parsed into `doc`,
    the other files written next to it, `fields` set on the state as if earlier steps had run."""

    def make(text: str, files: dict[str, str] | None = None, **fields) -> LoadState:
        write(tmp_path, {"bundle.yml": text, **(files or {})})
        doc, errs = load_yaml(tmp_path / "bundle.yml", "bundle.yml")
        assert doc is not None, errs
        state = LoadState(root=tmp_path, doc=doc)
        for name, value in fields.items():
            setattr(state, name, value)
        return state

    return make
