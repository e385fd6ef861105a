"""The Pulumi program under mocks: which resources an environment is made of.

These run in-process with `pulumi.runtime.set_mocks` (no CLI, no processes); the
real `pulumi up` is exercised end to end in tests/e2e.
"""

import json

import pulumi
import pytest

from core.contract import EnvironmentOutputs
from infra.config import parse
from tests.infra.pulumi_mocks import Mocks

PERSONAS = {"data_scientist": {"role": "read"}, "ml_engineer": {"role": "write"}, "ci": {"role": "write"}}


@pytest.fixture
def mocks(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "state"))
    m = Mocks()
    pulumi.runtime.set_mocks(m, project="conveyor", stack="prod", preview=False)
    return m


def build(env="prod"):
    from infra.platforms import create_environment

    cfg = parse(env, {"ports": {"tracking": 6301, "serving": 6302}, "access": {"personas": PERSONAS}})
    return create_environment(cfg)


@pulumi.runtime.test
def test_environment_is_storage_tracking_access_serving(mocks):
    environment = build()

    def check(_):
        components = {r.typ for r in mocks.created if r.typ.startswith("conveyor:local:")}
        assert {"conveyor:local:Storage", "conveyor:local:Tracking", "conveyor:local:Serving"} <= components
        programs = {r.inputs["name"]: r.inputs for r in mocks.of_type(":SupervisedProgram")}
        assert {"tracking", "serving"} <= set(programs)
        tracking = programs["tracking"]
        assert "--app-name" in tracking["command"] and "basic-auth" in tracking["command"]
        assert any(part.startswith("sqlite:///") for part in tracking["command"])
        assert tracking["command"][tracking["command"].index("--host") + 1] == "127.0.0.1"
        assert tracking["health_url"] == "http://127.0.0.1:6301/health"
        assert programs["serving"]["health_url"] == "http://127.0.0.1:6302/livez"

    return pulumi.Output.all(environment.tracking_uri, environment.serving_url).apply(check)


@pulumi.runtime.test
def test_outputs_match_the_contract(mocks):
    environment = build()

    def check(values):
        tracking_uri, serving_url, storage_uri, storage, credentials = values
        outputs = EnvironmentOutputs(env="prod", platform="local", tracking_uri=tracking_uri,
                                     serving_url=serving_url, storage_uri=storage_uri,
                                     storage=storage, credentials=credentials)
        assert outputs.storage.dvc_remote == f"{storage_uri}/dvc"
        assert set(outputs.credentials) == {"data_scientist", "ml_engineer", "ci"}
        passwords = {c.password for c in outputs.credentials.values()}
        tokens = {c.token for c in outputs.credentials.values()}
        assert len(passwords) == 3 and len(tokens) == 3 and not passwords & tokens

    return pulumi.Output.all(environment.tracking_uri, environment.serving_url, environment.storage_uri,
                             environment.storage, environment.credentials).apply(check)


@pulumi.runtime.test
def test_credentials_are_secret(mocks):
    environment = build()

    async def check():
        assert await environment.credentials.is_secret()
        assert not await environment.tracking_uri.is_secret()

    return pulumi.Output.from_input(None).apply(lambda _: check())


@pulumi.runtime.test
def test_read_only_persona_and_anonymous_policy(mocks):
    environment = build()

    def check(_):
        roles_file = next(r for r in mocks.of_type(":LocalFile") if r.inputs["path"].endswith("mlflow-roles.json"))
        roles = json.loads(roles_file.inputs["content"])
        assert roles["data_scientist"] == "read"
        assert roles["ci"] == "write" and roles["ml_engineer"] == "write"
        auth = next(r for r in mocks.of_type(":LocalFile") if r.inputs["path"].endswith("mlflow-auth.ini"))
        assert "authorization_function = infra.components.mlflow_auth:authenticate" in auth.inputs["content"]
        assert "default_permission = READ" in auth.inputs["content"]
        assert auth.inputs["mode"] == "600"
        users = mocks.of_type(":MlflowUsers")[0].inputs["users"]
        assert {"data_scientist", "ml_engineer", "ci"} <= set(users)

    return pulumi.Output.all(environment.tracking_uri, environment.serving_url).apply(check)


@pulumi.runtime.test
def test_env_state_lives_under_its_own_directory(mocks, tmp_path):
    environment = build()

    def check(storage_uri):
        assert storage_uri == (tmp_path / "state" / "envs" / "prod" / "storage").as_uri()
        for program in mocks.of_type(":SupervisedProgram"):
            assert program.inputs["run_dir"] == str(tmp_path / "state" / "envs" / "prod" / "run")

    return environment.storage_uri.apply(check)
