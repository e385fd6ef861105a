"""Serving benchmark: single-row requests through the Conveyor endpoint vs `mlflow models serve`
of the same model version vs in-process `model.predict_proba` (the floor).

    python -m bench.serving [--model <MLflow model dir or models:/ URI>] [--seconds 3]

Without --model a small fraud model is trained on synthetic data first. Both servers run on
127.0.0.1 in this process's lifetime, measured one after the other in the same run. Latency is
client-observed for one sequential client; "max QPS @0 err" is the best throughput over
concurrency 1,2,4,8,16 among levels with zero errors. The endpoint gets raw transactions (it
computes the on-demand distance feature itself); mlflow serve gets precomputed features.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from core import settings
from ml.features import FEATURES, build_features
from ml.serving import loadtest
from ml.serving.client import request_rows

ROOT = Path(__file__).resolve().parents[1]
console = Console()
LEVELS = (1, 2, 4, 8, 16)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_model(dest: Path) -> Path:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from ml.data.generate import generate_transactions

    raw = generate_transactions(5000, seed=3, days=30)
    X, y = build_features(raw)[FEATURES], raw["is_fraud"]
    pipe = Pipeline([("prep", ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                                                  ["merchant_category"])], remainder="passthrough")),
                     ("clf", HistGradientBoostingClassifier(max_iter=60, random_state=0))]).fit(X, y)
    mlflow.sklearn.save_model(pipe, str(dest), signature=infer_signature(X, pipe.predict_proba(X)[:, 1]),
                              skops_trusted_types=["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"])
    return dest


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


def measure_http(url: str, bodies: list, token: str | None, seconds: float) -> dict:
    loadtest.run(url, bodies, token=token, duration_s=1.0, concurrency=2)  # warm-up
    seq = loadtest.run(url, bodies, token=token, duration_s=seconds, concurrency=1)
    best = 0.0
    for c in LEVELS:
        r = loadtest.run(url, bodies, token=token, duration_s=seconds, concurrency=c)
        if r.errors == 0:
            best = max(best, r.qps)
    return {"p50": seq.pct(50), "p95": seq.pct(95), "p99": seq.pct(99), "qps": best, "errors": seq.errors}


def bench_endpoint(model_dir: Path, raw: pd.DataFrame, work: Path, seconds: float) -> dict:
    from ml.serving.endpoint_config import ServedModel, promote, update_config
    from ml.serving.client import wait_for_revision

    token = "bench-token"
    tokens = work / "tokens.json"
    tokens.write_text(json.dumps([hashlib.sha256(token.encode()).hexdigest()]))
    ep = work / "endpoint"
    cfg = update_config(ep, lambda c: promote(c, ServedModel(name="bench", version="1", uri=str(model_dir),
                                                              path=str(model_dir))), by="bench", reason="bench")
    port, log = _port(), work / "bentoml.log"
    proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "ml.serving.service:ConveyorEndpoint",
                             "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT, start_new_session=True,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            env={**os.environ, settings.ENV.name: "bench", settings.ENDPOINT_DIR.name: str(ep),
                                 settings.INFERENCE_TABLE.name: str(work / "inference"),
                                 settings.SERVING_TOKENS_FILE.name: str(tokens), "BENTOML_DO_NOT_TRACK": "true"})
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(url + "/livez", proc, log)
        wait_for_revision(url, cfg.revision, timeout_s=120, confirmations=1)
        bodies = [{"rows": [r]} for r in request_rows(raw)]
        return measure_http(url + "/predict", bodies, token, seconds)
    finally:
        _stop(proc)


def bench_mlflow_serve(model_dir: Path, raw: pd.DataFrame, work: Path, seconds: float) -> dict:
    port, log = _port(), work / "mlflow.log"
    mlflow_bin = str(Path(sys.executable).parent / "mlflow")
    proc = subprocess.Popen([mlflow_bin, "models", "serve", "-m", str(model_dir), "--env-manager", "local",
                             "-h", "127.0.0.1", "-p", str(port)], start_new_session=True,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"})
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(url + "/ping", proc, log)
        feats = build_features(raw)[FEATURES]
        bodies = [{"dataframe_split": feats.iloc[[i]].to_dict(orient="split")} for i in range(len(feats))]
        for b in bodies:
            b["dataframe_split"].pop("index", None)
        return measure_http(url + "/invocations", bodies, None, seconds)
    finally:
        _stop(proc)


def bench_in_process(model_dir: Path, raw: pd.DataFrame, seconds: float) -> dict:
    import mlflow.sklearn

    from ml.serving.engine import limit_native_threads

    limit_native_threads()  # same setting as the endpoint's workers
    model = mlflow.sklearn.load_model(str(model_dir))
    frames = [raw.iloc[[i]] for i in range(len(raw))]
    lat = []
    deadline = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        model.predict_proba(build_features(frames[i % len(frames)])[FEATURES])
        lat.append((time.perf_counter() - t0) * 1000)
        i += 1
    p = np.percentile(lat, [50, 95, 99])
    return {"p50": p[0], "p95": p[1], "p99": p[2], "qps": len(lat) / seconds, "errors": 0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="MLflow model directory (default: train a small one)")
    ap.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    args = ap.parse_args(argv)
    from ml.data.generate import generate_transactions

    raw = generate_transactions(300, seed=9, days=7)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        work = Path(tmp)
        model_dir = Path(args.model) if args.model else None
        if model_dir is None:
            with console.status("training a small model"):
                model_dir = train_model(work / "model")
        results = {}
        with console.status("in-process model.predict_proba"):
            results["in-process predict_proba (floor)"] = bench_in_process(model_dir, raw, args.seconds)
        with console.status("Conveyor endpoint (bentoml serve)"):
            results["Conveyor endpoint POST /predict"] = bench_endpoint(model_dir, raw, work, args.seconds)
        with console.status("mlflow models serve"):
            results["mlflow models serve /invocations"] = bench_mlflow_serve(model_dir, raw, work, args.seconds)
    table = Table(title=f"single-row scoring, {os.cpu_count()} CPUs, {args.seconds:g}s per measurement")
    for col in ("path", "p50 ms", "p95 ms", "p99 ms", "max QPS @0 err"):
        table.add_column(col, justify="right" if col != "path" else "left")
    for name, r in results.items():
        table.add_row(name, f"{r['p50']:.2f}", f"{r['p95']:.2f}", f"{r['p99']:.2f}", f"{r['qps']:.0f}")
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
