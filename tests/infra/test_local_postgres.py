"""`conveyor:tracking.database: postgresql` on the local platform: config, server discovery,
and the resources the program declares (under mocks; the real server is
tests/e2e/test_postgres_tracking.py)."""

from __future__ import annotations

import pulumi
import pytest

from infra.config import ConfigError, check_no_collisions, parse
from infra.local import postgres
from tests.infra.pulumi_mocks import Mocks

PERSONAS = {"data_scientist": {"role": "read"}, "ml_engineer": {"role": "write"}, "ci": {"role": "write"}}
PG = {"database": "postgresql", "port": 6303}


def stack(**extra):
    return parse("prod", {"ports": {"tracking": 6301, "serving": 6302}, "access": {"personas": PERSONAS}, **extra})


# --------------------------------------------------------------------------- config
def test_sqlite_is_the_default():
    assert stack().tracking.database == "sqlite"


def test_postgresql_needs_a_port():
    with pytest.raises(ConfigError, match=r"^conveyor:tracking.port: required when conveyor:tracking.database is postgresql$"):
        stack(tracking={"database": "postgresql"})


@pytest.mark.parametrize("tracking, message", [
    ({"database": "mysql", "port": 6303}, "conveyor:tracking.database: Input should be 'sqlite' or 'postgresql', got 'mysql'"),
    ({"database": "postgresql", "port": 80}, "conveyor:tracking.port: Input should be greater than or equal to 1024"),
    ({"database": "postgresql", "port": 6301}, "conveyor:tracking.port: port 6301 is already used by conveyor:ports.tracking"),
    ({"engine": "postgresql"}, "conveyor:tracking.engine: unknown key"),
])
def test_tracking_mistakes_name_the_key(tracking, message):
    with pytest.raises(ConfigError) as err:
        stack(tracking=tracking)
    assert str(err.value) == message


def test_the_database_port_must_not_collide_with_another_stack(tmp_path):
    (tmp_path / "Pulumi.staging.yaml").write_text(
        "config:\n  conveyor:ports:\n    tracking: 7001\n    serving: 7002\n"
        "  conveyor:tracking:\n    database: postgresql\n    port: 6303\n")
    with pytest.raises(ConfigError, match="conveyor:tracking.port: port 6303 collides with conveyor:tracking.port "
                                          "of stack 'staging'"):
        check_no_collisions(stack(tracking=PG), tmp_path)


# --------------------------------------------------------------------------- the server
def fake_server(root, version):
    bin_dir = root / version / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("initdb", "postgres"):
        (bin_dir / name).write_text("#!/bin/sh\n")
    return bin_dir


def test_the_newest_installed_server_is_used(tmp_path):
    fake_server(tmp_path, "9.6")
    newest = fake_server(tmp_path, "16")
    (tmp_path / "17").mkdir()  # a client-only install: no server binaries
    assert postgres.server_bin_dir(tmp_path) == newest


def test_a_missing_server_is_one_line_naming_the_package(tmp_path):
    with pytest.raises(ConfigError) as err:
        postgres.server_bin_dir(tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("conveyor:tracking.database: postgresql needs the PostgreSQL server")
    assert "`postgresql` package" in message


def test_existing_data_keeps_the_server_version_that_made_it(tmp_path):
    old = fake_server(tmp_path / "pg", "15")
    fake_server(tmp_path / "pg", "16")
    data = tmp_path / "data"
    data.mkdir()
    (data / "PG_VERSION").write_text("15\n")
    assert postgres.server_bin_dir(tmp_path / "pg", data) == old
    (data / "PG_VERSION").write_text("13\n")
    with pytest.raises(ConfigError, match=r"holds PostgreSQL 13 data but only 15, 16 is installed: install `postgresql-13`"):
        postgres.server_bin_dir(tmp_path / "pg", data)


def test_preflight_refuses_before_any_resource(tmp_path, monkeypatch):
    from infra.local.environment import LocalEnvironment

    monkeypatch.setattr(postgres, "SERVER_ROOT", tmp_path)
    LocalEnvironment.preflight(stack())  # sqlite needs no server
    with pytest.raises(pulumi.RunError, match="install Debian's `postgresql` package"):
        LocalEnvironment.preflight(stack(tracking=PG))


def test_as_root_the_server_runs_as_another_user_in_a_user_namespace(monkeypatch):
    monkeypatch.setattr(postgres.os, "geteuid", lambda: 1000)
    assert postgres.as_server_user(["postgres", "-D", "x"]) == ["postgres", "-D", "x"]
    monkeypatch.setattr(postgres.os, "geteuid", lambda: 0)
    command = postgres.as_server_user(["postgres", "-D", "x"])
    assert command[1:3] == ["--user", command[2]] and command[2].startswith("--map-user=")
    assert command[-3:] == ["postgres", "-D", "x"]
    assert command[0].endswith("unshare")


def test_uris_quote_the_password():
    assert postgres.database_uri("a/b@c", 6303, "mlflow") == "postgresql://mlflow:a%2Fb%40c@127.0.0.1:6303/mlflow"


# --------------------------------------------------------------------------- the program
@pytest.fixture
def mocks(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(postgres, "SERVER_ROOT", tmp_path / "pg")
    fake_server(tmp_path / "pg", "15")
    m = Mocks()
    pulumi.runtime.set_mocks(m, project="conveyor", stack="prod", preview=False)
    return m


def unwrap(value):
    """A secret input reaches the mocks wrapped as {<secret signature>: ..., "value": ...}."""
    return value["value"] if isinstance(value, dict) and "value" in value and len(value) == 2 else value


@pulumi.runtime.test
def test_mlflow_runs_on_the_envs_own_postgres(mocks, tmp_path):
    from infra.platforms import create_environment

    environment = create_environment(stack(tracking=PG))

    def check(_):
        data_dir = tmp_path / "state" / "envs" / "prod" / "storage" / "tracking" / "postgres"
        [cluster] = mocks.of_type(":PostgresCluster")
        assert cluster.inputs["data_dir"] == str(data_dir)
        assert cluster.inputs["bin_dir"] == str(tmp_path / "pg" / "15" / "bin")
        programs = {r.inputs["name"]: r.inputs for r in mocks.of_type(":SupervisedProgram")}
        server = programs["postgres"]
        assert server["stopsignal"] == "INT"
        assert "listen_addresses=127.0.0.1" in server["command"] and "port=6303" in server["command"]
        [databases] = mocks.of_type(":PostgresDatabases")
        assert databases.inputs["databases"] == ["mlflow", "mlflow_auth"] and databases.inputs["role"] == "mlflow"
        assert databases.inputs["password"] != databases.inputs["superuser_password"]
        tracking = programs["tracking"]
        assert "--backend-store-uri" not in tracking["command"]
        password = databases.inputs["password"]
        assert unwrap(tracking["environment"])["MLFLOW_BACKEND_STORE_URI"] == \
            f"postgresql://mlflow:{password}@127.0.0.1:6303/mlflow"
        auth = next(r for r in mocks.of_type(":LocalFile") if r.inputs["path"].endswith("mlflow-auth.ini"))
        assert f"database_uri = postgresql://mlflow:{password}@127.0.0.1:6303/mlflow_auth" in unwrap(auth.inputs["content"])
        assert "stopsignal" not in programs["serving"]  # only postgres changes how it is stopped

    return pulumi.Output.all(environment.tracking_uri, environment.serving_url).apply(check)


@pulumi.runtime.test
def test_sqlite_envs_have_no_server(mocks):
    from infra.platforms import create_environment

    environment = create_environment(stack())

    def check(_):
        assert not mocks.of_type(":PostgresCluster") and not mocks.of_type(":PostgresDatabases")
        tracking = next(r.inputs for r in mocks.of_type(":SupervisedProgram") if r.inputs["name"] == "tracking")
        assert "MLFLOW_BACKEND_STORE_URI" not in unwrap(tracking["environment"])

    return environment.tracking_uri.apply(check)

