"""Helpers for serving tests: tiny real models and a real `bentoml serve` endpoint on loopback."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from ml.serving.loadtest import Background as Traffic
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-serving-token"


def _train(path: Path, *, seed: int, kind: str = "good") -> Path:
    """A small fraud model saved in MLflow format; `broken`/`slow` misbehave at predict time only."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    from ml.usecase import load_use_case
    from usecases.fraud.features import build_features
    from usecases.fraud.generate import generate_transactions

    FEATURES, LABEL = load_use_case("fraud").feature_names, load_use_case("fraud").label

    raw = generate_transactions(3000, seed=seed, days=14)
    X, y = build_features(raw)[FEATURES], raw[LABEL]
    state = {"armed": False}

    def misbehave(frame):
        if state["armed"] and kind == "broken":
            raise RuntimeError("deliberately broken challenger")
        if state["armed"] and kind == "slow":
            time.sleep(0.3)
        return frame

    steps = [("misbehave", FunctionTransformer(misbehave, validate=False))] if kind != "good" else []
    pipe = Pipeline([
        *steps,
        ("prep", ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["merchant_category"])],
                                   remainder="passthrough")),
        ("clf", HistGradientBoostingClassifier(max_iter=40, max_depth=3, learning_rate=0.1, random_state=seed)),
    ]).fit(X, y)
    signature = infer_signature(X, pipe.predict_proba(X)[:, 1])
    state["armed"] = True
    # a custom function cannot go through skops' safe format; cloudpickle is what a user would pick too
    fmt = {"serialization_format": "cloudpickle"} if kind != "good" else \
        {"skops_trusted_types": ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]}
    mlflow.sklearn.save_model(pipe, str(path), signature=signature, **fmt)
    return path


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
        return httpx.get(self.url + "/status", timeout=5, headers={"Authorization": f"Bearer {TOKEN}"}).json()

    def stop(self) -> bool:
        """Graceful shutdown (SIGTERM), as the supervisor does on restart. True when the process
        exited within the grace period on its own; False when it had to be killed (or was gone)."""
        if self.proc.poll() is not None:
            return False
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
            return True
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            return False


def start_endpoint(base: Path, env: str = "test", *, endpoint_dir: Path | None = None,
                   table_dir: Path | None = None) -> Endpoint:
    """`bentoml serve` of the env's one serving process; state under `base` unless the dirs are given
    (an env's `storage.endpoint` and `storage.inference_table`; its BentoML model store is then the
    env's `storage.bentos`, beside `storage.endpoint`, where update_endpoint puts what it rolls out)."""
    port = free_port()
    ep, table = endpoint_dir or base / "endpoint", table_dir or base / "inference"
    ep.mkdir(parents=True, exist_ok=True)
    tokens = base / "tokens.json"
    tokens.write_text(json.dumps([hashlib.sha256(TOKEN.encode()).hexdigest()]))
    log = base / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "ml.serving.service:ConveyorEndpoint",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "CONVEYOR_ENV": env, "CONVEYOR_ENDPOINT_DIR": str(ep), "CONVEYOR_INFERENCE_TABLE": str(table),
             "CONVEYOR_SERVING_TOKENS_FILE": str(tokens), "BENTOML_DO_NOT_TRACK": "true",
             "BENTOML_HOME": str(ep.parent / "bentos" if endpoint_dir else base / "bentos")},
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


def endpoint_traffic(ep: Endpoint, rows: list[dict], token: str = TOKEN, batch: int = 10) -> Traffic:
    """Batches of `batch` rows posted to `ep`'s /predict; every one must be answered (200)."""

    def send(i: int) -> int:
        start = (i * batch) % len(rows)
        chunk = rows[start:start + batch]
        resp = ep.post(chunk, token=token)
        assert resp.status_code == 200, f"{resp.status_code} {resp.text[:300]}"
        return len(chunk)

    return Traffic(send)


def import_into_store(model: Path, home: Path, name: str, version: str, env: dict, *, data_version: str) -> str:
    """Put the MLflow model at `model` into the BentoML model store at `home` as `deploy_model` does
    (ml.deployment.package.import_model, in a subprocess: BentoML binds its home per process); its tag."""
    script = ("import sys, mlflow.sklearn; from pathlib import Path; from ml.deployment.package import import_model\n"
              "print(import_model(sys.argv[3], sys.argv[4], bentoml_home=Path(sys.argv[2]), data_version=sys.argv[5], "
              "git_sha='0123456789abcdef', sk_model=mlflow.sklearn.load_model(sys.argv[1]), model_uri=sys.argv[1]))")
    proc = subprocess.run([sys.executable, "-c", script, str(model), str(home), name, version, data_version], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]
