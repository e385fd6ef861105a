"""One real PostgreSQL server for the feature-table tests that need the networked online store."""

from __future__ import annotations

import pytest

from tests.ml import pgserver


@pytest.fixture(scope="session")
def pg(tmp_path_factory):
    if not pgserver.installed():
        pytest.skip("PostgreSQL server not installed (scripts/postgres.sh)")
    with pgserver.postgres_server(tmp_path_factory.mktemp("pg-online")) as server:
        yield server
