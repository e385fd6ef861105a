"""Fixtures for the bundle engine: a real MLflow server with basic-auth and an
`EnvironmentOutputs` pointing at it and at a temporary storage tree.

Instead of provisioning a whole environment, this stands up exactly what the contract
promises (tracking with personas, storage), which keeps these tests fast.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from core.contract import Credential, EnvironmentOutputs, storage_layout
from tests.ports import free_port

FIXTURES = Path(__file__).parent / "fixtures"
ADMIN = ("admin", "admin-pass-for-tests")
PERSONAS = ("data_scientist", "ml_engineer", "ci")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """`mlflow server --app-name basic-auth` on 127.0.0.1, sqlite stores, three personas."""
    home = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    ini = home / "auth.ini"
    ini.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{home / 'auth.db'}\n"
        f"admin_username = {ADMIN[0]}\n"
        f"admin_password = {ADMIN[1]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # cache password checks: PBKDF2 on every request dominates the deploy tests' time
        "auth_cache_ttl_seconds = 300\n"
    )
    # No MLflow job runner / huey consumers: a dozen idle processes we do not need.
    env = dict(os.environ, MLFLOW_AUTH_CONFIG_PATH=str(ini), MLFLOW_FLASK_SERVER_SECRET_KEY="tests-only",
               MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    log = open(home / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
         "--artifacts-destination", str(home / "artifacts")],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("mlflow server did not start:\n" + (home / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        creds = {}
        for persona in PERSONAS:
            user, password = f"{persona}-user", f"{persona}-secret-pw"
            resp = httpx.post(f"{url}/api/2.0/mlflow/users/create", json={"username": user, "password": password},
                              auth=ADMIN, timeout=120)
            assert resp.status_code == 200, resp.text
            creds[persona] = Credential(username=user, password=password, token=f"tok-{persona}")
        yield url, creds
    finally:
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server and its workers (its own process group)."""
    try:
        os.killpg(proc.pid, 15)
        proc.wait(20)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


@pytest.fixture(scope="session")
def mlflow_admin(mlflow_server) -> tuple[str, str]:
    """Admin credentials of the test server, to check what deploy did from the outside."""
    return ADMIN


@pytest.fixture
def env_outputs(mlflow_server, tmp_path) -> EnvironmentOutputs:
    """A fresh env storage tree per test, sharing the session's MLflow server."""
    url, creds = mlflow_server
    storage = tmp_path / "env-storage"
    storage.mkdir()
    return EnvironmentOutputs(
        env="dev",
        platform="local",
        tracking_uri=url,
        serving_url="http://127.0.0.1:3999",
        storage_uri=storage.as_uri(),
        storage=storage_layout(storage.as_uri()),
        credentials=creds,
    )


@pytest.fixture
def user() -> str:
    """A fresh deployer name per test: dev-mode names never collide on the shared server."""
    import secrets

    return f"u{secrets.token_hex(3)}"


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the example bundle project (bundle.yml, resources/, demo_tasks/)."""
    dest = tmp_path / "project"
    shutil.copytree(FIXTURES / "project", dest)
    return dest


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> str:
    from tests.s3server import s3_server

    with s3_server(tmp_path_factory.mktemp("s3") / "server.log") as url:
        yield url


@pytest.fixture
def s3_outputs(mlflow_server, s3_endpoint, monkeypatch, tmp_path) -> EnvironmentOutputs:
    """An env like the kubernetes platform's: storage in a bucket (fresh per test), real MLflow."""
    import secrets

    from tests.s3server import CREDENTIALS, s3_client

    for key, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "conveyor-home"))  # the local work dir of s3 envs
    bucket = f"conveyor-{secrets.token_hex(4)}"
    s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    url, creds = mlflow_server
    root = f"s3://{bucket}/dev"
    return EnvironmentOutputs(
        env="dev", platform="kubernetes", tracking_uri=url, serving_url="http://127.0.0.1:3999",
        storage_uri=root, storage=storage_layout(root), credentials=creds,
    )
