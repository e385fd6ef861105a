"""Fixtures for serving tests (helpers live in serving_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.serving.serving_helpers import _train, start_endpoint


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("models")
    return {
        "v1": _train(base / "v1", seed=1),
        "v2": _train(base / "v2", seed=2),
        "broken": _train(base / "broken", seed=3, kind="broken"),
    }


@pytest.fixture
def endpoint(tmp_path):
    ep = start_endpoint(tmp_path)
    yield ep
    ep.stop()


@pytest.fixture(scope="module")
def shared_endpoint(tmp_path_factory):
    ep = start_endpoint(tmp_path_factory.mktemp("shared"))
    yield ep
    ep.stop()


@pytest.fixture(scope="session")
def rows():
    from ml.serving.client import sample_rows

    return sample_rows(300, seed=11)
