"""The two servers the serving benchmark compares, started the way an environment starts them.

`endpoint(...)` runs `bentoml serve ml.serving.service:ConveyorEndpoint` with an endpoint
config that serves the model as champion, bearer tokens, and the inference table on —
nothing the real endpoint does per request is switched off. `launcher(...)` is the same
endpoint as users reach it: `python -m ml.serving.launcher` on the public port, serving this
checkout's code as a deployed code wheel (built into a Bento, `bentoml serve` behind the
launcher's proxy). `mlflow_serve(...)` runs `mlflow models serve` of the same model directory.
All are context managers yielding a `Server` (its base URL, the pid of its process group for
py-spy, and a Conveyor endpoint's inference table) and stop it on exit.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from core import settings

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"


@dataclass(frozen=True)
class Server:
    url: str
    pid: int
    table: Path | None = None  # the endpoint's inference table (a Conveyor endpoint only)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server at {url} did not come up: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _endpoint_env(model_dir: Path, work: Path):
    """(env vars of an endpoint serving `model_dir` as champion, the config revision to wait for)."""
    from ml.serving.endpoint_config import ServedModel, promote, update_config

    tokens = work / "tokens.json"
    tokens.write_text(json.dumps([hashlib.sha256(TOKEN.encode()).hexdigest()]))
    config_dir = work / "endpoint"
    served = ServedModel(name="bench", version="1", uri=str(model_dir), path=str(model_dir))
    cfg = update_config(config_dir, lambda c: promote(c, served), by="bench", reason="bench")
    env = {**os.environ, settings.ENV.name: "bench", settings.ENDPOINT_DIR.name: str(config_dir),
           settings.INFERENCE_TABLE.name: str(work / "inference"), settings.SERVING_TOKENS_FILE.name: str(tokens),
           "BENTOML_DO_NOT_TRACK": "true"}
    return env, cfg.revision


@contextmanager
def endpoint(model_dir: Path, work: Path, cwd: Path = ROOT, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """The Conveyor endpoint serving `model_dir` as champion; requests need `Bearer TOKEN`. `cwd`
    (imported first) and `extra_env` let a benchmark serve another tree or store (bench/features.py)."""
    from ml.serving.client import wait_for_revision

    env, revision = _endpoint_env(model_dir, work)
    env.update(extra_env or {})
    port, log = free_port(), work / "bentoml.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "ml.serving.service:ConveyorEndpoint",
                                 "--host", "127.0.0.1", "--port", str(port)], cwd=cwd, start_new_session=True,
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(url + "/livez", proc, log)
        wait_for_revision(url, revision, timeout_s=120, confirmations=1, token=TOKEN)
        yield Server(url, proc.pid, Path(env[settings.INFERENCE_TABLE.name]))
    finally:
        _stop(proc)


def _code_wheel(dest: Path) -> str:
    """This checkout's serving code as a code wheel (the sources the endpoint Bento includes); its hash."""
    from ml.serving import bento

    digest = hashlib.sha256()
    with zipfile.ZipFile(dest, "w") as zf:
        for path in bento._sources(ROOT):
            rel = str(path.relative_to(ROOT))
            zf.write(path, rel)
            digest.update(rel.encode() + path.read_bytes())
    return digest.hexdigest()


@contextmanager
def launcher(model_dir: Path, work: Path) -> Iterator[Server]:
    """The endpoint as users reach it: the env's launcher on the public port, serving this checkout's
    code the way `bundle deploy` ships it (a code wheel in the env's bundle storage → a Bento →
    `bentoml serve` behind the launcher's proxy). The pid is the launcher's; its backend is a child."""
    from core.contract import storage_layout
    from core.serving_code import CodeRequest, request_code
    from core.storage import Blobs
    from ml.serving.client import wait_for_revision

    base = work / "launcher"
    storage = base / "storage"
    blobs = Blobs(storage_layout(storage.as_uri()).bundle)
    wheel = base / "code.whl"
    base.mkdir(parents=True, exist_ok=True)
    artifact = _code_wheel(wheel)
    blobs.upload(wheel, "bench/code.whl")
    request_code(blobs, CodeRequest(artifact=artifact, wheel="bench/code.whl", deployment="bench",
                                    requested_at=time.time(), requested_by="bench"))
    env, revision = _endpoint_env(model_dir, base)
    env.update({settings.STORAGE_URI.name: storage.as_uri(), "BENTOML_HOME": str(base / "bentos")})
    port, log = free_port(), base / "launcher.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ml.serving.launcher", "--port", str(port),
                                 "--state-dir", str(base / "run")], cwd=ROOT, start_new_session=True,
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(url + "/livez", proc, log)
        deadline = time.monotonic() + 300
        while _code_state(url) != "serving":
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the launcher did not start the code: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        wait_for_revision(url, revision, timeout_s=120, confirmations=1, token=TOKEN)
        yield Server(url, proc.pid, Path(env[settings.INFERENCE_TABLE.name]))
    finally:
        _stop(proc)


def _code_state(url: str) -> str | None:
    try:
        resp = httpx.get(url + "/status", timeout=5, headers={"Authorization": f"Bearer {TOKEN}"})
        return (resp.json().get("code") or {}).get("state") if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


@contextmanager
def mlflow_serve(model_dir: Path, work: Path) -> Iterator[Server]:
    """`mlflow models serve` of `model_dir` (its default worker count), no auth in front."""
    port, log = free_port(), work / "mlflow-serve.log"
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    with open(log, "w") as out:
        proc = subprocess.Popen([str(bin_dir / "mlflow"), "models", "serve", "-m", str(model_dir), "--env-manager",
                                 "local", "-h", "127.0.0.1", "-p", str(port)], start_new_session=True,
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(url + "/ping", proc, log)
        yield Server(url, proc.pid)
    finally:
        _stop(proc)
