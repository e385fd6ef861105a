"""Fixtures for serving tests (helpers live in serving_helpers.py)."""

from __future__ import annotations

import pytest

from serving_helpers import _train, start_endpoint


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("models")
    return {
        "v1": _train(base / "v1", seed=1),
        "v2": _train(base / "v2", seed=2),
        "broken": _train(base / "broken", seed=3, kind="broken"),
    }


def served(path: Path, version: str, name: str = "fraud_detector"):
    from ml.serving.endpoint_config import ServedModel

    return ServedModel(name=name, version=version, uri=f"models:/{name}/{version}", path=str(path))


@dataclass
class Endpoint:
    url: str
    endpoint_dir: Path
    table_dir: Path
    proc: subprocess.Popen
    log: Path

    def post(self, rows, path="/predict", token: str | None = TOKEN, **kw) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(self.url + path, json={"rows": rows}, headers=headers, timeout=30, **kw)

    def status(self) -> dict:
        return httpx.get(self.url + "/status", timeout=5).json()

    def stop(self) -> int:
        """Graceful shutdown (SIGTERM), as the supervisor does on restart."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


def start_endpoint(base: Path, env: str = "test") -> Endpoint:
    port = free_port()
    ep, table = base / "endpoint", base / "inference"
    ep.mkdir(parents=True, exist_ok=True)
    tokens = base / "tokens.json"
    tokens.write_text(json.dumps([hashlib.sha256(TOKEN.encode()).hexdigest()]))
    log = base / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "ml.serving.service:ConveyorEndpoint",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "CONVEYOR_ENV": env, "CONVEYOR_ENDPOINT_DIR": str(ep), "CONVEYOR_INFERENCE_TABLE": str(table),
             "CONVEYOR_SERVING_TOKENS_FILE": str(tokens), "BENTOML_DO_NOT_TRACK": "true"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"bentoml serve exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/livez", timeout=1).status_code == 200:
                return Endpoint(url, ep, table, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"endpoint did not start: {log.read_text()[-3000:]}")


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
